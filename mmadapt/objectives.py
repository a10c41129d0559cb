"""Loss modules the trainer optimises: a batch in, a dict of named scalar losses out."""
from __future__ import annotations

from typing import Any

import torch


class MaskedLMObjective(torch.nn.Module):
    """Plain MLM loss of a Hugging Face `*ForMaskedLM` model."""

    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        return {"loss": out.loss, "mlm_loss": out.loss.detach()}


class SupervisedObjective(torch.nn.Module):
    """The loss a Hugging Face task model computes from the targets in the batch."""

    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": self.model(**batch).loss}
