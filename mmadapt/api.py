"""The public plugin API: everything a plugin imports from mmadapt, in one module.

A plugin (the built-in ones in `plugins/` included) imports from here and nowhere else in
`mmadapt`, so the core's own modules can be reorganised without breaking plugins. Every
name below is documented in docs/plugins.md; a test keeps the two in step.
"""
from __future__ import annotations

from mmadapt.data.sources import fill_language, hf_offline
from mmadapt.data.textfiles import read_jsonl, text_lines
from mmadapt.errors import DataError, MmadaptError
from mmadapt.model.export import save_pretrained_atomic
from mmadapt.model.minimodel import (BIG_LAYERS_CONFIG_KEY, LayerRuleSection, build_manifest, layer_rule_field,
                                     read_manifest, select_layers, write_manifest)
from mmadapt.pipeline.building_blocks import build_model, load_tokenizer, mlm_datasets, model_family, resolve_pretrained
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.runner import run_recipe
from mmadapt.plugin_system.hookspecs import hookimpl
from mmadapt.plugin_system.interfaces import (EmbeddingInit, InitInputs, LayerRule, ModelFamily, Named, NoOptions,
                                              Strategy, Task)
from mmadapt.plugin_system.manager import build_plugins
from mmadapt.plugin_system.registry import Registry
from mmadapt.recipe import load_recipe, task_section
from mmadapt.training.engine import trainable_parameters
from mmadapt.training.flops import FlopCount, MLMHead, ModelShape, StrategyCompute, training_flops_per_token
from mmadapt.training.objectives import MaskedLMObjective, masked_lm_loss, masked_positions, mlm_head_name
from mmadapt.training.trainer import Trainer, TrainResult

__all__ = [
    # hooks and what they receive
    "hookimpl", "Registry", "StageContext", "InitInputs",
    # base classes
    "Named", "NoOptions", "Strategy", "ModelFamily", "LayerRule", "EmbeddingInit", "Task",
    # errors
    "MmadaptError", "DataError",
    # building, training and saving models (strategies)
    "model_family", "load_tokenizer", "build_model", "resolve_pretrained", "mlm_datasets", "trainable_parameters",
    "MaskedLMObjective", "masked_lm_loss", "masked_positions", "mlm_head_name", "Trainer", "TrainResult",
    "save_pretrained_atomic",
    # mini-models (strategies that cut one out of a big model)
    "LayerRuleSection", "layer_rule_field", "select_layers", "build_manifest", "write_manifest", "read_manifest",
    "BIG_LAYERS_CONFIG_KEY",
    # FLOP models (Strategy.predict_compute)
    "ModelShape", "MLMHead", "FlopCount", "StrategyCompute", "training_flops_per_token",
    # reading data files (tasks)
    "text_lines", "read_jsonl", "fill_language", "hf_offline",
    # a plugin's own tests
    "build_plugins", "load_recipe", "run_recipe", "task_section",
]
