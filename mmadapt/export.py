"""Writing Hugging Face `save_pretrained` directories from (possibly ZeRO-3 sharded) models."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from mmadapt.atomic import write_dir_atomic
from mmadapt.distributed import DistInfo, barrier


def gathered(module: torch.nn.Module) -> Any:
    """A context in which ZeRO-3 partitioned parameters are whole on every rank."""
    params = [p for p in module.parameters() if hasattr(p, "ds_id")]
    if not params:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)


def full_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of every tensor of `module`, gathered if ZeRO-3 sharded it."""
    with gathered(module):
        return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def save_pretrained_atomic(model: Any, out_dir: Path, dist: DistInfo, tokenizer: Any = None,
                           extra_files: dict[str, str] | None = None) -> Path:
    """Gather weights on all ranks, then rank 0 writes `out_dir` via a temp dir and rename."""
    state = full_state_dict(model)

    def write(staged: Path) -> None:
        model.save_pretrained(staged, state_dict=state)
        if tokenizer is not None:
            tokenizer.save_pretrained(staged)
        for name, text in (extra_files or {}).items():
            (staged / name).write_text(text)

    if dist.is_main:
        write_dir_atomic(out_dir, write)  # a model already at out_dir stays readable until the new one replaces it
    barrier()
    return out_dir
