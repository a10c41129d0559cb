"""Expanding a recipe into one run per strategy, each with its own resolved config and the
resolved config of each of its stages.

`mmadapt train` (mmadapt.run), `mmadapt compute` and `mmadapt recipe validate` all plan with
this module, so the settings a stage runs with (its `train:` overrides: `strategies[i].train`
for pretraining, `adapt.train` then `strategies[i].adapt_train` for adapt, `finetune.train` then
`tasks[i].finetune_train` for each task) are decided in one place.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmadapt.errors import MmadaptError, RecipeError
from mmadapt.recipe.deepspeed_json import fill_auto


@dataclass
class StrategyRun:
    """One strategy's pass through the pipeline."""

    name: str
    cfg: DictConfig
    run_dir: Path
    #: the strategy whose big model (and fine-tuned task models) this run reuses
    reuse: str | None = None
    #: the strategy whose pretrained big model this run's own pretraining starts from
    init_from: str | None = None

    def pretrain_cfg(self) -> DictConfig:
        """The pretrain stage's config: `train` with `strategies[i].train` over it."""
        return stage_cfg(self.cfg, self.cfg.strategy.train) if self.cfg.strategy.get("train") else self.cfg

    def adapt_cfg(self) -> DictConfig:
        """The adapt stage's config: `train` with `adapt.train`, then `strategies[i].adapt_train`, over it."""
        return stage_cfg(self.cfg, self.cfg.adapt.train, self.cfg.strategy.get("adapt_train"))

    def finetune_cfg(self, task_section: Any) -> DictConfig:
        """A task's finetune stage config: `train` with `finetune.train`, then `tasks[i].finetune_train`, over it."""
        return stage_cfg(self.cfg, self.cfg.finetune.train, task_section.get("finetune_train"))


def plan_runs(cfg: DictConfig) -> list[StrategyRun]:
    """`strategies:` entries (or the single `strategy:`) as StrategyRuns.

    With one strategy the run writes straight into `output_dir`; with several, each writes
    into `output_dir/<strategy name>`.
    """
    entries = [dict(e) for e in cfg.strategies] or [OmegaConf.to_container(cfg.strategy, resolve=True)]
    several = len(cfg.strategies) > 0
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise RecipeError([("strategies", f"each strategy may appear once; got {names}")])
    runs: list[StrategyRun] = []
    for i, entry in enumerate(entries):
        reuse, init_from = entry.get("reuse"), entry.get("init_from")
        run_dir = Path(cfg.output_dir) / entry["name"] if several else Path(cfg.output_dir)
        plain = OmegaConf.to_container(cfg, resolve=True)
        plain["strategy"] = entry
        plain["output_dir"] = str(run_dir)
        if reuse and init_from:
            raise RecipeError([(f"strategies[{i}]", "give reuse or init_from, not both (reuse already starts "
                                                    "from the reused strategy's big model)")])
        earlier = {r.name: r for r in runs}
        for key, source in (("reuse", reuse), ("init_from", init_from)):
            if source is None:
                continue
            if source not in earlier:
                raise RecipeError([(f"strategies[{i}].{key}",
                                    f"{source!r} must name a strategy listed before {entry['name']!r}")])
            plain["model"]["pretrained"] = str(earlier[source].run_dir / "pretrain" / "big")
        runs.append(StrategyRun(entry["name"], OmegaConf.create(plain), run_dir, reuse, init_from))
    return runs


def stage_cfg(cfg: DictConfig, *train_overrides: Any) -> DictConfig:
    """`cfg` with a stage's `train` overrides applied in order (later ones win; None or {} for none)
    and the DeepSpeed JSON refilled to match."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for overrides in train_overrides:
        plain["train"].update(OmegaConf.to_container(overrides, resolve=True) if isinstance(overrides, DictConfig)
                              else dict(overrides or {}))
    merged = OmegaConf.create(plain)
    ds, problems = fill_auto(plain["deepspeed"]["resolved"], merged, int(os.environ.get("WORLD_SIZE", "1")),
                             overwrite=True)
    if problems:
        raise MmadaptError("; ".join(message for _, message in problems))
    merged.deepspeed.resolved = ds
    return merged


def starts_from_pretrained(run: StrategyRun, plugins: Any) -> bool:
    """Whether `run` takes its big model as given (`model.pretrained`, or the big model of the strategy
    it reuses) instead of pretraining: when its strategy says it `uses_pretrained_as_is` and one is given.

    Every other strategy writes something only its pretraining makes (a mini-model, a second head)."""
    if run.name not in plugins.strategies:  # an unknown name is reported where the recipe is loaded
        return False
    strategy = plugins.strategies.get(run.name)
    return bool(getattr(strategy, "uses_pretrained_as_is", False)) and bool(run.cfg.model.pretrained)


def reuses_big_model_as_is(run: StrategyRun, plugins: Any) -> bool:
    """Whether `run` takes the big model of the strategy it reuses as it is, with no pretraining of its own."""
    return bool(run.reuse) and starts_from_pretrained(run, plugins)


#: what each stage needs done first, when it is not listed itself: a stage does that work for itself
#: (`adapt` trains the tokenizers it needs, `transfer` fine-tunes the task models it needs)
DOES_ITSELF = {"tokenizer": ("adapt",), "finetune": ("transfer",)}


def stage_work_listed(stage: str, stages: list[str]) -> bool:
    """Whether a recipe with `stages` does `stage`'s work: listed, or needed by a listed stage that does it."""
    return stage in stages or any(later in stages for later in DOES_ITSELF.get(stage, ()))


def runs_stage(run: StrategyRun, stage: str, stages: list[str], plugins: Any) -> bool:
    """Whether `run` does `stage`'s work itself (a strategy that reuses another's big model as it is
    pretrains nothing; one that reuses another strategy fine-tunes nothing: it takes that one's models)."""
    if not stage_work_listed(stage, stages):
        return False
    if stage == "pretrain":
        return not reuses_big_model_as_is(run, plugins)
    if stage == "finetune":
        return not run.reuse
    return True


def task_languages(task_section: Any, languages: list[str]) -> list[str]:
    """The adapted `languages` transfer evaluates a task on: those its `languages` option lists
    (in `languages`' order), or all of them when the task lists none."""
    listed = list(task_section.get("languages") or [])
    return [lang for lang in languages if lang in listed] if listed else list(languages)
