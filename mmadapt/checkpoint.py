"""Atomic, resumable DeepSpeed checkpoints.

A checkpoint is written under a temporary tag and renamed to `step_NNNNNNNN` only after
every rank finished writing, with a marker file inside; `resume: auto` only ever picks a
directory that has the marker, so a run killed mid-save never resumes from half a file.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from mmadapt.atomic import publish_dir
from mmadapt.distributed import DistInfo, barrier
from mmadapt.errors import MmadaptError

MARKER = "mmadapt_checkpoint.json"
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
    return json.loads((path / MARKER).read_text()).get("fingerprint")


def find_resume_checkpoint(root: Path, resume: str, fingerprint: str | None = None) -> Path | None:
    """The checkpoint to resume from: `auto` -> newest complete one saved under the same
    stage settings (`fingerprint`), `never` -> None, or a path."""
    if resume == "never":
        return None
    if resume == "auto":
        found = [path for _, path in complete_checkpoints(root) if checkpoint_fingerprint(path) == fingerprint]
        return found[-1] if found else None
    path = Path(resume)
    if not (path / MARKER).is_file():
        raise MmadaptError(f"train.resume: {resume} is not a complete mmadapt checkpoint (no {MARKER}); "
                           f"use auto, never, or a step_* directory under {root}")
    return path


def save_checkpoint(engine: Any, root: Path, step: int, client_state: dict, keep: int, dist: DistInfo,
                    fingerprint: str | None = None) -> Path:
    """Save on every rank, publish atomically on rank 0, prune to the newest `keep`."""
    tag = step_tag(step)
    tmp_tag = f".tmp-{tag}"
    if dist.is_main:
        shutil.rmtree(root / tmp_tag, ignore_errors=True)
    barrier()
    engine.save_checkpoint(str(root), tag=tmp_tag, client_state=client_state, save_latest=False)
    barrier()
    final = root / tag
    if dist.is_main:
        (root / tmp_tag / MARKER).write_text(json.dumps({"step": step, "fingerprint": fingerprint}))
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
