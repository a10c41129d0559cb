"""Built-in initialisers of new-language word embeddings: `random` and `overlap` (the ones learning
static vectors first, `dictionary` and `focus`, are in `static_vector_inits`)."""
from __future__ import annotations

import torch

from mmadapt.api import EmbeddingInit, InitInputs, hookimpl


class RandomInit(EmbeddingInit):
    """Normal(0, the model's initializer_range), as the model's own init does."""

    description = "normal(0, initializer_range) for every token"

    def initialise(self, inputs: InitInputs) -> torch.Tensor:
        std = getattr(inputs.config, "initializer_range", 0.02)
        return torch.randn(len(inputs.new_tokenizer), inputs.source_weight.shape[1], generator=inputs.generator) * std


class OverlapInit(RandomInit):
    """Copy the source embedding of every token whose string exists in both vocabularies."""

    description = "source embedding for tokens shared with the source vocabulary, random otherwise"

    def initialise(self, inputs: InitInputs) -> torch.Tensor:
        weight = super().initialise(inputs)
        source_weight, source_vocab = inputs.source_weight, inputs.source_tokenizer.get_vocab()
        for token, new_id in inputs.new_tokenizer.get_vocab().items():
            old_id = source_vocab.get(token)
            if old_id is not None and old_id < source_weight.shape[0] and new_id < weight.shape[0]:
                weight[new_id] = source_weight[old_id].float()
        return weight


@hookimpl
def mmadapt_register_embedding_inits(registry):
    registry.add("random", RandomInit())
    registry.add("overlap", OverlapInit())
