"""Atomic, resumable DeepSpeed checkpoints.

A checkpoint is written under a temporary tag and renamed to `step_NNNNNNNN` only after
every rank finished writing, with a marker file inside; `resume: auto` only ever picks a
directory that has the marker, so a run killed mid-save never resumes from half a file.
The marker records the size and sha256 of every file: `resume: auto` verifies the newest
checkpoint and falls back to the newest intact one (with a warning naming the damage).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from mmadapt.errors import MmadaptError, full_disk_as_error
from mmadapt.files.atomic import publish_dir, write_json_atomic
from mmadapt.files.digests import file_digest
from mmadapt.training.distributed import DistInfo, barrier

MARKER = "mmadapt_checkpoint.json"
#: the folder of a stage's directory its Trainer keeps checkpoints in
CHECKPOINTS = "checkpoints"
_TAG = re.compile(r"^step_(\d+)$")


def step_tag(step: int) -> str:
    return f"step_{step:08d}"


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, dir) of every complete checkpoint under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _TAG.match(child.name)
        if match and (child / MARKER).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def checkpoint_fingerprint(path: Path) -> str | None:
    """The stage-settings digest a checkpoint was saved under (None for none recorded)."""
    return (_marker(path) or {}).get("fingerprint")


def _marker(path: Path) -> dict | None:
    """The marker's content; None when it cannot be read."""
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def file_records(directory: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under `directory` (but the marker), by relative path."""
    return {file.relative_to(directory).as_posix(): {"size": file.stat().st_size, "sha256": file_digest(file, cached=False)}
            for file in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MARKER)}


def damage(path: Path) -> str | None:
    """What is wrong with a checkpoint against the sizes and digests its marker records; None when intact
    (or when the marker, written by an older mmadapt, records none)."""
    marker = _marker(path)
    if marker is None:
        return f"its {MARKER} is unreadable"
    recorded = marker.get("files")
    if recorded is None:
        return None
    for name, expected in recorded.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        size = file.stat().st_size
        if size != expected["size"]:
            return f"{name} has {size} bytes, {expected['size']} were written"
        if file_digest(file, cached=False) != expected["sha256"]:
            return f"{name} has changed since it was written (its sha256 differs)"
    return None


def stage_checkpoints(root: Path, fingerprint: str | None) -> list[Path]:
    """The complete checkpoints under `root` saved under these stage settings, oldest first."""
    return [path for _, path in complete_checkpoints(root) if checkpoint_fingerprint(path) == fingerprint]


def newest_intact(root: Path, fingerprint: str | None, warn: Callable[[str], None]) -> Path | None:
    """The newest checkpoint of these settings whose files match its marker; a damaged newer one is
    named through `warn`. Raises when there are checkpoints but none is intact."""
    found = stage_checkpoints(root, fingerprint)
    damaged = []
    for path in reversed(found):
        problem = damage(path)
        if problem is None:
            if damaged:
                warn(f"warning: checkpoint {damaged[0][0]} is damaged ({damaged[0][1]}); "
                     f"resuming from the older intact {path.name} instead")
            return path
        damaged.append((path, problem))
    if damaged:
        raise MmadaptError(f"no intact checkpoint in {root}: {'; '.join(f'{p.name}: {why}' for p, why in damaged)}; "
                           "delete them to start the stage over (train.resume=never keeps them but ignores them)")
    return None


def find_resume_checkpoint(root: Path, resume: str, fingerprint: str | None = None,
                           warn: Callable[[str], None] = print) -> Path | None:
    """The checkpoint to resume from: `auto` -> the newest intact one saved under the same stage
    settings (`fingerprint`), `never` -> None, or a path (which must be intact)."""
    if resume == "never":
        return None
    if resume == "auto":
        return newest_intact(root, fingerprint, warn)
    path = Path(resume)
    if not (path / MARKER).is_file():
        raise MmadaptError(f"train.resume: {resume} is not a complete mmadapt checkpoint (no {MARKER}); "
                           f"use auto, never, or a step_* directory under {root}")
    problem = damage(path)
    if problem:
        raise MmadaptError(f"train.resume: checkpoint {resume} is damaged ({problem}); use auto or another one")
    return path


def save_checkpoint(engine: Any, root: Path, step: int, client_state: dict, keep: int, dist: DistInfo,
                    fingerprint: str | None = None) -> Path:
    """Save on every rank, publish atomically on rank 0, prune to the newest `keep`."""
    tag = step_tag(step)
    tmp_tag = f".tmp-{tag}"
    if dist.is_main:
        shutil.rmtree(root / tmp_tag, ignore_errors=True)
    barrier()
    with full_disk_as_error(root, f"writing checkpoint {tag}"):
        engine.save_checkpoint(str(root), tag=tmp_tag, client_state=client_state, save_latest=False)
    barrier()
    final = root / tag
    if dist.is_main:
        files = file_records(root / tmp_tag)  # every rank's files are on disk after the barrier
        write_json_atomic(root / tmp_tag / MARKER, {"step": step, "fingerprint": fingerprint, "files": files})
        publish_dir(root / tmp_tag, final)
        if keep > 0:
            for _, old in complete_checkpoints(root)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_checkpoint(engine: Any, path: Path) -> dict:
    """Load model, optimiser and LR-scheduler state; return the client state saved with it."""
    _, client_state = engine.load_checkpoint(str(path.parent), tag=path.name, load_module_strict=True)
    if client_state is None:
        raise MmadaptError(f"could not load checkpoint {path}: DeepSpeed found no model states in it")
    return client_state
