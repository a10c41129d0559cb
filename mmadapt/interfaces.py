"""The base classes plugins implement. Each registered item names its recipe options.

Every plugin choice in a recipe is a section with a `name` (or `family` for models) and
the plugin's own options beside it; `Options` is the dataclass those options are checked
against, so a plugin extends the recipe schema just by declaring it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # heavy imports stay out of `mmadapt plugins` and validation
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from mmadapt.context import StageContext


@dataclass
class NoOptions:
    """For plugins that take no options."""


class Named:
    """Common to every registered item: its options and a one-line description."""

    Options: ClassVar[type] = NoOptions
    description: ClassVar[str] = ""


class ModelFamily(Named):
    """How to build or load an MLM of one architecture and reach its parts."""

    def build_from_config(self, config_overrides: dict[str, Any], vocab_size: int, tokenizer: Any) -> "PreTrainedModel":
        """A randomly initialised MLM; `config_overrides` are the recipe's `model.config`."""
        raise NotImplementedError

    def load_pretrained(self, name_or_path: str) -> "PreTrainedModel":
        """An MLM from a local `save_pretrained` directory or an already cached hub name."""
        raise NotImplementedError

    def load_tokenizer(self, name_or_path: str) -> "PreTrainedTokenizerBase":
        """The tokenizer saved with a model (local directory or cached hub name)."""
        raise NotImplementedError

    def word_embeddings(self, model: "PreTrainedModel") -> "torch.nn.Embedding":
        """The input word-embedding matrix (tied to the LM head's decoder)."""
        return model.get_input_embeddings()

    def embeddings(self, model: "PreTrainedModel") -> "torch.nn.Module":
        """The whole embedding module (word, position, type embeddings, LayerNorm)."""
        raise NotImplementedError

    def layers(self, model: "PreTrainedModel") -> "torch.nn.ModuleList":
        """The transformer layers, bottom first."""
        raise NotImplementedError

    def lm_head(self, model: "PreTrainedModel") -> "torch.nn.Module":
        """The MLM head (transform + decoder)."""
        raise NotImplementedError


class Strategy(Named):
    """A way to produce the model(s) new-language embeddings are trained over."""

    def pretrain(self, ctx: "StageContext") -> dict[str, Path]:
        """Run the pretraining stage into `ctx.stage_dir`; return the directories written."""
        raise NotImplementedError


class LayerRule(Named):
    """Chooses which big-model layers a mini-model takes."""

    def select(self, num_layers: int, options: Any) -> list[int]:
        """0-based indices of the chosen layers, bottom first."""
        raise NotImplementedError


class Task(Named):
    """A downstream benchmark: data loading, head, collation and its official metric."""


class EmbeddingInit(Named):
    """How new-language word embeddings are initialised before training."""
