"""Stale JIT build locks: DeepSpeed builds its CPU ops with torch's cpp_extension, which holds a
`lock` file in the op's build directory while it builds and waits, silently and forever, while
one exists. A run killed mid-build leaves it behind, and every later run then hangs.

Before DeepSpeed starts, `check_build_locks` looks at every op's build directory under the
extensions root (`TORCH_EXTENSIONS_DIR`, or torch's default under the home cache):

- a lock with a process of this machine building in that directory (its working directory or
  command line names it) is a live build: left alone;
- a lock older than `STALE_SECONDS` (a build takes about a minute here) with no such process is
  stale: removed, with one log line;
- a younger one may be another machine's build on a shared home directory: left, with one line
  naming it and the fix, so a wait is never silent.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

#: a build lock older than this with no local builder is taken to be left by a killed run
STALE_SECONDS = 600.0


def extensions_root() -> Path:
    """Where torch's cpp_extension builds and caches JIT ops."""
    from torch.utils.cpp_extension import get_default_build_root

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())


def build_locks(root: Path) -> list[Path]:
    """The `lock` files of op build directories under `root` (`<root>/<op>/lock`, `<root>/<abi>/<op>/lock`)."""
    return sorted({*root.glob("*/lock"), *root.glob("*/*/lock")}) if root.is_dir() else []


def local_builders(build_dir: Path) -> list[int]:
    """Pids of this machine's processes working in `build_dir` (ninja and the compiler run there)."""
    target, pids = str(build_dir.resolve()), []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(proc.name) != os.getpid() and (cwd.startswith(target) or target in cmdline):
            pids.append(int(proc.name))
    return pids


def check_build_locks(log: Callable[[str], None], root: Path | None = None,
                      stale_seconds: float = STALE_SECONDS) -> list[Path]:
    """Remove the stale build locks under `root` (default `extensions_root()`), name the others; returns the removed."""
    removed = []
    for lock in build_locks(root or extensions_root()):
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            continue  # its build just finished
        if local_builders(lock.parent):
            continue
        if age > stale_seconds:
            lock.unlink(missing_ok=True)
            removed.append(lock)
            log(f"removed a stale JIT build lock {lock} ({age / 60:.0f} min old, no process building there): "
                f"a run was killed while building that op; the next run that needs it builds it again")
        else:
            log(f"waiting on the JIT build lock {lock} ({age:.0f} s old, no process of this machine building there): "
                f"if no run on another machine is building that op, remove it and run again")
    return removed
