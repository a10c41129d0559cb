"""`mmadapt train --smoke`: a real recipe with every stage's steps capped, to try it on small files.

The caps are recipe overrides (so the run's saved `recipe.yaml` says what ran), and the run writes
into `<output_dir>-smoke`, never over a real run's outputs.
"""
from __future__ import annotations

from typing import Any

#: where a smoke run writes, beside the real run's output_dir
SMOKE_SUFFIX = "-smoke"
#: `train:` keys that count steps, capped in every train section
_STEP_KEYS = ("max_steps", "warmup_steps")


def smoke_overrides(cfg: Any, steps: int) -> list[str]:
    """The overrides that cap every stage of the resolved recipe `cfg` at `steps` steps: `train`, `adapt.train`,
    `finetune.train`, each strategy's `train`/`adapt_train`, each task's `finetune_train`, `adapt.big_model_steps`
    and the snapshot interval; and `output_dir` moved to `<output_dir>-smoke`."""
    overrides = [f"output_dir={cfg.output_dir}{SMOKE_SUFFIX}"]
    overrides += _capped("train", cfg.train, steps) + _capped("adapt.train", cfg.adapt.train, steps)
    overrides += _capped("finetune.train", cfg.finetune.train, steps)
    for i, entry in enumerate(cfg.strategies):
        for key in ("train", "adapt_train"):
            overrides += _capped(f"strategies.{i}.{key}", entry.get(key), steps)
    if not cfg.strategies:
        for key in ("train", "adapt_train"):
            overrides += _capped(f"strategy.{key}", cfg.strategy.get(key), steps)
    for i, task in enumerate(cfg.tasks):
        overrides += _capped(f"tasks.{i}.finetune_train", task.get("finetune_train"), steps)
    for key in ("big_model_steps", "snapshot_every"):
        if int(cfg.adapt[key]) > steps:
            overrides.append(f"adapt.{key}={steps}")
    return overrides


def _capped(prefix: str, section: Any, steps: int) -> list[str]:
    """`prefix.key=steps` for each step count a `train:` section (or a stage's partial one) sets above `steps`."""
    return [f"{prefix}.{key}={steps}" for key in _STEP_KEYS
            if isinstance((section or {}).get(key), int) and section.get(key) > steps]
