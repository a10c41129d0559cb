"""Running a resolved recipe: process set-up, the pretraining stage, outputs."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmadapt.context import StageContext
from mmadapt.distributed import barrier, init_distributed
from mmadapt.pretraining import check_data_sources
from mmadapt.recipe import save_resolved
from mmadapt.trainer import seed_everything

STAGE_DONE = "stage_complete.json"
#: keys that change where or how a run is driven but not what it computes
_NOT_IN_STAGE_FINGERPRINT = ("output_dir", "train.resume", "train.progress_bar", "train.log_every",
                             "data.num_workers", "data.cache_dir")


@dataclass
class RunResult:
    """Directories each stage wrote."""

    output_dir: Path
    outputs: dict[str, dict[str, Path]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def stage_fingerprint(cfg: DictConfig) -> str:
    """A digest of the settings that determine a stage's result."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for dotted in _NOT_IN_STAGE_FINGERPRINT:
        parent, _, leaf = dotted.rpartition(".")
        node = plain.get(parent, {}) if parent else plain
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def run_recipe(cfg: DictConfig, plugins: Any) -> RunResult:
    """Run the recipe's pretraining stage (skipped when already complete for these settings)."""
    check_data_sources(cfg)
    strategy = plugins.strategies.get(cfg.strategy.name)
    dist = init_distributed()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    output_dir = Path(cfg.output_dir)
    if dist.is_main:
        save_resolved(cfg, output_dir)
    barrier()
    result = RunResult(output_dir)
    stage_dir = output_dir / "pretrain"
    ctx = StageContext(cfg, plugins, dist, output_dir, stage_dir)
    fingerprint = stage_fingerprint(cfg)
    done = _read_done(stage_dir)
    if done and done.get("fingerprint") == fingerprint:
        ctx.log(f"pretrain: already complete in {stage_dir} (same settings); skipping")
        result.skipped.append("pretrain")
        result.outputs["pretrain"] = {k: Path(v) for k, v in done["outputs"].items()}
        return result
    ctx.log(f"pretrain: strategy {cfg.strategy.name!r} -> {stage_dir}")
    seed_everything(cfg.seed)  # the same on every rank: models must be built identically
    outputs = strategy.pretrain(ctx)
    if dist.is_main:
        _write_done(stage_dir, fingerprint, outputs)
        plugins.hook.mmadapt_stage_finished(stage="pretrain", output_dir=str(stage_dir),
                                             metrics={k: str(v) for k, v in outputs.items()})
    barrier()
    result.outputs["pretrain"] = outputs
    return result


def _read_done(stage_dir: Path) -> dict | None:
    path = stage_dir / STAGE_DONE
    return json.loads(path.read_text()) if path.is_file() else None


def _write_done(stage_dir: Path, fingerprint: str, outputs: dict[str, Path]) -> None:
    path = stage_dir / STAGE_DONE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "outputs": {k: str(v) for k, v in outputs.items()}},
                              indent=1))
    os.replace(tmp, path)
