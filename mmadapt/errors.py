"""Errors a user can act on. The CLI prints them without a traceback."""
from __future__ import annotations

import difflib
import errno
import shutil
from pathlib import Path
from typing import Iterable


class MmadaptError(Exception):
    """A problem with the user's input or environment, worded so they can fix it."""

    #: the process's exit status when this ends the command (README, "Failures and recovery")
    exit_code = 2
    #: the word the command line prints before the message
    label = "error"


class RecipeError(MmadaptError):
    """One or more problems in a recipe, each tied to a dotted path."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "recipe"):
        self.problems = problems
        self.source = source
        lines = [f"{len(problems)} problem(s) in {source}:"]
        lines += [f"  {path}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class DataError(MmadaptError):
    """A data file is missing or malformed; the message names the file and the row."""


class PluginError(MmadaptError):
    """A plugin failed to load, registered something twice, or a name is unknown."""


#: how the writers mmadapt calls (torch.save, safetensors, DeepSpeed) word a full disk when they give no errno
_FULL_DISK_WORDS = ("no space left", "iostream error", "file write failed", "failed writing file")


def free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem holding `path` (or its nearest existing parent); None if unknown."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def looks_like_full_disk(exc: BaseException, where: Path) -> bool:
    """`exc` is ENOSPC, or a writer's errno-less failure while the filesystem at `where` is (nearly) full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    free = free_bytes(where)
    return any(word in str(exc).lower() for word in _FULL_DISK_WORDS) and free is not None and free < 64 << 20


def full_disk_message(where: Path, what: str) -> str:
    """The one line a full disk stops a run with."""
    free = free_bytes(where)
    return (f"no space left on the filesystem holding {where} ({free if free is not None else 'unknown'} bytes free) "
            f"while {what}; free some space (or lower train.keep_checkpoints) and run the same command to resume")


def os_error_message(exc: OSError) -> str:
    """One line for an OS error: the path and the reason."""
    where = exc.filename or exc.filename2
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) and where:
        return full_disk_message(Path(where), "writing it")
    reason = exc.strerror or str(exc)
    return f"{where}: {reason}" if where else reason


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix for the closest choice, or ''."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
