"""The run plan: a resolved recipe expanded, once, into what every command needs to know before any work.

`build_run_plan` (mmadapt.pipeline.checks) checks the recipe and returns a frozen `RunPlan`: the world
size, the adapted languages, the run's directory layout, and per strategy its resolved config and the
config of each of its stages, with its DeepSpeed JSON filled once. `mmadapt train` (mmadapt.pipeline.runner),
`mmadapt compute`, `mmadapt data prepare`, `mmadapt recipe validate` and `recipe show` all build it the
same way, so the settings a stage runs with (its `train:` overrides: `strategies[i].train` for
pretraining, `adapt.train` then `strategies[i].adapt_train` for adapt, `finetune.train` then
`tasks[i].finetune_train` for each task) are decided in one place.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

from omegaconf import DictConfig, OmegaConf

from mmadapt.errors import MmadaptError, RecipeError
from mmadapt.recipe.deepspeed_json import fill_auto, launched_world_size


#: a strategy's pretrain stage directory, and the big model it writes there
PRETRAIN_DIR, BIG_MODEL_DIR = "pretrain", "big"


def big_model_candidates(path: Path) -> tuple[Path, ...]:
    """Where the big model lies when `model.pretrained` names `path`: a `save_pretrained` directory itself,
    a run's `pretrain/` stage directory, or a one-strategy run's `output_dir` (its `pretrain/big`)."""
    return path, path / BIG_MODEL_DIR, path / PRETRAIN_DIR / BIG_MODEL_DIR


@dataclass(frozen=True)
class RunLayout:
    """Where a run writes: one directory per strategy (`output_dir` itself when the recipe has one strategy)."""

    output_dir: Path
    #: several strategies: each writes into `output_dir/<strategy name>`
    several: bool

    @classmethod
    def of(cls, cfg: DictConfig) -> "RunLayout":
        """The layout of the resolved recipe `cfg`: a directory per strategy when it lists `strategies:`."""
        return cls(Path(cfg.output_dir), several=len(cfg.strategies) > 0)

    @property
    def run_lock(self) -> Path:
        """The lock the run writing `output_dir` holds (mmadapt.files.locks): one run (or `data prepare`) at a time."""
        return self.output_dir / ".run.lock"

    @property
    def tokenizers(self) -> Path:
        """The new languages' tokenizers, which every strategy shares."""
        return self.output_dir / "tokenizers"

    def strategy_dir(self, strategy: str) -> Path:
        """The directory `strategy`'s stages write into."""
        return self.output_dir / strategy if self.several else self.output_dir

    def stage_dir(self, strategy: str, *unit: str) -> Path:
        """A stage unit's directory: `stage_dir("full", "adapt", "vo")` is `<full's directory>/adapt/vo`."""
        return self.strategy_dir(strategy).joinpath(*unit)

    def big_model(self, strategy: str) -> Path:
        """The big model `strategy`'s pretraining writes (which `reuse` and `init_from` start from)."""
        return self.stage_dir(strategy, PRETRAIN_DIR, BIG_MODEL_DIR)


class AdaptAttempt(NamedTuple):
    """The configs an adapt attempt runs with: the stage's, and its first big-model steps' (None: none)."""

    cfg: DictConfig
    big_model_steps_cfg: DictConfig | None


@dataclass(frozen=True)
class StrategyRun:
    """One strategy's pass through the pipeline, with the resolved config of each of its stages."""

    name: str
    cfg: DictConfig
    run_dir: Path
    #: the strategy whose big model (and fine-tuned task models) this run reuses
    reuse: str | None
    #: the strategy whose pretrained big model this run's own pretraining starts from
    init_from: str | None
    #: `train` with `strategies[i].train` over it
    pretrain_cfg: DictConfig
    #: `train` with `adapt.train`, then `strategies[i].adapt_train`, over it
    adapt_cfg: DictConfig
    #: the adapt stage's first `adapt.big_model_steps` steps over the big model (None when there are none)
    big_model_steps_cfg: DictConfig | None
    #: by task name: `train` with `finetune.train`, then `tasks[i].finetune_train`, over it
    finetune_cfgs: Mapping[str, DictConfig]
    #: the whole run's output directory (`run_dir` is this strategy's folder in it, or the same)
    run_root: Path | None = None
    #: the attempt `adapt.restart` starts when the embeddings missed the big model's basin: every big-model step on
    #: the adapt stage's whole micro-batch (None: `adapt.restart` is off, or probes past the adaptation's last step)
    whole_batch_attempt: AdaptAttempt | None = None


@dataclass(frozen=True)
class RunPlan:
    """A checked recipe expanded into everything the pipeline's stages need, built once per command."""

    cfg: DictConfig
    world_size: int
    #: the languages `adapt` trains embeddings for (`adapt.languages`, or every entry of `languages:`)
    languages: tuple[str, ...]
    stages: tuple[str, ...]
    layout: RunLayout
    strategies: tuple[StrategyRun, ...]


def plan_runs(cfg: DictConfig, world_size: int | None = None) -> list[StrategyRun]:
    """`strategies:` entries (or the single `strategy:`) as StrategyRuns (RecipeError for a `reuse` or
    `init_from` naming no earlier strategy).

    With one strategy the run writes straight into `output_dir`; with several, each writes
    into `output_dir/<strategy name>`.
    """
    world = launched_world_size() if world_size is None else world_size
    entries = [dict(e) for e in cfg.strategies] or [OmegaConf.to_container(cfg.strategy, resolve=True)]
    layout = RunLayout.of(cfg)
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise RecipeError([("strategies", f"each strategy may appear once; got {names}")])
    runs: list[StrategyRun] = []
    for i, entry in enumerate(entries):
        reuse, init_from = entry.get("reuse"), entry.get("init_from")
        plain = OmegaConf.to_container(cfg, resolve=True)
        plain["strategy"] = entry
        plain["output_dir"] = str(layout.strategy_dir(entry["name"]))
        if reuse and init_from:
            raise RecipeError([(f"strategies[{i}]", "give reuse or init_from, not both (reuse already starts "
                                                    "from the reused strategy's big model)")])
        earlier = {r.name for r in runs}
        for key, source in (("reuse", reuse), ("init_from", init_from)):
            if source is None:
                continue
            if source not in earlier:
                raise RecipeError([(f"strategies[{i}].{key}",
                                    f"{source!r} must name a strategy listed before {entry['name']!r}")])
            plain["model"]["pretrained"] = str(layout.big_model(source))
        runs.append(_strategy_run(entry["name"], OmegaConf.create(plain), layout, reuse, init_from, world))
    return runs


def _strategy_run(name: str, cfg: DictConfig, layout: RunLayout, reuse: str | None, init_from: str | None,
                  world: int) -> StrategyRun:
    """A strategy's run with each stage's config resolved (and its DeepSpeed JSON filled) once."""
    strategy = cfg.strategy
    pretrain = stage_cfg(cfg, strategy.train, world_size=world) if strategy.get("train") else cfg
    adapt = stage_cfg(cfg, cfg.adapt.train, strategy.get("adapt_train"), world_size=world)
    finetune = {task.name: stage_cfg(cfg, cfg.finetune.train, task.get("finetune_train"), world_size=world)
                for task in cfg.tasks}
    return StrategyRun(name, cfg, layout.strategy_dir(name), reuse, init_from, pretrain, adapt,
                       _big_model_steps_cfg(adapt, world), MappingProxyType(finetune), layout.output_dir,
                       _whole_batch_attempt(adapt, world) if 0 < adapt.adapt.restart.at_step < adapt.train.max_steps
                       else None)


def _big_model_steps_cfg(adapt: DictConfig, world: int) -> DictConfig | None:
    """The adapt config of the first `adapt.big_model_steps` steps (over the big model, for a strategy with
    a mini-model): a constant learning rate after the warm-up, on `adapt.big_model_micro_batch_size`
    sequences a step when it is set (choosing the solution takes fewer sequences than refining it)."""
    steps = int(adapt.adapt.big_model_steps)
    if steps <= 0:
        return None
    overrides = {"max_steps": steps, "schedule": "constant", "warmup_steps": min(int(adapt.train.warmup_steps), steps)}
    if adapt.adapt.big_model_micro_batch_size > 0:
        overrides["micro_batch_size"] = int(adapt.adapt.big_model_micro_batch_size)
    return stage_cfg(adapt, overrides, world_size=world)


def _whole_batch_attempt(adapt: DictConfig, world: int) -> AdaptAttempt:
    """The adapt attempt `adapt.restart` starts: `adapt` with `adapt.big_model_micro_batch_size` 0 (the stage's
    own micro-batch), for the first big-model steps and the interleaved ones alike."""
    plain = OmegaConf.to_container(adapt, resolve=True)
    plain["adapt"]["big_model_micro_batch_size"] = 0
    whole = OmegaConf.create(plain)
    return AdaptAttempt(whole, _big_model_steps_cfg(whole, world))


def stage_cfg(cfg: DictConfig, *train_overrides: Any, world_size: int) -> DictConfig:
    """`cfg` with a stage's `train` overrides applied in order (later ones win; None or {} for none)
    and the DeepSpeed JSON refilled to match (for `world_size` ranks)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for overrides in train_overrides:
        plain["train"].update(OmegaConf.to_container(overrides, resolve=True) if isinstance(overrides, DictConfig)
                              else dict(overrides or {}))
    merged = OmegaConf.create(plain)
    ds, problems = fill_auto(plain["deepspeed"]["resolved"], merged, world_size, overwrite=True)
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


def probe_task(cfg: Any, plugins: Any) -> Any:
    """The task section whose fine-tuned model probes: `adapt.restart.task`, or the first of `tasks:` whose
    predictions compare across languages (None: there is none)."""
    wanted = cfg.adapt.restart.task
    for section in cfg.tasks:
        if section.name in plugins.tasks and (section.name == wanted if wanted
                                              else plugins.tasks.get(section.name).parallel_predictions):
            return section
    return None
