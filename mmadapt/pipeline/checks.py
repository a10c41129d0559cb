"""Checks across recipe sections that the schema cannot express, made before any work.

Every command that reads a recipe builds its run plan with `build_run_plan`, which runs
`check_pipeline` once, so a recipe that validates is one `train` starts, and `train` refuses a
bad one before any model is built or data read. Problems are reported like the schema's: every
one at once, each with its dotted path.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmadapt.errors import RecipeError
from mmadapt.pipeline.plan import (RunLayout, RunPlan, big_model_candidates, plan_runs, probe_task, stage_work_listed,
                                   starts_from_pretrained, task_languages)
from mmadapt.plugin_system.manager import get_plugins
from mmadapt.recipe.deepspeed_json import launched_world_size
from mmadapt.recipe.schema import STAGES, adapted_languages

Problems = list[tuple[str, str]]


def check_pipeline(cfg: Any, source: str = "recipe", data_files: bool = True, plugins: Any = None,
                   runs: list | None = None) -> None:
    """Raise a RecipeError listing every cross-section problem of the resolved recipe `cfg`.

    `data_files=False` leaves out local data files that do not exist (`recipe validate` only warns
    about those: a recipe is often checked on a machine other than the one holding its data).
    `runs`: the recipe's strategy runs when the caller planned them already (mmadapt.pipeline.plan).
    """
    plugins = plugins or get_plugins()
    problems = (stage_problems(cfg, plugins, runs) + language_problems(cfg) + task_problems(cfg) + report_problems(cfg)
                + restart_problems(cfg) + interleave_problems(cfg, plugins, runs) + adapt_restart_problems(cfg, plugins, runs)
                + shape_problems(cfg, plugins) + model_problems(cfg)
                + layer_count_problems(cfg, plugins)[0])
    if data_files:
        problems += missing_data_files(cfg, plugins)
    if problems:
        raise RecipeError(problems, source)


def stage_problems(cfg: Any, plugins: Any, runs: list | None = None) -> Problems:
    """`stages` in pipeline order, each once, with the stages each one needs.

    A stage may leave out what it does itself: `adapt` trains the tokenizers it needs (as
    `tokenizer` does), `transfer` fine-tunes the task models it needs (as `finetune` does).
    """
    stages = list(cfg.stages)
    problems: Problems = []
    repeated = [s for s in STAGES if stages.count(s) > 1]
    ordered = [s for s in STAGES if s in stages]
    if repeated:
        problems.append(("stages", f"{', '.join(repeated)} listed more than once; write [{', '.join(ordered)}]"))
    elif stages != ordered:
        problems.append(("stages", f"stages run in pipeline order ({' -> '.join(STAGES)}); "
                                   f"write [{', '.join(ordered)}]"))
    if "transfer" in stages and "adapt" not in stages:
        problems.append(("stages", "stage transfer needs adapt (it evaluates the adapted languages): "
                                   "add adapt to stages"))
    runs, planning = _runs_or_problems(cfg, runs)
    if planning:  # e.g. a `reuse` naming no earlier strategy
        return problems + planning
    needing = [run.name for run in runs if not starts_from_pretrained(run, plugins)]
    if "pretrain" not in stages and needing:
        who = f"strategy {needing[0]!r} needs" if len(needing) == 1 else f"strategies {', '.join(needing)} need"
        problems.append(("stages", f"{who} stage pretrain (only a strategy that uses a given model as it is "
                                   "starts from model.pretrained without it): add pretrain to stages"))
    return problems


def _runs_or_problems(cfg: Any, runs: list | None) -> tuple[list, Problems]:
    """`runs` when the caller planned them, else the recipe's planned now; ([], why) when it cannot be planned."""
    if runs is not None:
        return runs, []
    try:
        return plan_runs(cfg), []
    except RecipeError as exc:
        return [], exc.problems


def language_problems(cfg: Any) -> Problems:
    """The languages `adapt` trains exist and have text."""
    adapted = adapted_languages(cfg)
    problems: Problems = [("adapt.languages", f"{lang!r} has no entry under languages:")
                          for lang in cfg.adapt.languages if lang not in cfg.languages]
    if "adapt" in cfg.stages and not adapted:
        problems.append(("languages", "stages lists adapt but no languages are defined "
                                      "(languages: {code: {corpus: [...]}})"))
    problems += [(f"languages.{lang}.corpus", "is empty: give the new language's text") for lang in adapted
                 if lang in cfg.languages and not cfg.languages[lang].corpus]
    return problems


def task_problems(cfg: Any) -> Problems:
    """Fine-tuning and transfer have tasks, and transfer evaluates each task on some adapted language."""
    stages = list(cfg.stages)
    if not {"finetune", "transfer"} & set(stages):
        return []
    if not cfg.tasks:
        return [("tasks", "is empty but stages lists finetune/transfer: add a task (e.g. [{name: xnli, ...}])")]
    adapted = [lang for lang in adapted_languages(cfg) if lang in cfg.languages]
    if "transfer" not in stages or not adapted:
        return []
    return [(f"tasks[{i}].languages", f"lists none of the adapted languages ({', '.join(adapted)}), so transfer "
                                      f"would evaluate task {task.name!r} on nothing: add them to the list")
            for i, task in enumerate(cfg.tasks) if not task_languages(task, adapted)]


def shape_problems(cfg: Any, plugins: Any) -> Problems:
    """`data.block_size` and each task's sequence length (the option its plugin declares, e.g. `max_length`)
    fit the model's position embeddings (read from its config; no model is built)."""
    positions, where = model_positions(cfg, plugins)
    if positions is None:
        return []
    offset = plugins.model_families.get(cfg.model.family).position_offset
    lengths = [("data.block_size", cfg.data.block_size)]
    for i, section in enumerate(cfg.tasks):
        task = plugins.tasks.get(section.name)
        length = task.option_value(section, task.sequence_length_option)
        if isinstance(length, int):
            lengths.append((f"tasks[{i}].{task.sequence_length_option}", length))
    fix = "" if cfg.model.pretrained else " or raise model.config.max_position_embeddings"
    return [(path, f"{length}{f' + {offset}' if offset else ''} positions exceed the model's {positions} ({where}); "
                   f"the allowed range is 1 to {positions - offset}: lower {path}{fix}")
            for path, length in lengths if int(length) + offset > positions]


def pretrained_config_file(spec: str) -> Path | None:
    """The `config.json` `model.pretrained` stands for: in the directory, or in a run's `pretrain/big`."""
    path = Path(spec).expanduser()
    found = [c / "config.json" for c in big_model_candidates(path) if (c / "config.json").is_file()]
    return found[0] if found else None


def model_problems(cfg: Any) -> Problems:
    """`model.pretrained` naming a local directory that is neither a model nor an mmadapt run."""
    spec = cfg.model.pretrained
    if not spec or not Path(str(spec)).expanduser().is_dir():
        return []
    path = Path(str(spec)).expanduser()
    if pretrained_config_file(str(spec)) is None and not (path / "recipe.yaml").is_file():
        return [("model.pretrained", f"{spec} is a directory without config.json: not a model written by "
                                     "save_pretrained (nor an mmadapt run's output_dir)")]
    return []


def model_positions(cfg: Any, plugins: Any) -> tuple[int | None, str]:
    """The big model's position embeddings and where they were read from; (None, "") when unknown here."""
    config, where = model_config(cfg, plugins)
    if config is None:
        return None, ""
    return plugins.model_families.get(cfg.model.family).max_positions(config), _config_key("max_position_embeddings", where)


def _config_key(key: str, where: str) -> str:
    """How a message names a model config key read from `where` (`model_config`)."""
    return f"model.config.{key}" if where == "model.config" else f"{key} in {where}"


def model_config(cfg: Any, plugins: Any) -> tuple[dict | None, str]:
    """The big model's config (its `config.json`, or `model.config` when built from scratch) and where it
    was read from, without building a model; (None, "") when unknown here (a cached hub name, a run
    that has not written its model yet)."""
    if cfg.model.family not in plugins.model_families:
        return None, ""
    if not cfg.model.pretrained:
        return dict(cfg.model.config), "model.config"
    path = pretrained_config_file(str(cfg.model.pretrained))
    if path is None:
        return None, ""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, ""
    return (config, str(path)) if isinstance(config, dict) else (None, "")


def layer_count_problems(cfg: Any, plugins: Any) -> tuple[Problems, Problems]:
    """(problems, warnings): a strategy's `k` (the big-model layers its mini-model takes) that is not below
    the big model's layer count. A strategy that declares `mini_layers_option` refuses it; any other
    strategy with a `k` option is warned about (the mini-model would be as deep as the big one)."""
    config, where = model_config(cfg, plugins)
    layers = (config or {}).get("num_hidden_layers")
    if not isinstance(layers, int):
        return [], []
    problems: Problems = []
    warnings: Problems = []
    entries = [(f"strategies[{i}]", entry) for i, entry in enumerate(cfg.strategies)] or [("strategy", cfg.strategy)]
    for path, entry in entries:
        if entry.name not in plugins.strategies:
            continue
        option = getattr(plugins.strategies.get(entry.name), "mini_layers_option", None)
        value = entry.get(option or "k")
        if not isinstance(value, int) or value < layers:
            continue
        message = (f"{value} is not below the big model's {layers} layers ({_config_key('num_hidden_layers', where)}): the "
                   f"mini-model would be as deep as the big one and save no compute; the allowed range is 1 to "
                   f"{layers - 1}")
        (problems if option else warnings).append((f"{path}.{option or 'k'}", message))
    return problems, warnings


def report_problems(cfg: Any) -> Problems:
    """A run that compares strategies names one of them as the report's baseline."""
    names = [entry.name for entry in cfg.strategies]
    if len(names) < 2 or cfg.report.baseline in names:
        return []
    return [("report.baseline", f"{cfg.report.baseline!r} is not one of the run's strategies ({', '.join(names)}); "
                                "compute_to_reach measures the others against it: name one of them")]


def restart_problems(cfg: Any) -> Problems:
    """`finetune.restart` compares two windows of steps that do not overlap."""
    restart = cfg.finetune.restart
    if not restart.at_step or restart.at_step >= 2 * restart.window:
        return []
    return [("finetune.restart.at_step", f"{restart.at_step} leaves no room for two windows of {restart.window} "
                                         "steps (the first steps' and the last before the check): give at least "
                                         f"{2 * restart.window}, or a smaller finetune.restart.window")]


def interleave_problems(cfg: Any, plugins: Any, runs: list | None = None) -> Problems:
    """`adapt.big_model_every` interleaves big-model steps among the mini-model's: every step would be `full`; and
    each such step trains on `adapt.big_model_micro_batch_size` of its step's sequences, so no more than the adapt
    micro-batch of a strategy with a mini-model (`mini_layers_option`)."""
    if int(cfg.adapt.big_model_every) == 1:
        return [("adapt.big_model_every", "1 runs every adapt step over the big model, which is the `full` strategy: "
                                          "give 2 or more (every Nth step over the big model), or 0 for none")]
    for run in _runs_or_problems(cfg, runs)[0]:  # a recipe that cannot be planned: stage_problems says why
        adapt, micro = run.adapt_cfg.adapt, int(run.adapt_cfg.train.micro_batch_size)
        if _has_mini_model(run, plugins) and int(adapt.big_model_every) and int(adapt.big_model_micro_batch_size) > micro:
            return [("adapt.big_model_micro_batch_size",
                     f"{int(adapt.big_model_micro_batch_size)} is more than strategy {run.name}'s adapt micro-batch "
                     f"({micro}, adapt.train.micro_batch_size): each of adapt.big_model_every's big-model steps trains "
                     f"on that many of its step's sequences; give at most {micro}, or 0 for the whole micro-batch")]
    return []


def _has_mini_model(run: Any, plugins: Any) -> bool:
    """Whether `run`'s strategy adapts over a mini-model of its own (it declares `mini_layers_option`)."""
    return run.name in plugins.strategies and bool(getattr(plugins.strategies.get(run.name), "mini_layers_option",
                                                           None))


def adapt_restart_problems(cfg: Any, plugins: Any, runs: list | None = None) -> Problems:
    """`adapt.restart` probes a mini strategy's embeddings over a task's fine-tuned model and starts again with the
    big-model steps on the whole micro-batch: it needs such steps, a task whose evaluation sets translate one
    another, and the fine-tune (a probe past the adaptation's last step is only warned about:
    `unreached_restart_checks`)."""
    restart = cfg.adapt.restart
    probed = [run for run in _runs_or_problems(cfg, runs)[0]
              if run.whole_batch_attempt is not None and _has_mini_model(run, plugins)]
    if not probed or "adapt" not in cfg.stages:
        return []
    problems: Problems = []
    if not (int(cfg.adapt.big_model_steps) or int(cfg.adapt.big_model_every)):
        problems.append(("adapt.restart", "the restart runs the big-model steps on the whole micro-batch, and there "
                                          "are none: set adapt.big_model_steps or adapt.big_model_every, or "
                                          "adapt.restart.at_step: 0"))
    section = probe_task(cfg, plugins)
    if restart.task and section is None:
        names = ", ".join(task.name for task in cfg.tasks)
        problems.append(("adapt.restart.task", f"{restart.task!r} is not one of tasks: ({names})"))
    elif cfg.tasks and (section is None or not plugins.tasks.get(section.name).parallel_predictions):
        named = f"task {restart.task!r} does not have" if restart.task else "no task of tasks: has"
        problems.append(("adapt.restart.task", f"{named} evaluation sets that translate one another, example by "
                                               "example (the probe compares each example's answers in the two "
                                               "languages): name one that has, or set adapt.restart.at_step: 0"))
    if not stage_work_listed("finetune", list(cfg.stages)):
        problems.append(("stages", "adapt.restart probes the embeddings over the fine-tuned model, so the fine-tune "
                                   "runs before adapt: list finetune (and transfer) in stages, or set "
                                   "adapt.restart.at_step: 0"))
    return problems


def missing_data_files(cfg: Any, plugins: Any = None) -> Problems:
    """`data.train` / `data.eval` entries, and the corpora of the languages a recipe adapts (when it trains
    their tokenizers), and the task files the finetune and transfer stages read, naming a local file or
    directory that does not exist; a `model.pretrained` found nowhere."""
    named = [(f"data.{section}[{i}]", str(spec)) for section in ("train", "eval") for i, spec in enumerate(cfg.data[section])]
    if stage_work_listed("tokenizer", list(cfg.stages)):
        for language in adapted_languages(cfg):
            section = cfg.languages.get(language) or {}
            named += [(f"languages.{language}.{key}[{i}]", str(spec))
                      for key in ("corpus", "eval_corpus") for i, spec in enumerate(section.get(key) or [])]
    named += task_files(cfg, plugins or get_plugins())
    missing = [(where, f"{spec}: no such file or directory") for where, spec in named
               if not spec.startswith(("hf:", "synth:")) and not os.path.exists(os.path.expanduser(spec))]
    return missing + pretrained_problems(cfg)


def task_files(cfg: Any, plugins: Any) -> list[tuple[str, str]]:
    """(dotted path, file) for every local task file the recipe's finetune and transfer stages read."""
    stages = list(cfg.stages)
    languages = adapted_languages(cfg)
    named: list[tuple[str, str]] = []
    for i, section in enumerate(cfg.tasks):
        if section.name not in plugins.tasks:
            continue  # reported where the recipe is loaded
        task = plugins.tasks.get(section.name)
        reads = [("train", cfg.transfer.source_language)] if stage_work_listed("finetune", stages) else []
        if "transfer" in stages:
            reads += [(cfg.transfer.split, lang)
                      for lang in [cfg.transfer.source_language, *task_languages(section, languages)]]
        for split, language in reads:
            named += [(f"tasks[{i}] ({split}, {language})", path) for path in task.data_files(section, split, language)]
    first: dict[str, str] = {}
    for where, path in named:  # each file once, under the first place that reads it
        first.setdefault(path, where)
    return [(where, path) for path, where in first.items()]


def pretrained_problems(cfg: Any) -> Problems:
    """`model.pretrained` that is neither a local directory nor a model in the local hub cache."""
    spec = str(cfg.model.pretrained or "")
    if not spec or Path(spec).expanduser().exists():
        return []
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(spec, "config.json")
    except ValueError:  # not a hub name either (e.g. an absolute path)
        cached = None
    if isinstance(cached, str):
        return []
    return [("model.pretrained", f"{spec}: no such directory, nor a model in the local hub cache")]


def build_run_plan(cfg: DictConfig, plugins: Any = None, source: str = "recipe",
                   data_files: bool = True) -> RunPlan:
    """Check the resolved recipe `cfg` (every problem at once, RecipeError) and plan its run, once.

    `data_files=False` leaves out local data files that do not exist (as `check_pipeline`)."""
    world = launched_world_size()
    try:
        runs = plan_runs(cfg, world)
    except RecipeError:  # reported with every other problem
        check_pipeline(cfg, source, data_files=data_files, plugins=plugins)
        raise
    check_pipeline(cfg, source, data_files=data_files, plugins=plugins, runs=runs)
    return RunPlan(cfg, world, tuple(adapted_languages(cfg)), tuple(cfg.stages), RunLayout.of(cfg), tuple(runs))


def check_before_work(recipe: Path, overrides: list[str], plugins: Any,
                      local_files: str = "error") -> tuple[Any, list[str]]:
    """The run plan (mmadapt.pipeline.plan.RunPlan) of `recipe` with `overrides`, checked as `train` checks
    it before any work: schema and ranges, the pipeline, positions, layer counts, `model.pretrained` and
    every local data and task file; and the warnings (one line each) to print.

    Every command that reads a recipe (`train`, `recipe validate`, `recipe show`, `compute`,
    `data prepare`) calls this.
    Missing local files raise with the rest (`local_files="error"`) or are warnings (`"warn"`: a recipe
    is often shown or checked on a machine other than the one holding its data).
    """
    from mmadapt.recipe import load_recipe

    cfg = load_recipe(recipe, overrides, plugins)
    plan = build_run_plan(cfg, plugins, str(recipe), data_files=local_files == "error")
    warnings = [f"{where}: {message}" for where, message in layer_count_problems(cfg, plugins)[1]]
    warnings += shadowed_overrides(cfg, overrides) + unreached_restart_checks(plan, plugins)
    if local_files != "error":
        warnings += [f"{where}: {message} here (train needs it)" for where, message in missing_data_files(cfg, plugins)]
    return plan, warnings


def unreached_restart_checks(plan: RunPlan, plugins: Any) -> list[str]:
    """One line for each task whose fine-tune ends before `finetune.restart.at_step`, and for each strategy with a
    mini-model whose adaptation ends before `adapt.restart.at_step`: that check would never run (the stage leaves it
    out without a word)."""
    lines: list[str] = []
    fine_tunes = "finetune" in plan.stages or "transfer" in plan.stages
    for run in plan.strategies:
        for task, cfg in run.finetune_cfgs.items() if fine_tunes else ():
            at_step, steps = int(cfg.finetune.restart.at_step), int(cfg.train.max_steps)
            line = (f"finetune.restart.at_step: {at_step} is not before task {task}'s last fine-tune step ({steps}): "
                    f"its check of a fine-tune still on its starting loss never runs; give a step under {steps}, or 0 "
                    "to turn it off")
            if at_step and at_step >= steps and line not in lines:
                lines.append(line)
        at_step, steps = int(run.adapt_cfg.adapt.restart.at_step), int(run.adapt_cfg.train.max_steps)
        if _has_mini_model(run, plugins) and "adapt" in plan.stages and at_step and at_step >= steps:
            lines.append(f"adapt.restart.at_step: {at_step} is not before strategy {run.name}'s last adapt step "
                         f"({steps}): its probe of embeddings that missed the big model's basin never runs; give a step "
                         f"under {steps}, or 0 to turn it off")
    return lines


#: (global `train:` section, the list whose entries may set their own, the entry's key): the entry's wins
_PER_ENTRY_TRAIN = (("finetune.train", "tasks", "finetune_train"), ("adapt.train", "strategies", "adapt_train"),
                    ("train", "strategies", "train"))


def shadowed_overrides(cfg: Any, overrides: list[str]) -> list[str]:
    """One line for each command-line override of a global `train:` value that a task's or strategy's own
    `train:` value beats (`finetune.train.max_steps=10` against `tasks[0].finetune_train.max_steps`)."""
    from mmadapt.recipe.loading import parse_overrides

    given: dict[str, Any] = {}
    for key, value in parse_overrides([o for o in overrides if not o.startswith("~")])[0]:
        given.update({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {key: value})
    lines = []
    for section, list_key, entry_key in _PER_ENTRY_TRAIN:
        entries = list(cfg[list_key]) or ([cfg.strategy] if list_key == "strategies" else [])
        for i, entry in enumerate(entries):
            own = entry.get(entry_key) or {}
            for key, value in given.items():
                name = key[len(section) + 1:] if key.startswith(section + ".") else None
                if name in own and own[name] != value:
                    where = f"{list_key}[{i}]" if list(cfg[list_key]) else "strategy"
                    lines.append(f"{where}.{entry_key}.{name} ({own[name]}) beats the command line's {key}={value} "
                                 f"for {entry.name!r}; set {where.replace('[', '.').rstrip(']')}.{entry_key}."
                                 f"{name}={value} to change it")
    return lines
