"""Reading UTF-8 text and JSON-lines files with errors that name the file and the line.

Files are read in blocks of whole lines (`line_blocks`), each decoded at once (`block_lines`):
the one way lines are read, whether one process reads a file line by line (`text_lines`) or
several processes each decode their share of a large corpus.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from mmadapt.errors import DataError

__all__ = ["text_lines", "read_jsonl", "jsonl_rows", "line_blocks", "block_lines"]

#: bytes read at a time by `text_lines`
READ_BLOCK = 1 << 20


def line_blocks(path: Path, size: int = READ_BLOCK) -> Iterator[tuple[int, bytes]]:
    """(line number of its first line, bytes) for consecutive blocks of about `size` bytes of whole lines.

    Every block but the last ends with a newline; together they are the file, byte for byte.
    """
    with open(path, "rb") as f:
        lineno = 1
        while True:
            data = f.read(size)
            if not data:
                return
            if not data.endswith(b"\n"):
                data += f.readline()
            yield lineno, data
            lineno += data.count(b"\n")


def block_lines(path: Path, first_lineno: int, data: bytes) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) for every line of a block from `line_blocks`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _raise_decode_error(path, first_lineno, data)
    lines = text.split("\n")
    if lines[-1] == "":  # the newline ending the block, not a line of its own
        lines.pop()
    if first_lineno == 1 and lines:
        lines[0] = lines[0].lstrip("\ufeff")
    for lineno, line in enumerate(lines, start=first_lineno):
        yield lineno, line.rstrip("\r")


def _raise_decode_error(path: Path, first_lineno: int, data: bytes) -> None:
    """Find the first line of `data` that is not UTF-8 and raise a DataError naming it."""
    for lineno, raw in enumerate(data.split(b"\n"), start=first_lineno):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                            "convert the file to UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)") from None
    raise AssertionError("a block that does not decode has a line that does not decode")


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for every line of a UTF-8 file."""
    for first_lineno, data in line_blocks(path):
        yield from block_lines(path, first_lineno, data)


def jsonl_rows(path: Path, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-empty line of `lines`, numbered lines of the JSON-lines file `path`."""
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-empty line of a JSON-lines file."""
    return jsonl_rows(path, text_lines(path))
