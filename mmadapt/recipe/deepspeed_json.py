"""DeepSpeed JSON configs: find them, merge overrides, fill `"auto"` fields from the recipe.

The recipe is the one source of truth for batch size, clipping, optimiser and precision;
a JSON that hard-codes a different value is reported instead of silently winning.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from mmadapt.errors import did_you_mean

Problems = list[tuple[str, str]]


#: the DeepSpeed configs installed with the package: `deepspeed.config: zero2` names one
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "ds_configs"


def launched_world_size() -> int:
    """The number of ranks the launcher started (`WORLD_SIZE`; 1 for a plain `python` process), known
    before any process group exists: the DeepSpeed JSON's batch sizes are filled for it."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def shipped_configs() -> list[str]:
    """The names of the shipped DeepSpeed configs (`zero0` ... `zero3_offload`)."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json"))


def is_shipped_name(name: str) -> bool:
    """True for a bare name (`zero2`): no folder and no `.json`, so it names a shipped config."""
    return "/" not in name and "\\" not in name and not name.endswith(".json")


def find_config_file(name: str, recipe_path: Path | None) -> tuple[Path | None, list[Path]]:
    """The DeepSpeed JSON that `deepspeed.config` names, and the places looked at.

    A bare name (`zero2`) is a shipped config. A path is looked for as given when absolute;
    a relative one beside the recipe, in the recipe's parent folder, then in the working
    directory (the recipe's own folders first, so a recipe file resolves the same from
    anywhere). A relative `ds_configs/NAME.json` that exists nowhere is the shipped NAME: the
    form recipes used before the configs were installed with the package.
    """
    if is_shipped_name(name):
        candidate = SHIPPED_DIR / f"{name}.json"
        return (candidate if candidate.is_file() else None), [candidate]
    given = Path(name)
    candidates = [given]
    if not given.is_absolute():
        beside = [recipe_path.parent / given, recipe_path.parent.parent / given] if recipe_path is not None else []
        candidates = beside + [given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve(), candidates
    legacy = SHIPPED_DIR / given.name
    if not given.is_absolute() and given.parent == Path("ds_configs") and legacy.is_file():
        return legacy, candidates
    return None, candidates


def deep_merge(base: dict, extra: dict) -> dict:
    """`extra` merged into a copy of `base`, nested dicts merged key by key."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_deepspeed(section: Any, recipe: Any, recipe_path: Path | None, world_size: int) -> tuple[dict, Problems]:
    """The filled-in DeepSpeed dict for `recipe`, and any problems with the JSON."""
    path = "deepspeed.config"
    found, tried = find_config_file(section.config, recipe_path)
    if found is None:
        shipped = ", ".join(shipped_configs())
        if is_shipped_name(section.config):
            hint = did_you_mean(section.config, shipped_configs())
            return {}, [(path, f"no shipped DeepSpeed config {section.config!r}{hint}; the shipped ones are "
                               f"{shipped}, or give the path of a JSON file")]
        looked = ", ".join(dict.fromkeys(str(p) for p in tried))
        return {}, [(path, f"DeepSpeed config {section.config!r} not found (looked at {looked}); "
                           f"give a shipped name ({shipped}) or the path of a JSON file")]
    try:
        ds = json.loads(found.read_text())
    except json.JSONDecodeError as exc:
        return {}, [(path, f"{found} is not valid JSON: line {exc.lineno}: {exc.msg}")]
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [(path, f"cannot read {found}: {getattr(exc, 'strerror', None) or exc}")]
    if not isinstance(ds, dict):
        return {}, [(path, f"{found} holds a JSON {type(ds).__name__}; a DeepSpeed config is a JSON object "
                           '({"zero_optimization": {...}, ...})')]
    ds = deep_merge(ds, _unflatten(dict(section.overrides)))
    return fill_auto(ds, recipe, world_size)


def fill_auto(ds: dict, recipe: Any, world_size: int, overwrite: bool = False) -> tuple[dict, Problems]:
    """Replace `"auto"` values by the recipe's; report conflicting hard-coded values.

    `overwrite` re-fills an already resolved dict (a stage with its own `train` settings).
    """
    train = recipe.train
    problems: Problems = []
    wanted = {
        ("train_micro_batch_size_per_gpu",): train.micro_batch_size,
        ("gradient_accumulation_steps",): train.grad_accum,
        ("train_batch_size",): train.micro_batch_size * train.grad_accum * world_size,
        ("gradient_clipping",): train.max_grad_norm,
        ("optimizer", "params", "lr"): train.lr,
        ("optimizer", "params", "betas"): list(train.betas),
        ("optimizer", "params", "eps"): train.eps,
        ("optimizer", "params", "weight_decay"): train.weight_decay,
        ("bf16", "enabled"): recipe.precision == "bf16",
        ("fp16", "enabled"): recipe.precision == "fp16",
    }
    ds.setdefault("bf16", {"enabled": "auto"})
    ds.setdefault("fp16", {"enabled": "auto"})
    for keys, value in wanted.items():
        parent = ds
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or keys[-1] not in parent:
            if len(keys) == 1:
                ds[keys[0]] = value
            continue
        current = parent[keys[-1]]
        if current == "auto" or overwrite:
            parent[keys[-1]] = value
        elif current != value:
            problems.append(("deepspeed.config", f"{'.'.join(keys)} is {current!r} in the JSON but the recipe "
                             f"gives {value!r}; set it to \"auto\" so the recipe decides"))
    zero = ds.setdefault("zero_optimization", {"stage": 0})
    if zero.get("stage") == 3:
        zero.setdefault("stage3_gather_16bit_weights_on_model_save", True)
    ds.setdefault("steps_per_print", 10**9)  # mmadapt logs itself
    for leftover in _auto_paths(ds):
        problems.append(("deepspeed.config", f"{leftover} is \"auto\" but mmadapt has nothing to fill it with; "
                         "give a value"))
    return ds, problems


def _auto_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _auto_paths(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if node == "auto" else []


def _unflatten(flat: dict) -> dict:
    """{'a.b': 1} -> {'a': {'b': 1}} so overrides can use dotted keys."""
    out: dict = {}
    for key, value in flat.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out
