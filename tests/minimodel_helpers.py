"""Small builders shared by the mini-model strategy tests (tiny models, batches, weights)."""
from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 50


def tiny_xlmr(num_layers: int = 4, hidden: int = 32, seed: int = 0):
    """A randomly initialised 4-layer XLM-R MLM with hidden size 32."""
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(seed)
    config = XLMRobertaConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=num_layers,
                              num_attention_heads=4, intermediate_size=2 * hidden, max_position_embeddings=40,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2)
    return XLMRobertaForMaskedLM(config)


def mlm_batch(seed: int = 0, rows: int = 3, length: int = 12) -> dict[str, torch.Tensor]:
    """Random ids with a quarter of the positions as MLM targets."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (rows, length), generator=g)
    targets = torch.rand(rows, length, generator=g) < 0.25
    targets[:, 1] = True
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.where(targets, ids, torch.full_like(ids, -100))}


def load_mlm(directory: Path):
    """A `save_pretrained` directory loaded with plain transformers, in eval mode."""
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(directory).eval()


def load_weights(directory: Path) -> dict[str, torch.Tensor]:
    """The tensors of a `save_pretrained` directory, by name."""
    from safetensors.torch import load_file

    return load_file(str(Path(directory) / "model.safetensors"))


def hidden_states(model, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple:
    """Embedding output, then the output of every layer."""
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
