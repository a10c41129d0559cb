"""Loss modules the trainer optimises: a batch in, a dict of named scalar losses out."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def mlm_head_name(model: Any) -> str | None:
    """The attribute of a `*ForMaskedLM` model holding its whole MLM head (transform + decoder).

    Found generically: the child module, other than `model.base_model`, that contains
    `model.get_output_embeddings()` (`lm_head` for RoBERTa / XLM-R, `cls` for BERT). None when
    the head is not one module.
    """
    decoder = model.get_output_embeddings()
    if decoder is None:
        return None
    for name, child in model.named_children():
        if child is not model.base_model and any(m is decoder for m in child.modules()):
            return name
    return None


def masked_positions(labels: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the positions that carry an MLM target."""
    return labels != IGNORE_INDEX


def masked_lm_loss(head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor,
                   keep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of `head` applied to `hidden` only where `labels` has a target.

    The same value (and gradients) as computing logits at every position and ignoring the
    unmasked ones, which is what `*ForMaskedLM(labels=...)` does, at a fraction (the masking
    probability) of the head's cost. Logits are upcast to fp32 for the loss.
    """
    keep = masked_positions(labels) if keep is None else keep
    logits = head(hidden[keep])
    return F.cross_entropy(logits.float(), labels[keep])


class MaskedLMObjective(torch.nn.Module):
    """MLM loss of a Hugging Face `*ForMaskedLM` model.

    With `masked_only` (the default) the encoder (`model.base_model`) runs over the batch and
    the MLM head only over the masked positions; models whose head is not one module fall back
    to the model's own loss (logits at every position).
    """

    def __init__(self, model: Any, masked_only: bool = True):
        super().__init__()
        self.model = model
        # A name, not the module: the head must stay registered once, under `model`.
        self._head_name = mlm_head_name(model) if masked_only else None

    @property
    def masked_only(self) -> bool:
        """Whether the head runs at masked positions only."""
        return self._head_name is not None

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self._head_name is None:
            loss = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              labels=batch["labels"]).loss
        else:
            hidden = self.model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
            loss = masked_lm_loss(getattr(self.model, self._head_name), hidden, batch["labels"])
        return {"loss": loss, "mlm_loss": loss.detach()}


class InterleavedMaskedLMObjective(torch.nn.Module):
    """MLM loss of a mini-model, but on every `every`-th step that of the big model, over the first
    `big_batch_size` sequences of the step's batch.

    The two models share their word-embedding and LM-bias parameters (the only trainable ones), so
    the big-model steps hold the embeddings in the big model's solution while the cheaper mini-model
    refines them. The trainer announces each step (`start_step`, its `before_step` hook); evaluation
    is always the mini-model's.
    """

    def __init__(self, mini: Any, big: Any, every: int, big_batch_size: int):
        super().__init__()
        if every < 2:
            raise ValueError(f"every is {every}: at least 2 (every step over the big model is not interleaving)")
        self.mini = MaskedLMObjective(mini)
        self.big = MaskedLMObjective(big)
        self.every = every
        self.big_batch_size = big_batch_size
        self.step = 0

    def start_step(self, step: int) -> None:
        """The trainer is about to run optimiser step `step` (1 for the first)."""
        self.step = step

    def is_big_model_step(self, step: int) -> bool:
        """Whether training step `step` runs over the big model."""
        return step % self.every == 0

    @staticmethod
    def big_model_steps_in(steps: int, every: int) -> int:
        """How many of the first `steps` training steps run over the big model."""
        return steps // every

    def _over_big_model(self) -> bool:
        return self.training and self.is_big_model_step(self.step)

    def step_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The part of the step's `batch` this step trains on: all of it, or on a big-model step its first
        `big_batch_size` sequences."""
        if self._over_big_model():
            return {key: value[:self.big_batch_size] for key, value in batch.items()}
        return batch

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.big(self.step_batch(batch)) if self._over_big_model() else self.mini(batch)


class SupervisedObjective(torch.nn.Module):
    """The loss a Hugging Face task model computes from the targets in the batch."""

    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": self.model(**batch).loss}
