"""Whether a training run has left the loss it started at: the check behind `finetune.restart`.

A classifier fine-tune can sit at the chance loss (ln 3 for three labels) for hundreds of steps before it
finds its feature, and when it leaves depends on the seed (head initialisation, data order): a known failure
of fine-tuning, whose cheap cure is another seed. `PlateauWatch` compares the mean training loss of the
`window` steps up to `at_step` with the mean of the first `window` steps; `StuckOnPlateau` says the run has
not left it. The sums stay on the device and are read twice, at the end of each window (one all-reduce each,
as at a logging step).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mmadapt.training.distributed import means_across_ranks

#: where a stage that starts a stuck training again records its restarts, so that a resumed run goes on with the
#: same attempt (mmadapt.pipeline.stages.finetune)
RESTART_RECORD = "restarts.json"
#: the training curve of a stuck attempt, kept beside the next one's as `<prefix><restart number>.jsonl`
STUCK_CURVE_PREFIX = "metrics_attempt_"


class StuckOnPlateau(Exception):
    """The training loss at the check is still at least `loss_fraction` of its first window's."""

    def __init__(self, step: int, first: float, latest: float):
        super().__init__(f"training loss {latest:.3f} over the steps up to {step}, against {first:.3f} over the first")
        self.step, self.first, self.latest = step, first, latest


@dataclass
class PlateauWatch:
    """Sums the loss of the first `window` steps and of the `window` steps up to `at_step`; at `at_step` raises
    `StuckOnPlateau` when the second mean is at least `loss_fraction` times the first (`raise_when_stuck`),
    or only records the two means (the last attempt, which runs to its end whatever they say)."""

    at_step: int
    window: int
    loss_fraction: float
    raise_when_stuck: bool = True
    #: the two windows' means once `at_step` is passed (None before)
    first: float | None = None
    latest: float | None = None

    def __post_init__(self) -> None:
        self._sum: torch.Tensor | None = None
        self._count = 0

    def after_step(self, step: int, loss: torch.Tensor, device: torch.device) -> None:
        """Add `step`'s loss (a device scalar) to its window; at the end of a window, read its mean across
        ranks (one all-reduce); at `at_step`, compare the two."""
        in_first = step <= self.window
        if not (in_first or self.at_step - self.window < step <= self.at_step):
            return
        value = loss.detach().double()
        self._sum = value if self._sum is None else self._sum + value
        self._count += 1
        if step not in (self.window, self.at_step):
            return
        mean = means_across_ranks({"loss": self._sum / self._count}, device)["loss"]
        self._sum, self._count = None, 0
        if in_first:
            self.first = mean
            return
        self.latest = mean
        if self.raise_when_stuck and self.first is not None and self.stuck():
            raise StuckOnPlateau(self.at_step, self.first, mean)

    def stuck(self) -> bool:
        """Whether the check found the loss still on its plateau (False before `at_step`)."""
        return self.latest is not None and self.first is not None and self.latest >= self.loss_fraction * self.first

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps, so that a resumed run compares the same first window: both means."""
        return {"first": self.first, "latest": self.latest}

    def load(self, state: dict[str, Any] | None) -> None:
        """Continue from a checkpoint's `state()`. A window the checkpoint was taken inside counts again from
        the resumed step (its mean is over the steps seen since)."""
        if state:
            self.first, self.latest = state.get("first"), state.get("latest")
