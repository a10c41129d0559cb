"""Analytic forward FLOPs of BERT-style masked language models (a first estimate).

Used by the mini-model manifests to compare a mini-model's cost with its big model's.
Matrix products only; a later refinement may add embeddings, norms and softmax.
"""
from __future__ import annotations

from typing import Any


def mlm_forward_flops_per_token(num_layers: int, hidden_size: int, intermediate_size: int, vocab_size: int,
                                seq_len: int) -> int:
    """Forward FLOPs per token of embeddings -> `num_layers` transformer layers -> MLM head.

    A multiply-add counts as 2 FLOPs, so a matrix with P parameters costs 2·P per token::

        per layer = 2 · (4·h·h + 2·h·i)     # Q, K, V and output projections, the two FFN matrices
                  + 2 · 2 · seq · h         # scores Q·Kᵀ and the weighted sum A·V (seq keys each)
        LM head   = 2 · h·h                 # the head's dense transform
                  + 2 · h · vocab           # the decoder onto the vocabulary
        total     = num_layers · per layer + LM head

    with h = `hidden_size`, i = `intermediate_size`, seq = `seq_len` (the recipe's block size).
    Embedding lookups, biases, LayerNorms, softmax and activations are left out.
    """
    h, i = hidden_size, intermediate_size
    per_layer = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * seq_len * h
    lm_head = 2 * h * h + 2 * h * vocab_size
    return num_layers * per_layer + lm_head


def config_forward_flops_per_token(config: Any, num_layers: int, seq_len: int) -> int:
    """`mlm_forward_flops_per_token` for a Hugging Face config's shape with `num_layers` layers."""
    return mlm_forward_flops_per_token(num_layers, config.hidden_size, config.intermediate_size,
                                       config.vocab_size, seq_len)


def adapt_flops_per_token(config: Any, num_layers: int, seq_len: int) -> int:
    """Training FLOPs per token when only the word embeddings and LM-head bias learn.

    forward, plus a backward that computes activation gradients through every layer and the
    head (about one more forward: frozen weights get no weight gradients) and the one
    weight gradient left, the tied decoder/embedding matrix (2·h·vocab)::

        adapt = 2 · forward + 2 · h · vocab
    """
    forward = config_forward_flops_per_token(config, num_layers, seq_len)
    return 2 * forward + 2 * config.hidden_size * config.vocab_size
