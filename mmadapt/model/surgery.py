"""Swapping vocabularies: new word embeddings (and LM-head bias) in and out of a model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mmadapt.files.atomic import write_file_atomic

EMBEDDINGS_FILE = "embeddings.safetensors"


def swap_word_embeddings(model: Any, weight: torch.Tensor, lm_bias: torch.Tensor | None = None) -> None:
    """Give `model` a vocabulary of `len(weight)` tokens with these word embeddings.

    The LM head's decoder (if any) stays tied to the new embeddings; its bias becomes
    `lm_bias`, or zeros. Every other parameter is untouched.
    """
    model.resize_token_embeddings(weight.shape[0], mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(weight)
        head = model.get_output_embeddings()
        if head is not None and getattr(head, "bias", None) is not None:
            head.bias.copy_(lm_bias if lm_bias is not None else torch.zeros_like(head.bias))


def swap_vocabulary(model: Any, weight: torch.Tensor, lm_bias: torch.Tensor | None = None) -> None:
    """`swap_word_embeddings`, checked: every weight but the word embeddings and the LM head's bias
    is bit-identical afterwards. The one way mmadapt builds a target-language model (the transfer
    stage and `mmadapt swap`)."""
    vocabulary = {t.data_ptr() for t in (model.get_input_embeddings().weight, lm_head_bias(model)) if t is not None}
    before = {k: v.clone() for k, v in model.state_dict().items() if v.data_ptr() not in vocabulary}
    swap_word_embeddings(model, weight, lm_bias)
    after = model.state_dict()
    # anything else changed would silently change results
    changed = [k for k, v in before.items() if not torch.equal(after[k], v)]
    if changed:
        raise RuntimeError(f"embedding swap changed non-embedding weights: {changed[:5]}")


def share_vocabulary(model: Any, source: Any) -> None:
    """Make `model`'s word embeddings, tied decoder and LM-head bias the very parameters of `source`'s
    (a mini-model and its big model trained together: an update through either is seen by both)."""
    model.resize_token_embeddings(source.get_input_embeddings().weight.shape[0], mean_resizing=False)
    weight = source.get_input_embeddings().weight
    model.get_input_embeddings().weight = weight
    head, source_bias = model.get_output_embeddings(), lm_head_bias(source)
    if head is not None:
        head.weight = weight
        if getattr(head, "bias", None) is not None and source_bias is not None:
            head.bias = source_bias


def lm_head_bias(model: Any) -> torch.Tensor | None:
    """The output bias of an MLM's decoder (None for models without an LM head)."""
    head = model.get_output_embeddings()
    return None if head is None else getattr(head, "bias", None)


def save_embeddings(path: Path, weight: torch.Tensor, lm_bias: torch.Tensor | None,
                    metadata: dict[str, str] | None = None) -> None:
    """Word embeddings (+ LM bias) as a safetensors file, with optional string metadata."""
    from safetensors.torch import save_file

    tensors = {"word_embeddings": weight.detach().float().cpu().contiguous()}
    if lm_bias is not None:
        tensors["lm_head_bias"] = lm_bias.detach().float().cpu().contiguous()
    write_file_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_embeddings(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(word embeddings, LM bias or None) from `save_embeddings`."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    return tensors["word_embeddings"], tensors.get("lm_head_bias")


def freeze_all_but(model: torch.nn.Module, keep: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """Set requires_grad only on `keep` (by identity: tied weights count once); return them."""
    wanted = {id(p) for p in keep}
    for p in model.parameters():
        p.requires_grad_(id(p) in wanted)
    return [p for p in {id(p): p for p in keep}.values()]
