"""Adapt-stage embedding snapshots: saving the trained embeddings every few steps, and finding them again.

The adapt stage saves `<stage_dir>/snapshots/step_<N>.safetensors` (`adapt.snapshot_every`), each
stamped with the stage's settings fingerprint; the transfer stage, the alignment diagnostic and the
basin check read them back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mmadapt.model.export import gathered
from mmadapt.model.surgery import lm_head_bias, save_embeddings
from mmadapt.pipeline.context import StageContext

SNAPSHOT_DIR = "snapshots"


def trained_embeddings(model: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """CPU copies of the word embeddings and LM-head bias (gathered first under ZeRO-3)."""
    with gathered(model.get_input_embeddings()):
        weight = model.get_input_embeddings().weight.detach().to("cpu", copy=True)
    head, bias = model.get_output_embeddings(), lm_head_bias(model)
    if bias is None:
        return weight, None
    with gathered(head):
        return weight, bias.detach().to("cpu", copy=True)


def snapshots(snapshot_dir: Path, fingerprint: str) -> list[tuple[int, float, Path]]:
    """(step, training seconds, file) of the embedding snapshots saved under these settings, by step.

    Snapshots left by an earlier run of the stage with other settings carry another
    fingerprint and are ignored.
    """
    from safetensors import safe_open

    found = []
    for path in sorted(Path(snapshot_dir).glob("step_*.safetensors")):
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("fingerprint") == fingerprint:
            found.append((int(meta["step"]), float(meta["seconds"]), path))
    return found


def snapshot_saver(ctx: StageContext, model: Any, every: int, max_steps: int):
    """A Trainer `on_step` hook saving the embeddings every `every` steps and at the last step."""

    def save(step: int, seconds: float) -> None:
        if step % every and step != max_steps:
            return
        weight, bias = trained_embeddings(model)  # every rank: gathering is collective
        if ctx.dist.is_main:
            save_embeddings(ctx.stage_dir / SNAPSHOT_DIR / f"step_{step:08d}.safetensors", weight, bias,
                            {"step": str(step), "seconds": f"{seconds:.3f}", "fingerprint": ctx.fingerprint})

    return save
