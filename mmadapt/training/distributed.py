"""Process-group set-up that works alone, under `deepspeed`, under `torchrun`, CPU or CUDA."""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

from mmadapt.training.build_locks import check_build_locks


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (for a single-process run's rendezvous, or a launcher's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _warn(message: str) -> None:
    """One line on stderr, after the wall-clock time (the run's log prefix)."""
    from mmadapt.training.progress import line_prefix

    print(f"{line_prefix(None)} {message}", file=sys.stderr, flush=True)


def init_distributed(timeout_minutes: float | None = None) -> DistInfo:
    """Initialise torch.distributed through DeepSpeed (gloo on CPU, NCCL on CUDA).

    A plain `python` process gets single-rank launcher variables, so DeepSpeed does not go
    looking for MPI. Safe to call more than once (the first call's `timeout_minutes` holds:
    the longest a collective waits before the job fails; DeepSpeed's 30 by default).
    """
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    check_build_locks(_warn)  # a lock left by a killed build would hang DeepSpeed silently
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    on_cuda = accelerator.device_name() == "cuda"
    if not on_cuda and world > 1 and "OMP_NUM_THREADS" not in os.environ:
        # The deepspeed launcher leaves thread counts alone: ranks on one machine would
        # otherwise fight over the same cores.
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, per_node)))
    if not torch.distributed.is_initialized():
        if not on_cuda and world == 1:
            _without_cpu_all_reduce_op()
        timeout = {"timeout": timedelta(minutes=timeout_minutes)} if timeout_minutes else {}
        deepspeed.init_distributed(dist_backend="nccl" if on_cuda else "gloo", verbose=False, **timeout)
    if on_cuda:
        accelerator.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


#: DeepSpeed's JIT-built shared-memory all-reduce for CPU ranks (`deepspeed.ops.__compatible_ops__` key)
CPU_ALL_REDUCE_OP = "deepspeed_shm_comm"


def _without_cpu_all_reduce_op() -> None:
    """A single CPU process all-reduces with nobody: mark DeepSpeed's shared-memory all-reduce op unavailable, so
    that `deepspeed.init_distributed` neither JIT-builds it (a minute or more on a machine's first run) nor maps
    its 69 MB buffer. Collectives then go through gloo, as they do wherever the op cannot be built."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__[CPU_ALL_REDUCE_OP] = False


def shutdown_distributed() -> None:
    """Tear the process group down before the process exits (a no-op without one).

    Left to the interpreter's exit, a process group that ended early (a run refused before any
    work) can abort the process from a C++ destructor ("terminate called without an active
    exception", SIGABRT) after its one-line message, losing the exit code the message promised.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
        _remove_shm_buffer()


#: DeepSpeed's CPU all-reduce (its `shm_comm` op) puts one buffer per rank in shared memory (RAM), named
#: after the user, the rendezvous address and port and the rank, and never removes it
SHM_BUFFER = "deepspeed_allreduce_buffer_{uid}_{addr}_{port}_{rank}"


def shm_buffer_path(rank: int, addr: str, port: str) -> Path:
    """Where DeepSpeed's CPU all-reduce keeps rank `rank`'s buffer for the rendezvous at `addr`:`port`."""
    return Path("/dev/shm") / SHM_BUFFER.format(uid=os.getuid(), addr=addr, port=port, rank=rank)


def _remove_shm_buffer() -> None:
    """Remove this rank's all-reduce buffer once its process group is gone: left behind, every run on another
    port keeps 69 MB a rank of RAM until the machine restarts (a rank still mapping it keeps its mapping)."""
    addr, port, rank = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"), os.environ.get("RANK")
    if addr and port and rank and hasattr(os, "getuid"):
        shm_buffer_path(int(rank), addr, port).unlink(missing_ok=True)


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def mean_across_ranks(value: float, device: torch.device) -> float:
    """The mean of a scalar over all ranks."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.item() / torch.distributed.get_world_size()


def means_across_ranks(values: dict[str, torch.Tensor], device: torch.device) -> dict[str, float]:
    """The mean over all ranks of each scalar tensor in `values`: one all-reduce, one host sync.

    Computed in float64 like `mean_across_ranks`, so either gives the same numbers.
    """
    if not values:
        return {}
    stacked = torch.stack([v.detach().to(device=device, dtype=torch.float64).reshape(()) for v in values.values()])
    world = 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(stacked)
        world = torch.distributed.get_world_size()
    return {name: total / world for name, total in zip(values, stacked.tolist())}


def max_across_ranks(value: float, device: torch.device) -> float:
    """The largest value of a scalar over all ranks."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return t.item()


def broadcast_object(obj, src: int = 0):
    """`obj` from rank `src` on every rank."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]
