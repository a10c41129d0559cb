"""Content digests: the one place mmadapt hashes settings, files and directories.

Stage fingerprints, data-cache keys, tokenizer-cache keys and the synthetic benchmark's cache
key are all built here, so two keys over the same content always agree and a change to how
content is hashed is made once.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def json_digest(payload: Any, length: int | None = None) -> str:
    """sha256 (hex) of `payload` as key-sorted JSON (values JSON cannot hold are written with str);
    the first `length` hex digits when given (cache directory names)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def digest(*parts: Any) -> str:
    """sha256 of JSON-serialised parts (DictConfigs are resolved to plain containers): stage fingerprints."""
    plain = [OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p for p in parts]
    return json_digest(plain)


#: digests already computed in this process, by (path, size, mtime): each stage fingerprint and
#: data cache key of a run names the same corpora, and a corpus can be gigabytes
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path, cached: bool = True) -> str:
    """sha256 of a file's bytes (read once per process while the file's size and mtime stay the same;
    every time with `cached=False`, to verify what is on disk now)."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS or not cached:
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
        _DIGESTS[key] = sha.hexdigest()
    return _DIGESTS[key]


def path_digest(path: Path) -> str:
    """A file's `file_digest`, or for a directory (a `save_to_disk` dataset) one digest over every
    file in it, by relative path and content."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)
    sha = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        sha.update(f"{file.relative_to(path).as_posix()}\0{file_digest(file)}\n".encode())
    return sha.hexdigest()


def tensors_digest(tensors: dict[str, Any]) -> str:
    """sha256 over named tensors (model weights), by name, shape and their values as float32: the same
    weights give the same digest whatever class or device holds them."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").float().contiguous()
        sha.update(f"{name}\0{list(tensor.shape)}\n".encode())
        sha.update(tensor.numpy().tobytes())
    return sha.hexdigest()


class Fingerprint(str):
    """A stage fingerprint (the digest) that also keeps the named settings it digests, so that a finished
    stage's marker can record them and a later run can say which of them changed."""

    settings: dict[str, Any]


def stage_fingerprint(kind: str, **named: Any) -> Fingerprint:
    """The fingerprint of a stage of `kind` over `named` settings and input digests (the same digest as
    `digest(kind, *named.values())`), keeping them as plain data."""
    plain = {name: OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
             for name, value in named.items()}
    fingerprint = Fingerprint(digest(kind, *plain.values()))
    fingerprint.settings = json.loads(json.dumps(plain, default=str))
    return fingerprint
