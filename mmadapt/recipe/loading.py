"""Read a recipe: schema defaults <- YAML file <- command-line overrides, then validate.

Nothing heavy happens here: no model is built and no data is read, so a wrong recipe
fails in a second with every problem listed at once.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mmadapt.errors import MmadaptError, RecipeError
from mmadapt.files.atomic import write_text_atomic
from mmadapt.recipe.deepspeed_json import launched_world_size, resolve_deepspeed
from mmadapt.recipe.schema import Recipe, TaskSection
from mmadapt.recipe.validation import Checker, merge_option_classes

RESOLVED_RECIPE_NAME = "recipe.yaml"
#: `${recipe_dir:}` in a recipe: the absolute directory of the recipe file (for files shipped beside it)
RECIPE_DIR_RESOLVER = "recipe_dir"
#: the filled-in DeepSpeed JSON of a run, saved beside its recipe
RESOLVED_DEEPSPEED_NAME = "deepspeed.json"


def parse_overrides(args: Sequence[str]) -> tuple[list[tuple[str, Any]], list[str]]:
    """Split `key=value` and `~key` arguments into (sets, deletions); refuse anything else."""
    sets, deletions = [], []
    for arg in args:
        if arg.startswith("-"):
            hint = arg.lstrip("-").replace("-", "_")
            example = hint if "=" in hint else f"{hint}=VALUE"
            raise MmadaptError(f"unexpected option {arg!r}: recipe overrides are written key=value "
                               f"(e.g. {example}, train.max_steps=10) and ~key deletes a key")
        if arg.startswith("~"):
            deletions.append(arg[1:])
        elif "=" in arg:
            key = arg.split("=", 1)[0]
            try:
                parsed = OmegaConf.to_container(OmegaConf.from_dotlist([arg]), resolve=False)
            except OmegaConfBaseException as exc:
                raise MmadaptError(f"cannot read override {arg!r}: {_first_line(exc)}") from None
            for part in key.split("."):  # the value as written: a `${...}` resolves after merging
                parsed = parsed[part]
            sets.append((key, parsed))
        else:
            raise MmadaptError(f"cannot read override {arg!r}: write key=value (e.g. output_dir=runs/try1) or ~key")
    return sets, deletions


def load_recipe(path: str | Path | None, overrides: Sequence[str] = (), plugins: Any = None) -> DictConfig:
    """The resolved, validated recipe as a typed, read-only OmegaConf config."""
    if plugins is None:
        from mmadapt.plugin_system.manager import get_plugins
        plugins = get_plugins()
    recipe_path = Path(path) if path is not None else None
    user = _read_yaml(recipe_path) if recipe_path is not None else OmegaConf.create({})
    sets, deletions = parse_overrides(overrides)
    source = str(recipe_path) if recipe_path else "overrides"
    problems = _apply_overrides(user, sets, deletions)
    _register_recipe_dir(recipe_path)
    try:
        raw = OmegaConf.to_container(user, resolve=True)
    except OmegaConfBaseException as exc:
        raise RecipeError([(getattr(exc, "full_key", None) or "<interpolation>", _first_line(exc))], source) from None
    checker = Checker(plugins)
    checker.check_section(raw, Recipe, "")
    problems += checker.problems
    if problems:
        raise RecipeError(problems, source)
    typed = checker.typed_class(Recipe, raw)
    cfg = OmegaConf.merge(OmegaConf.structured(typed), raw)
    ds, ds_problems = resolve_deepspeed(cfg.deepspeed, cfg, recipe_path, launched_world_size())
    if ds_problems:
        raise RecipeError(ds_problems, source)
    cfg.deepspeed.resolved = ds
    OmegaConf.set_readonly(cfg, True)
    return cfg


def task_section(task: Any, name: str = "task", **values: Any) -> DictConfig:
    """The recipe section of `task` (a `Task` plugin) named `name`, with `values` set: checked and completed as
    `load_recipe` makes each entry of `tasks:` (every key of `TaskSection` and of `task.Options`, read-only). It is
    the one form a task's methods receive their options in; a plugin's tests build it here."""
    options = getattr(task, "Options", None)
    section_class = (merge_option_classes(TaskSection, options, f"TaskSection_{name}")
                     if options is not None and dataclasses.is_dataclass(options) else TaskSection)
    item = {"name": name, **values}
    checker = Checker(plugins=None)
    checker.check_section(item, section_class, f"tasks.{name}")
    if checker.problems:
        raise RecipeError(checker.problems, f"task section {name!r}")
    section = OmegaConf.create(OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(section_class), item)))
    OmegaConf.set_readonly(section, True)
    return section


def _register_recipe_dir(recipe_path: Path | None) -> None:
    """`${recipe_dir:}` names the directory of the recipe being read (the working directory without one)."""
    recipe_dir = str((recipe_path.parent if recipe_path else Path.cwd()).resolve())
    # omegaconf 2.4 renamed register_new_resolver (which now warns); 2.3 has only the old name
    register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
    register(RECIPE_DIR_RESOLVER, lambda: recipe_dir, replace=True)


def _apply_overrides(user: DictConfig, sets: list[tuple[str, Any]], deletions: list[str]) -> list[tuple[str, str]]:
    """Delete then set keys of the user's recipe in place (before any `${...}` resolves); the problems, by key.

    `~key` deletes a key the recipe file sets (a schema default cannot be deleted, only set);
    a list item is addressed by its index (`tasks.0.max_length=64`)."""
    problems: list[tuple[str, str]] = []
    for key in deletions:
        try:
            if OmegaConf.select(user, key, default=_MISSING, throw_on_resolution_failure=False) is _MISSING:
                problems.append((key, "cannot delete (~): the recipe file does not set it (set it instead, "
                                      f"e.g. {key}=null or {key}=[])"))
                continue
            parent_key, _, leaf = key.rpartition(".")
            parent = OmegaConf.select(user, parent_key) if parent_key else user
            del parent[int(leaf) if isinstance(parent, ListConfig) and leaf.isdigit() else leaf]
        except OmegaConfBaseException as exc:
            problems.append((key, f"cannot delete (~): {_first_line(exc)}"))
    for key, value in sets:
        index_problem = _list_index_problem(user, key)
        if index_problem:
            problems.append((key, index_problem))
            continue
        try:
            OmegaConf.update(user, key, value, merge=False, force_add=True)
        except OmegaConfBaseException as exc:
            problems.append((key, f"cannot set: {_first_line(exc)}"))
    return problems


def _list_index_problem(user: DictConfig, key: str) -> str | None:
    """Why a dotted `key` with a list index (`tasks.5.x`) names no item of a list the recipe file sets, or None."""
    parts = key.split(".")
    for depth, part in enumerate(parts[1:], start=1):
        if not part.isdigit():
            continue
        list_key = ".".join(parts[:depth])
        node = OmegaConf.select(user, list_key, default=None, throw_on_resolution_failure=False)
        if not isinstance(node, ListConfig):
            return f"{part} is a list index, but the recipe file sets no list {list_key} (write the whole list instead)"
        if int(part) >= len(node):
            return f"{list_key} has {len(node)} item(s) in the recipe file (index 0 to {len(node) - 1}): no item {part}"
    return None


def _first_line(exc: BaseException) -> str:
    """OmegaConf's message without its `full_key:` / `object_type=` trailer lines."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def to_yaml(cfg: DictConfig) -> str:
    """The resolved recipe as YAML text."""
    return OmegaConf.to_yaml(cfg)


def save_resolved(cfg: DictConfig, directory: Path) -> Path:
    """Write the resolved recipe beside a run (atomically) and return its path.

    The recipe is saved without the values mmadapt computes (`deepspeed.resolved`) and without
    `rerun`, so that
    `mmadapt train <output_dir>/recipe.yaml` runs it again as is; the filled-in DeepSpeed JSON
    goes beside it, for reading.
    """
    directory = Path(directory)
    container = OmegaConf.to_container(cfg, resolve=True)
    ds = container["deepspeed"].pop("resolved")
    container.pop("rerun", None)  # a choice of one command, not a setting of the run
    write_text_atomic(directory / RESOLVED_DEEPSPEED_NAME, json.dumps(ds, indent=2) + "\n")
    return write_text_atomic(directory / RESOLVED_RECIPE_NAME, OmegaConf.to_yaml(OmegaConf.create(container)))


class _Missing:
    pass


_MISSING = _Missing()


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise MmadaptError(f"recipe file not found: {path} (the shipped recipes are in recipes/)")
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # yaml.YAMLError and OmegaConf's own errors
        raise MmadaptError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, DictConfig):
        raise MmadaptError(f"{path} must hold a mapping of recipe keys, not a {type(loaded).__name__}")
    return loaded
