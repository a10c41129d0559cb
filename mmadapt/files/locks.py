"""Directory locks: one run per output directory (`.run.lock`), one writer per stage (`.stage.lock`).

A lock is a small JSON file created exclusively (`open(path, "x")`) naming its holder: host, pid and
start time. A second run finds it and is refused with the holder's name. A lock whose holder is a
process that no longer exists on this host is taken over; one held from another host cannot be
checked from here and is respected (README, "Failures and recovery", says how to clear it).
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mmadapt.errors import MmadaptError
from mmadapt.training.distributed import broadcast_object

#: an unreadable lock younger than this is being written by its holder right now
_WRITING_SECONDS = 10.0


class LockHeld(MmadaptError):
    """Another live run holds the lock."""


@contextmanager
def held_lock(path: Path, dist: Any, collective: bool = True, what: str = "") -> Iterator[None]:
    """Hold the lock file `path` (rank 0 takes it; with `collective` every rank learns whether it got it)
    while the block runs; released when it ends, however it ends."""
    problem = None
    path = Path(path)
    if dist.is_main:
        try:
            problem = acquire(path, what or str(path.parent))
        except OSError as exc:  # an output_dir that is a file, on a read-only filesystem, ...
            problem = f"cannot write in {path.parent}: {exc.strerror or exc}"
    if collective:
        problem = broadcast_object(problem)
    if problem:
        raise LockHeld(problem)
    try:
        yield
    finally:
        if dist.is_main:
            path.unlink(missing_ok=True)


def acquire(path: Path, what: str) -> str | None:
    """Create the lock file; None when taken, else the one-line reason (naming the holder)."""
    if path.parent.exists() and not path.parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a directory", str(path.parent))
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())}
    for _ in range(2):
        try:
            with open(path, "x") as f:
                json.dump(me, f)
            return None
        except FileExistsError:
            holder = holder_of(path)
            if holder is None and _age(path) < _WRITING_SECONDS:
                holder = {"host": "?", "pid": "?", "started": "just now"}
            if holder is not None and _alive(holder, me):
                return (f"{what} is being written by another run (process {holder.get('pid')} on "
                        f"{holder.get('host')}, started {holder.get('started', 'at an unknown time')}); wait for it "
                        f"to finish, or delete {path} if that run is gone")
            path.unlink(missing_ok=True)  # left by a run that died
    return f"could not take the lock {path}"


def holder_of(path: Path) -> dict | None:
    """The holder a lock file names, or None when it cannot be read."""
    try:
        holder = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _alive(holder: dict, me: dict) -> bool:
    if holder.get("host") != me["host"]:
        return True  # cannot tell from here: assume it still runs
    try:
        pid = int(holder.get("pid", 0))
    except (TypeError, ValueError):
        return True
    if pid <= 0:
        return True
    if pid == me["pid"]:
        return False  # this process's own lock, left by an earlier attempt in it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
