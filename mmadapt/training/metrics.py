"""Rank-0 metric logging to stdout, `metrics.jsonl` and TensorBoard."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


class MetricsLogger:
    """Appends one JSON object per logged step; only rank 0 writes."""

    def __init__(self, directory: Path, enabled: bool, tensorboard: bool = True):
        self.enabled = enabled
        self.path = directory / METRICS_FILE
        self._tb = None
        if enabled:
            directory.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(directory / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run rewrites what followed its checkpoint)."""
        if not self.enabled or not self.path.exists():
            return
        rows = [line for line in self.path.read_text().splitlines() if line.strip()]
        kept = [line for line in rows if json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Record `values` for `step`."""
        if not self.enabled:
            return
        row = {"step": step, "time": round(time.time(), 3), **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every row of a metrics.jsonl file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_scalar_series(directory: Path, tag: str, points: list[tuple[int, float]]) -> None:
    """Write `(step, value)` points as TensorBoard scalar `tag` under `directory`/tensorboard."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(Path(directory) / "tensorboard"))
    for step, value in points:
        writer.add_scalar(tag, value, step)
    writer.close()
