"""Atomic files and directories: the one place mmadapt publishes what it writes.

A reader (another rank, a later run, a user's `from_pretrained`) sees either the old complete
file or directory or the new complete one, never half of one, and never nothing where a
finished one stood: a directory is built under a temporary name beside its target and then
swapped in (an atomic exchange where the filesystem has one; otherwise the old one is renamed
aside, the new one renamed in, and only then the old one deleted, and put back if the second
rename fails). What is published gets the permissions `open` and `mkdir` give under the
process's umask (0644 and 0755 under the usual 022), not `mkdtemp`'s private 0700.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_mode(directory: bool) -> int:
    """The mode `mkdir` (directory) or `open` (file) would give under the current umask."""
    return (0o777 if directory else 0o666) & ~_umask()


def write_file_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """Publish `path` atomically: `write(tmp)` writes a temporary file beside it, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.chmod(tmp, public_mode(directory=False))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file and a rename: readers never see half a file."""
    return write_file_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: Path, data: Any, **dumps: Any) -> Path:
    """`data` as JSON (`json.dumps(data, **dumps)`) in `path`, atomically."""
    return write_text_atomic(path, json.dumps(data, **dumps))


def staging_dir(target: Path) -> Path:
    """A fresh empty directory beside `target`, with public permissions, to fill and `publish_dir`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    staged.chmod(public_mode(directory=True))
    return staged


def publish_dir(staged: Path, target: Path, replace: bool = True) -> Path:
    """Move the finished directory `staged` to `target`.

    An existing `target` is replaced (`replace`), with no moment when `target` is missing; or
    kept (`replace=False`: a cache entry another process already published, equal by its key),
    and `staged` discarded.
    """
    staged, target = Path(staged), Path(target)
    if not target.exists():
        try:
            os.replace(staged, target)
            return target
        except OSError as exc:  # another process published it in between
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not target.exists():
                raise
    if not replace:
        shutil.rmtree(staged, ignore_errors=True)
        return target
    if _exchange(staged, target):
        shutil.rmtree(staged, ignore_errors=True)  # now holds the old directory
        return target
    old = target.with_name(f".{target.name}.old-{staged.name}")
    os.replace(target, old)
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(old, target)  # the old one is back: still a complete directory at `target`
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
        return False  # this filesystem or kernel cannot exchange: rename aside instead
    code = ctypes.get_errno()
    raise OSError(code, os.strerror(code), str(b))


@functools.lru_cache(maxsize=1)
def _renameat2() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # not glibc-like: rename aside
        return None
    function = getattr(libc, "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


def write_dir_atomic(target: Path, write: Callable[[Path], Any], replace: bool = True) -> Path:
    """Publish directory `target` atomically: `write(staged)` fills a staging directory, then `publish_dir`.
    The staging directory is removed if `write` fails."""
    staged = staging_dir(target)
    try:
        write(staged)
        return publish_dir(staged, target, replace=replace)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
