"""What the mini-model strategies share: the layer-rule section, layer selection, the manifest.

The pretraining stage of a mini-model strategy writes, under `<output_dir>/pretrain/`:

- `big/`  the big model (`save_pretrained`),
- `mini/` the mini-model (`save_pretrained`, same class as `big/`, fewer layers; its config
  carries `mmadapt_big_layers`, the big-model layer each mini layer is, `null` for new ones),
- `manifest.json` (`MANIFEST_NAME`), a contract later stages and users rely on::

    {"strategy": "<strategy name>", "k": 4,
     "layer_rule": {"name": "<layer rule name>", "options": {}},
     "big_num_layers": 24,
     "mini_layers": [{"mini_layer": 0, "big_layer": 0}, ...],   # bottom first; null = new layer
     "parameters": {"big": N, "mini": N, "mini_trainable": N},   # unique tensors' elements
     "flops_per_token": {"big": F, "mini": F}}                   # forward, at data.block_size

`mini_trainable` counts the mini-model parameters this stage trained.
"""
from __future__ import annotations

import json
from dataclasses import field
from pathlib import Path
from typing import Any

from mmadapt.errors import MmadaptError
from mmadapt.files.atomic import write_text_atomic
from mmadapt.recipe.schema import LayerRuleSection
from mmadapt.training.distributed import DistInfo, barrier
from mmadapt.training.flops import config_forward_flops_per_token

MANIFEST_NAME = "manifest.json"
#: extra config attribute of `mini/`: the big-model layer of each mini layer (None: new layer)
BIG_LAYERS_CONFIG_KEY = "mmadapt_big_layers"


def layer_rule_field() -> Any:
    """A strategy `Options` field for `layer_rule`, validated with the chosen rule's options."""
    return field(default_factory=LayerRuleSection, metadata={"plugin": ("layer_rules", "name")})


def plain(section: Any) -> dict:
    """A recipe section (OmegaConf or dict) as a plain dict."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)


def select_layers(plugins: Any, num_layers: int, k: int, rule_section: Any) -> list[int]:
    """The big-model layers (0-based, bottom first) the recipe's layer rule gives the mini-model."""
    if not 1 <= k <= num_layers:
        raise MmadaptError(f"strategy.k is {k} but the big model has {num_layers} layers; choose 1..{num_layers}")
    name = rule_section["name"]
    chosen = plugins.layer_rules.get(name).select(num_layers, k, rule_section)
    chosen = list(chosen) if isinstance(chosen, (list, tuple)) else chosen
    valid = (isinstance(chosen, list) and len(chosen) == k
             and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < num_layers for i in chosen)
             and all(a < b for a, b in zip(chosen, chosen[1:])))
    if not valid:
        raise MmadaptError(f"layer rule {name!r} returned {chosen!r} for {num_layers} layers and k={k}; a rule "
                           f"must return {k} increasing layer indices in 0..{num_layers - 1} (bottom first)")
    return chosen


def count_parameters(module: Any, trainable_only: bool = False) -> int:
    """Elements of `module`'s parameters, each tensor once (tied weights are shared)."""
    seen, total = set(), 0
    for p in module.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += int(getattr(p, "ds_numel", p.numel()))  # ZeRO-3 shards report their full size here
    return total


def build_manifest(strategy: str, k: int, rule_section: Any, big: Any, mini: Any, big_layers: list[int | None],
                   seq_len: int) -> dict:
    """The manifest (see the module docstring) for a big model and its mini-model."""
    section = plain(rule_section)
    big_num_layers = big.config.num_hidden_layers
    return {
        "strategy": strategy,
        "k": k,
        "layer_rule": {"name": section.pop("name"), "options": section},
        "big_num_layers": big_num_layers,
        "mini_layers": [{"mini_layer": i, "big_layer": j} for i, j in enumerate(big_layers)],
        "parameters": {"big": count_parameters(big), "mini": count_parameters(mini),
                       "mini_trainable": count_parameters(mini, trainable_only=True)},
        "flops_per_token": {"big": config_forward_flops_per_token(big.config, big_num_layers, seq_len),
                            "mini": config_forward_flops_per_token(mini.config, len(big_layers), seq_len)},
    }


def write_manifest(stage_dir: Path, manifest: dict, dist: DistInfo) -> Path:
    """Rank 0 writes `stage_dir/manifest.json` atomically; every rank gets its path."""
    path = stage_dir / MANIFEST_NAME
    if dist.is_main:
        write_text_atomic(path, json.dumps(manifest, indent=1) + "\n")
    barrier()
    return path


def read_manifest(stage_dir: Path) -> dict:
    """The manifest a mini-model strategy wrote into `stage_dir`."""
    path = Path(stage_dir) / MANIFEST_NAME
    if not path.is_file():
        raise MmadaptError(f"no {MANIFEST_NAME} in {stage_dir}: was it written by a mini-model strategy?")
    return json.loads(path.read_text())
