"""What rank 0 shows while a training loop runs: a bar in a terminal, plain lines in a log.

A cluster job's stdout is a file: a progress bar there is a carriage-return line per update
and says nothing once the job is gone. So when stdout is not a terminal, or
`train.progress_bar` is off, rank 0 prints one line per `train.log_every` steps instead:

    2026-12-04 18:20:01 [full] pretrain step 40/300 loss 5.1234 lr 9.80e-04 tokens/s 12,345 elapsed 0:01:23 ...

tokens/s and the remaining time are averages over this run of the loop (since its start or
resumption). Third-party progress bars (transformers' "Loading weights" and "Writing model
shards", `datasets` and the hub's) are turned off: mmadapt says what it is doing itself.
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def quiet_third_party_bars() -> None:
    """Turn off the progress bars transformers, `datasets` and huggingface_hub draw themselves."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass


def format_duration(seconds: float) -> str:
    """`h:mm:ss` (hours grow past 24: a long run reads `31:05:00`)."""
    whole = max(0, int(round(seconds)))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def line_prefix(strategy: str | None = None, now: float | None = None) -> str:
    """What every stage log line starts with: the wall-clock time, then the strategy in brackets (when
    the line belongs to one): `2026-12-04 18:20:01 [minijoint]`."""
    clock = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    return f"{clock} [{strategy}]" if strategy else clock


def log_line(label: str, step: int, total: int, metrics: dict[str, float], tokens_per_s: float, elapsed: float,
             remaining: float, prefix: str = "") -> str:
    """One plain log line: `prefix` (`line_prefix`), step, every loss (`loss` first), lr, tokens/s, elapsed and
    remaining time."""
    losses = sorted((k for k in metrics if k != "lr"), key=lambda k: (k != "loss", k))
    parts = ([prefix] if prefix else []) + [f"{label} step {step}/{total}"] + [f"{k} {metrics[k]:.4f}" for k in losses]
    if "lr" in metrics:
        parts.append(f"lr {metrics['lr']:.2e}")
    parts += [f"tokens/s {tokens_per_s:,.0f}", f"elapsed {format_duration(elapsed)}",
              f"remaining {format_duration(remaining)}"]
    return " ".join(parts)


class TrainingProgress:
    """Rank 0's progress display for one loop: a tqdm bar, log lines, both or neither.

    The bar is drawn when `progress_bar` is on and stderr (where tqdm writes) is a terminal;
    lines are printed to `stream` (stdout) when `progress_bar` is off or `stream` is not a terminal.
    """

    def __init__(self, label: str, total: int, initial: int, enabled: bool, progress_bar: bool,
                 stream: TextIO | None = None, strategy: str | None = None):
        self.label, self.total, self.initial, self.strategy = label, total, initial, strategy
        self.stream = stream if stream is not None else sys.stdout
        self.lines = enabled and (not progress_bar or not _is_terminal(self.stream))
        self.bar: Any = None
        if enabled and progress_bar and _is_terminal(sys.stderr):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=f"[{strategy}] {label}" if strategy else label,
                            dynamic_ncols=True)
        self.started = time.perf_counter()

    def advance(self) -> None:
        """One optimiser step done."""
        if self.bar is not None:
            self.bar.update(1)

    def report(self, step: int, metrics: dict[str, float], tokens: int) -> None:
        """A logging step: `metrics` are the step's values, `tokens` those of this run so far (all ranks)."""
        if self.bar is not None and "loss" in metrics:
            self.bar.set_postfix(loss=f"{metrics['loss']:.4f}")
        if not self.lines:
            return
        elapsed = time.perf_counter() - self.started
        done = step - self.initial
        remaining = elapsed / done * (self.total - step) if done > 0 else 0.0
        rate = tokens / elapsed if elapsed > 0 else 0.0
        print(log_line(self.label, step, self.total, metrics, rate, elapsed, remaining, line_prefix(self.strategy)),
              file=self.stream, flush=True)

    def close(self) -> None:
        """Close the bar, if one is drawn."""
        if self.bar is not None:
            self.bar.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class WorkProgress:
    """Progress through a long piece of work measured in bytes (tokenising a corpus, say): a tqdm bar
    when stderr is a terminal, else one line to `stream` every `every_s` seconds:

        data.train: 412.3 MB of 1.6 GB (25%), 103,456,789 tokens, 1,034,567 tokens/s, elapsed 0:01:40 remaining 0:05:00
    """

    def __init__(self, label: str, total_bytes: int, stream: TextIO | None = None, every_s: float = 30.0):
        self.label, self.total = label, max(1, total_bytes)
        self.stream = stream if stream is not None else sys.stdout
        self.every_s = every_s
        self.bar: Any = None
        if _is_terminal(sys.stderr):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_bytes, desc=label, unit="B", unit_scale=True, dynamic_ncols=True)
        self.started = self.last_line = time.perf_counter()
        self.done = self.tokens = 0

    def update(self, done_bytes: int, tokens: int) -> None:
        """`done_bytes` of the total done so far, `tokens` made so far."""
        if self.bar is not None:
            self.bar.update(done_bytes - self.done)
        self.done, self.tokens = done_bytes, tokens
        now = time.perf_counter()
        if self.bar is None and now - self.last_line >= self.every_s:
            self.last_line = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        """The progress so far in one line."""
        elapsed = (now or time.perf_counter()) - self.started
        share = min(1.0, self.done / self.total)
        remaining = elapsed / share * (1 - share) if share > 0 else 0.0
        rate = self.tokens / elapsed if elapsed > 0 else 0.0
        return (f"{self.label}: {format_bytes(self.done)} of {format_bytes(self.total)} ({share:.0%}), "
                f"{self.tokens:,} tokens, {rate:,.0f} tokens/s, elapsed {format_duration(elapsed)} "
                f"remaining {format_duration(remaining)}")

    def close(self) -> float:
        """Close the bar, if one is drawn; the seconds the work took."""
        if self.bar is not None:
            self.bar.close()
        return time.perf_counter() - self.started


def format_bytes(count: float) -> str:
    """`412.3 MB`, `1.6 GB` (powers of 1000, as disks are sold)."""
    if count < 1000:
        return f"{count:.0f} B"
    for unit in ("kB", "MB", "GB"):
        count /= 1000
        if count < 1000 or unit == "GB":
            break
    return f"{count:.1f} {unit}"
