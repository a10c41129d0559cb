"""Writing Hugging Face `save_pretrained` directories from (possibly ZeRO-3 sharded) models."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

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
    if dist.is_main:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}-", dir=out_dir.parent))
        model.save_pretrained(tmp, state_dict=state)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    barrier()
    return out_dir
