"""Stage bookkeeping: a stage is complete when its marker holds the same settings digest.

The marker is written last (atomically), so an interrupted stage is never mistaken for a
finished one, and a finished stage is skipped when its settings have not changed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmadapt.digests import digest, path_digest  # noqa: F401 (digest: stage modules import it here)
from mmadapt.atomic import write_text_atomic

STAGE_DONE = "stage_complete.json"


def task_data_digests(task: Any, task_section: Any, split: str, language: str) -> list[str]:
    """Content digests of the files `task` reads for `split` ("train", "dev", "test") and `language`
    (its `data_files`), for the fingerprints of the stages that read them. A path not on disk is
    left out: the task's loader reports it."""
    paths = [Path(p).expanduser() for p in task.data_files(task_section, split, language)]
    return [path_digest(p) for p in paths if p.exists()]


#: task keys that choose which languages are evaluated, never what a stage produces for one
TASK_SELECTION_KEYS = frozenset({"languages"})


def task_settings(task_section: Any) -> Any:
    """A task section as stage fingerprints hold it: without the keys that only select languages,
    so listing another evaluation language never re-runs a fine-tune or a finished transfer."""
    plain = OmegaConf.to_container(task_section, resolve=True) if isinstance(task_section, DictConfig) else task_section
    return {key: value for key, value in dict(plain).items() if key not in TASK_SELECTION_KEYS}


#: `train:` keys that only change how a run is watched or checkpointed, never what it produces:
#: changing them must not re-run a finished stage
OBSERVATION_KEYS = frozenset({"log_every", "eval_every", "eval_batches", "save_every", "keep_checkpoints", "resume",
                              "progress_bar"})


def outcome_settings(section: Any, *, is_train: bool = False) -> Any:
    """`section` as plain data without observation keys, in it (`is_train`) or in any nested `train:`."""
    plain = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else section
    if not isinstance(plain, dict):
        return plain
    return {key: outcome_settings(value, is_train=key == "train") for key, value in plain.items()
            if not (is_train and key in OBSERVATION_KEYS)}


def completed(stage_dir: Path, fingerprint: str) -> dict | None:
    """The marker's record if the stage finished with these settings, else None."""
    path = stage_dir / STAGE_DONE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("fingerprint") == fingerprint else None


def finish_stage(ctx: Any, unit: str, fingerprint: str, outputs: dict[str, Any],
                 metrics: dict[str, Any] | None = None, stage_dir: Path | None = None) -> dict:
    """Rank 0, once a stage unit's outputs are in place: write its marker (in `stage_dir`, default
    `ctx.stage_dir`), then fire `mmadapt_stage_finished` with the unit and its metrics.

    Units are `pretrain`, `tokenizer/<language>`, `adapt/<language>`, `finetune/<task>` and
    `transfer/<task>/<language>`; the hook fires for a unit that ran, not for one skipped as complete.
    """
    stage_dir = Path(stage_dir or ctx.stage_dir)
    record = mark_complete(stage_dir, fingerprint, outputs, metrics)
    ctx.plugins.hook.mmadapt_stage_finished(stage=unit, output_dir=str(stage_dir), metrics=dict(record["metrics"]))
    return record


def mark_complete(stage_dir: Path, fingerprint: str, outputs: dict[str, Any], metrics: dict[str, Any] | None = None) -> dict:
    """Write the marker (call on rank 0 after every output is in place)."""
    record = {"fingerprint": fingerprint, "outputs": {k: str(v) for k, v in outputs.items()},
              "metrics": metrics or {}}
    write_text_atomic(stage_dir / STAGE_DONE, json.dumps(record, indent=1))
    return record
