"""Building a DeepSpeed engine from a resolved recipe."""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Iterable

import torch

from mmadapt.errors import MmadaptError
from mmadapt.training.distributed import DistInfo


def lr_lambda(schedule: str, warmup_steps: int, max_steps: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up to the peak LR, then linear or cosine decay to `min_ratio` x peak."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        shape = 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return min_ratio + (1.0 - min_ratio) * shape

    return factor


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters with requires_grad, each once (tied weights appear under several names)."""
    seen, params = set(), []
    for p in module.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            params.append(p)
    return params


def engine_config(ds_config: dict, dist: DistInfo) -> dict:
    """The DeepSpeed dict for this device: on CPU, torch's AdamW instead of a JIT-built one."""
    ds = copy.deepcopy(ds_config)
    optimizer = ds.get("optimizer")
    if dist.device.type == "cpu" and optimizer:
        optimizer.setdefault("params", {}).setdefault("torch_adam", True)
    return ds


def build_engine(module: torch.nn.Module, params: Iterable[torch.nn.Parameter], ds_config: dict, train_cfg: Any,
                 dist: DistInfo) -> Any:
    """`deepspeed.initialize` with only `params` reaching the optimiser, plus our LR schedule."""
    import deepspeed

    params = list(params)
    if not params:
        raise MmadaptError("nothing to train: every parameter of the model is frozen (check the strategy's "
                           "freezing rules; DeepSpeed cannot build an optimiser over an empty parameter list)")
    ds = engine_config(ds_config, dist)
    schedule = lr_lambda(train_cfg.schedule, train_cfg.warmup_steps, train_cfg.max_steps, train_cfg.min_lr_ratio)
    scheduler = None if "scheduler" in ds else (lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule))
    module.to(dist.device)
    engine, _, _, _ = deepspeed.initialize(model=module, model_parameters=params, config=ds, lr_scheduler=scheduler)
    return engine
