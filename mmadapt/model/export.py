"""Writing Hugging Face `save_pretrained` directories from (possibly ZeRO-3 sharded) models."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from mmadapt.errors import full_disk_as_error
from mmadapt.files.atomic import write_dir_atomic
from mmadapt.training.distributed import DistInfo, barrier


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


#: loading arguments transformers records in a tokenizer's `init_kwargs` (and so in tokenizer_config.json)
#: that describe how this machine loaded it, not the tokenizer: a saved directory must not carry them
LOADING_ONLY_KWARGS = ("local_files_only", "cache_dir", "force_download", "token", "revision")


def save_tokenizer(tokenizer: Any, out_dir: Path, max_length: int | None = None) -> None:
    """`tokenizer.save_pretrained(out_dir)`, with `model_max_length` set to `max_length` (the model's
    usable positions, so that `truncation=True` fits it) and without loading-only arguments."""
    for name in LOADING_ONLY_KWARGS:
        tokenizer.init_kwargs.pop(name, None)
    if max_length is not None:
        tokenizer.model_max_length = max_length
        tokenizer.init_kwargs["model_max_length"] = max_length
    tokenizer.save_pretrained(out_dir)


def save_pretrained_atomic(model: Any, out_dir: Path, dist: DistInfo, tokenizer: Any = None,
                           extra_files: dict[str, str] | None = None, max_length: int | None = None) -> Path:
    """Gather weights on all ranks, then rank 0 writes `out_dir` via a temp dir and rename. The
    tokenizer, if given, is saved with `model_max_length` = `max_length` (`save_tokenizer`)."""
    state = full_state_dict(model)

    def write(staged: Path) -> None:
        model.save_pretrained(staged, state_dict=state)
        if tokenizer is not None:
            save_tokenizer(tokenizer, staged, max_length)
        for name, text in (extra_files or {}).items():
            (staged / name).write_text(text)

    if dist.is_main:
        with full_disk_as_error(out_dir, f"writing the model {out_dir.name}"):
            write_dir_atomic(out_dir, write)  # a model already at out_dir stays readable until the new one replaces it
    barrier()
    return out_dir
