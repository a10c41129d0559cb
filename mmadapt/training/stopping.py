"""Why a training loop stops early: a loss or gradient that is no longer finite, or a scheduler's signal.

Exit codes of `mmadapt` (also in README, "Failures and recovery"):

- 0: done; 2: a problem with the recipe, an input or the output directory (`MmadaptError`);
- `EXIT_DIVERGED` (3): a loss or gradient norm became NaN or infinite; the stage is not complete and
  its newest checkpoint is the last good one;
- `EXIT_PREEMPTED` (75, EX_TEMPFAIL): SIGTERM or SIGUSR1 arrived; every rank finished its step, a
  checkpoint of that step was saved, and running the same command again continues from it.
"""
from __future__ import annotations

import contextlib
import math
import signal
from typing import Any, Iterator

import torch

from mmadapt.errors import MmadaptError
from mmadapt.training.distributed import max_across_ranks

EXIT_DIVERGED = 3
EXIT_PREEMPTED = 75
#: the signals a scheduler sends before it stops a job (Slurm: `--signal=USR1@120`, then SIGTERM)
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Diverged(MmadaptError):
    """A loss or gradient norm became NaN or infinite."""

    exit_code = EXIT_DIVERGED


class Preempted(MmadaptError):
    """A preemption signal stopped training after a checkpoint was saved."""

    exit_code = EXIT_PREEMPTED
    label = "stopped"


class SignalledOutsideTraining(MmadaptError):
    """A preemption signal arrived outside a training loop (data preparation, set-up, between stages)."""

    exit_code = EXIT_PREEMPTED
    label = "stopped"


#: what the run is doing outside its training loops, named when a signal stops it there
_WORK = ["setting up the run"]


def doing(what: str) -> None:
    """Note what the run does now (`pretrain: preparing data and the model`), for `stop_on_signal`'s message."""
    _WORK[0] = what


@contextlib.contextmanager
def stop_on_signal() -> Iterator[None]:
    """Turn a preemption signal outside a training loop into `SignalledOutsideTraining` (one line, exit 75):
    a training loop's `PreemptionWatch` takes the signals over while it runs, and gives them back after."""
    def stop(signum: int, frame: Any) -> None:
        raise SignalledOutsideTraining(
            f"{signal.Signals(signum).name} received while {_WORK[0]} (before a training loop saved anything of "
            "it): nothing finished was lost (finished stages and saved checkpoints stay); run the same command "
            "again to continue")

    doing("setting up the run (reading the recipe, starting the processes)")
    previous = {}
    try:
        previous = {sig: signal.signal(sig, stop) for sig in PREEMPTION_SIGNALS}
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class PreemptionWatch:
    """While active, SIGTERM and SIGUSR1 only note that the job must stop; `requested()` tells every
    rank at once (one tiny all-reduce per step with several ranks), so all of them stop after the
    same step even when the signal reached only some of them."""

    def __init__(self, device: torch.device, world_size: int):
        self.device, self.world_size = device, world_size
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "PreemptionWatch":
        for sig in PREEMPTION_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._note)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _note(self, signum: int, frame: Any) -> None:
        self.received = self.received or signal.Signals(signum).name

    def requested(self) -> bool:
        """Whether any rank received a preemption signal (the same answer on every rank)."""
        if self.world_size == 1:
            return self.received is not None
        anyone = max_across_ranks(1.0 if self.received else 0.0, self.device) > 0
        if anyone and self.received is None:
            self.received = "a signal on another rank"
        return anyone


class NonFiniteGuard:
    """Watches the loss and gradient norm of every step (`train.nonfinite`, `train.max_nonfinite_skips`).

    `stop`: the first step with a non-finite loss or gradient norm is noted on the device (no host sync)
    and read by `first_bad_step()` at logging and checkpoint steps, so a checkpoint is only ever saved
    from finite weights. `skip`: each micro-batch's loss is checked before its backward pass (a host
    sync and, with several ranks, an all-reduce); a non-finite one is dropped by every rank and the next
    batch takes its place, at most `max_skips` times per stage.
    """

    def __init__(self, mode: str, max_skips: int, device: torch.device, skips: int = 0):
        self.mode, self.max_skips, self.device = mode, max_skips, device
        self.skips = skips
        self._first_bad = torch.zeros((), dtype=torch.int64, device=device)

    @property
    def skipping(self) -> bool:
        return self.mode == "skip"

    def keep_micro_batch(self, loss: torch.Tensor) -> bool:
        """`skip` mode: whether every rank's loss is finite; counts the dropped ones (see `exhausted`)."""
        bad = max_across_ranks(0.0 if bool(torch.isfinite(loss.detach()).all()) else 1.0, self.device) > 0
        self.skips += int(bad)
        return not bad

    @property
    def exhausted(self) -> bool:
        """More micro-batches were dropped than `train.max_nonfinite_skips` allows."""
        return self.skips > self.max_skips

    def after_step(self, step: int, loss: torch.Tensor, engine: Any) -> None:
        """Note `step` if its loss or gradient norm is not finite (on the device: nothing waits)."""
        finite = torch.isfinite(loss.detach()).all()
        norm = engine.get_global_grad_norm() if hasattr(engine, "get_global_grad_norm") else None
        if getattr(engine, "fp16_enabled", lambda: False)():
            norm = None  # fp16's loss scaler skips an overflowing step itself (its norm is inf then)
        if isinstance(norm, torch.Tensor):
            finite = finite & torch.isfinite(norm.detach().to(self.device)).all()
        elif isinstance(norm, float) and not math.isfinite(norm):
            finite = torch.zeros((), dtype=torch.bool, device=self.device)
        self._first_bad = torch.where((self._first_bad == 0) & ~finite, torch.tensor(step, device=self.device),
                                      self._first_bad)

    def first_bad_step(self) -> int | None:
        """The first step any rank saw go non-finite, or None (a host sync; an all-reduce with several ranks)."""
        mine = int(self._first_bad.item()) or math.inf
        first = -max_across_ranks(-mine, self.device)  # the smallest over the ranks
        return None if first == math.inf else int(first)


def diverged_message(label: str, step: int, last_good: Any, skips: int | None = None) -> str:
    """The one line a diverged stage stops with (`skips`: the micro-batches `skip` mode dropped, over its limit)."""
    where = (f"the last good checkpoint is {last_good} (kept: the same command resumes from it; a lower train.lr "
             "starts the stage over)" if last_good is not None else
             "no checkpoint was saved before it (lower train.lr or raise train.warmup_steps)")
    what = ("the loss or gradient norm became NaN or infinite" if skips is None else
            f"a NaN or infinite loss made {skips} micro-batches be dropped, more than train.max_nonfinite_skips allows,")
    return f"{label}: {what} at step {step}; stopped, {where}"
