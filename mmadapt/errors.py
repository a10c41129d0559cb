"""Errors a user can act on. The CLI prints them without a traceback."""
from __future__ import annotations

import difflib
import errno
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator


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


#: how the writers mmadapt calls (torch.save, safetensors, DeepSpeed) word a full disk when they give no errno;
#: torch's zip writer, failing on a full disk, says `iostream error` and then, on closing, `unexpected pos`
_FULL_DISK_WORDS = ("no space left", "iostream error", "unexpected pos", "file write failed", "failed writing file")
#: below this many free bytes a writer's failure is a full disk whatever its words
_NEARLY_FULL_BYTES = 1 << 20
#: below this many free bytes a failure worded like a full disk is one
_FULL_DISK_WORDS_BYTES = 64 << 20


def free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem holding `path` (or its nearest existing parent); None if unknown."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or while handling (a writer failing, then failing to close)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def looks_like_full_disk(exc: BaseException, where: Path) -> bool:
    """`exc` (or one it was raised from) is ENOSPC/EDQUOT; or the filesystem at `where` has under 1 MiB
    free; or a writer's errno-less failure is worded like a full disk while under 64 MiB are free."""
    chain = list(_chain(exc))
    if any(isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) for e in chain):
        return True
    free = free_bytes(where)
    if free is None:
        return False
    worded = any(word in str(e).lower() for e in chain for word in _FULL_DISK_WORDS)
    return free < _NEARLY_FULL_BYTES or (worded and free < _FULL_DISK_WORDS_BYTES)


@contextmanager
def full_disk_as_error(where: Path, what: str) -> Iterator[None]:
    """Run a write (torch.save, DeepSpeed's save_checkpoint, save_pretrained) into `where`: a failure
    that `looks_like_full_disk` becomes the one-line `full_disk_message`; any other is raised as is."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if looks_like_full_disk(exc, where):
            raise MmadaptError(full_disk_message(where, what)) from exc
        raise


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
