"""The stage lifecycle: every unit of every stage (`pretrain`, `tokenizer/<language>`,
`adapt/<language>`, `finetune/<task>`, `transfer/<task>/<language>`) goes through `run_stage`.

1. its fingerprint (the digest of every setting and input that decides its result);
2. skipped when its completion marker holds that fingerprint; a finished unit whose settings
   changed is refused, with what changed, unless the recipe says `rerun: true` (`train --rerun`),
   and then its old checkpoints, TensorBoard events and metrics.jsonl are removed with its marker;
3. otherwise, under the stage lock, the old marker is removed *before* any work, so a run
   interrupted while redoing a stage never leaves a marker that vouches for half-new outputs;
4. the work, given the stage's context (`StageContext.fingerprint` set to the unit's, for the
   checkpoints and snapshots it stamps), which publishes its outputs atomically (`mmadapt.files.atomic`)
   and returns them typed (mmadapt.pipeline.outputs);
5. the marker (`stage_complete.json`, written last, atomically) and, on rank 0,
   `mmadapt_stage_finished` with the unit's metrics;
6. a barrier, so no rank reads the outputs before they are published.
"""
from __future__ import annotations

import gc
import json
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ContextManager, Generic, Protocol, TypeVar

from omegaconf import DictConfig, OmegaConf

from mmadapt.errors import MmadaptError
from mmadapt.files.atomic import write_text_atomic
from mmadapt.files.digests import path_digest
from mmadapt.files.locks import held_lock
from mmadapt.pipeline.context import StageContext
from mmadapt.training.checkpoint import CHECKPOINTS
from mmadapt.training.distributed import barrier, broadcast_object
from mmadapt.training.metrics import METRICS_FILE
from mmadapt.training.plateau import RESTART_RECORD, STUCK_CURVE_PREFIX
from mmadapt.training.stopping import doing
from mmadapt.training.trainer import TRAIN_SUMMARY

STAGE_DONE = "stage_complete.json"
#: a marker's `paths`: its outputs inside the run directory are written relative to the marker's own directory
#: (those outside it, absolute), so that a run directory copied or moved elsewhere still finds them. A marker
#: without it (written by an older mmadapt) holds them as they were given, relative to the working directory.
RELATIVE_PATHS = "relative_to_marker"
#: held (by rank 0) while a stage unit runs in its directory
STAGE_LOCK = ".stage.lock"


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
#: changing them must not re-run a finished stage. (`nonfinite` and `max_nonfinite_skips` say what
#: happens to a step that went wrong; a finished stage had none, or those it had were allowed.)
OBSERVATION_KEYS = frozenset({"log_every", "eval_every", "eval_batches", "save_every", "keep_checkpoints", "resume",
                              "progress_bar", "nonfinite", "max_nonfinite_skips"})


def outcome_settings(section: Any, *, is_train: bool = False) -> Any:
    """`section` as plain data without observation keys, in it (`is_train`) or in any nested `train:`."""
    plain = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else section
    if not isinstance(plain, dict):
        return plain
    return {key: outcome_settings(value, is_train=key == "train") for key, value in plain.items()
            if not (is_train and key in OBSERVATION_KEYS)}


@dataclass(frozen=True)
class StageRecord:
    """A finished stage unit as its marker holds it: the fingerprint it ran with, what it wrote, what it
    measured. Stages hand each other typed outputs (mmadapt.pipeline.outputs), made from and into this."""

    fingerprint: str
    outputs: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)
    #: found complete and skipped by this run (not part of the marker)
    skipped: bool = False

    def paths(self) -> dict[str, Path]:
        """The outputs as paths."""
        return {key: Path(value) for key, value in self.outputs.items()}

    def marker(self, stage_dir: Path, run_dir: Path) -> dict[str, Any]:
        """The record as `stage_complete.json` in `stage_dir` holds it (`RELATIVE_PATHS`: `run_dir` is the run's
        output directory), with the settings its fingerprint digests."""
        settings = getattr(self.fingerprint, "settings", None)
        outputs = {key: _marker_path(value, stage_dir, run_dir) for key, value in self.outputs.items()}
        return {"fingerprint": self.fingerprint, "outputs": outputs, "paths": RELATIVE_PATHS, "metrics": self.metrics,
                **({"settings": settings} if settings is not None else {})}


def _marker_path(path: str, stage_dir: Path, run_dir: Path) -> str:
    """`path` as a marker in `stage_dir` holds it: relative to `stage_dir` when inside `run_dir`, else absolute."""
    absolute = os.path.abspath(path)
    if Path(absolute).is_relative_to(os.path.abspath(run_dir)):
        return os.path.relpath(absolute, os.path.abspath(stage_dir))
    return absolute


def read_marker(stage_dir: Path) -> dict[str, Any] | None:
    """The marker in `stage_dir` (None when the unit has not finished), its output paths usable from the working
    directory (`RELATIVE_PATHS`)."""
    path = Path(stage_dir) / STAGE_DONE
    if not path.is_file():
        return None
    marker = json.loads(path.read_text())
    if marker.get("paths") == RELATIVE_PATHS:
        marker["outputs"] = {key: value if os.path.isabs(value) else os.path.normpath(os.path.join(stage_dir, value))
                             for key, value in marker.get("outputs", {}).items()}
    return marker


class StageOutputs(Protocol):
    """What a stage unit hands the units after it (mmadapt.pipeline.outputs): typed, and kept in its
    marker as a `StageRecord`."""

    fingerprint: str
    skipped: bool

    @classmethod
    def from_record(cls, record: StageRecord) -> Any:
        """The outputs a finished unit's record holds."""

    def to_record(self) -> StageRecord:
        """The record the unit's marker holds."""


Outputs = TypeVar("Outputs", bound=StageOutputs)


@dataclass
class StageUnit(Generic[Outputs]):
    """One unit of a stage as `run_stage` runs it.

    `fingerprint()` digests what decides the unit's result; `work(ctx)` does it (on every rank, or on
    rank 0 alone with `main_only`) with the stage's context, `ctx` with `fingerprint` set, publishes
    its outputs and returns them as an `outputs` (whose `from_record` reads a finished unit's marker).
    """

    name: str
    #: the stage's context before its fingerprint is known (`fingerprint` None)
    ctx: StageContext
    fingerprint: Callable[[], str]
    work: Callable[[StageContext], Outputs]
    outputs: type[Outputs]
    main_only: bool = False


def run_stage(unit: StageUnit[Outputs]) -> Outputs:
    """Run `unit` through the lifecycle (module docstring); its outputs, whether it ran or was complete."""
    if not unit.main_only:
        return _lifecycle(unit)
    outputs, refused = None, None
    if unit.ctx.dist.is_main:
        try:
            outputs = _lifecycle(unit)
        except FinishedStageChanged as exc:  # every rank stops with it, none waits for rank 0
            refused = exc
    barrier()
    message = broadcast_object(str(refused) if refused else None)
    if refused is not None:
        raise refused
    if message is not None:
        raise MmadaptError(message)
    return broadcast_object(outputs)


def _lifecycle(unit: StageUnit[Outputs]) -> Outputs:
    ctx, collective = unit.ctx, not unit.main_only
    doing(f"{unit.name} (checking its inputs, preparing its data and model, or writing its outputs)")
    fingerprint = unit.fingerprint()
    done = completed(ctx.stage_dir, fingerprint)
    gone = missing_outputs(done) if done else []
    if done and not gone:
        ctx.log(f"{unit.name}: already complete in {ctx.stage_dir} (same settings); skipping")
        return unit.outputs.from_record(done)
    replaced = gone or changed_settings(ctx.stage_dir, fingerprint)
    if replaced is not None and not ctx.cfg.get("rerun"):
        raise (FinishedStageOutputsMissing if gone else FinishedStageChanged)(unit.name, ctx.stage_dir, replaced)
    with stage_lock(ctx, collective):
        if ctx.dist.is_main:
            invalidate(ctx.stage_dir)
            if replaced is not None:
                ctx.log(f"{unit.name}: re-running (--rerun): " + "; ".join(replaced))
                remove_run_traces(ctx.stage_dir)
        outputs = unit.work(replace(ctx, fingerprint=fingerprint))
        if outputs.fingerprint != fingerprint:
            raise RuntimeError(f"{unit.name}: its work returned outputs of fingerprint {outputs.fingerprint}, "
                               f"not the stage's {fingerprint}")
        record = outputs.to_record()  # its fingerprint is the stage's (checked above)
        if ctx.dist.is_main:
            write_text_atomic(ctx.stage_dir / STAGE_DONE,
                              json.dumps(record.marker(ctx.stage_dir, ctx.run_dir), indent=1))
            doing(f"going on after {unit.name} finished")
            ctx.plugins.hook.mmadapt_stage_finished(stage=unit.name, output_dir=str(ctx.stage_dir),
                                                    metrics=dict(record.metrics))
        if collective:
            barrier()
    return outputs


def completed(stage_dir: Path, fingerprint: str) -> StageRecord | None:
    """The marker's record if the stage finished with these settings, else None."""
    marker = read_marker(stage_dir)
    if marker is None or marker.get("fingerprint") != fingerprint:
        return None
    return StageRecord(marker["fingerprint"], marker.get("outputs", {}), marker.get("metrics", {}), skipped=True)


class FinishedStageChanged(MmadaptError):
    """A finished stage unit would be re-run (its outputs replaced) because its settings changed."""

    #: the message's first line; one line per change follows it
    HEADLINE = ("{name} finished in {stage_dir} with other settings, and re-running it would replace its outputs; "
                "pass --rerun (or set rerun: true) to re-run it, or give another output_dir")

    def __init__(self, name: str, stage_dir: Path, changes: list[str]):
        lines = [self.HEADLINE.format(name=name, stage_dir=stage_dir)]
        super().__init__("\n".join(lines + [f"  {change}" for change in changes]))


def missing_outputs(record: StageRecord) -> list[str]:
    """`key: path is gone` for each output a finished unit's record names that is no longer there."""
    return [f"{key}: {path} is gone (deleted or moved since the stage finished)"
            for key, path in record.outputs.items() if not os.path.exists(path)]


class FinishedStageOutputsMissing(FinishedStageChanged):
    """A finished stage unit (same settings) whose outputs are no longer there: the units after it would fail on
    them; running it again replaces what is left of them."""

    HEADLINE = ("{name} finished in {stage_dir}, but outputs it wrote are gone; pass --rerun (or set rerun: true) to "
                "run it again, or put them back")


def changed_settings(stage_dir: Path, fingerprint: str) -> list[str] | None:
    """What changed since the unit finished in `stage_dir` (`key: old -> new` lines), or None when it
    has not finished (no marker) or finished with this fingerprint."""
    marker = read_marker(stage_dir)
    if marker is None or marker.get("fingerprint") == fingerprint:
        return None
    old, new = marker.get("settings"), getattr(fingerprint, "settings", None)
    if not isinstance(old, dict) or new is None:
        return ["settings changed (the finished stage's marker records no settings to compare: written by an "
                "older mmadapt)"]
    return settings_diff(old, new) or ["settings changed (the same keys and values, in another form)"]


#: a content digest inside a setting (a corpus, a task file, an earlier stage's fingerprint)
_DIGEST = re.compile(r"[0-9a-f]{40,}")


def settings_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """`key: old -> new` for each dotted key whose value differs; a change of content digests (a data
    file edited in place, an earlier stage re-run) is named as such instead of printing the digests."""
    lines = []
    for key in sorted(set(old) | set(new), key=str):
        before, after, dotted = old.get(key, "<unset>"), new.get(key, "<unset>"), f"{prefix}{key}"
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            lines += settings_diff(before, after, f"{dotted}.")
        elif _DIGEST.search(json.dumps(before, default=str)) or _DIGEST.search(json.dumps(after, default=str)):
            lines.append(f"{dotted}: " + ("<unset> -> set (an input the stage now reads)" if key not in old else
                                          "set -> <unset> (an input the stage no longer reads)" if key not in new else
                                          "content changed (a data file edited in place, or an earlier stage re-run)"))
        else:
            lines.append(f"{dotted}: {json.dumps(before, default=str)} -> {json.dumps(after, default=str)}")
    return lines


#: what a stage's training leaves beside its outputs: removed when a finished stage is re-run, so two
#: runs never share them (nested stage units, with their own marker, keep theirs); a stale training summary
#: would otherwise stand for a re-run that trained nothing (the pretrain stage reads it)
RUN_TRACES = (CHECKPOINTS, "tensorboard", METRICS_FILE, TRAIN_SUMMARY, RESTART_RECORD)


def remove_run_traces(stage_dir: Path) -> None:
    """Remove the checkpoints, TensorBoard event files, metrics.jsonl and training summary of the run that finished
    in `stage_dir`."""
    stage_dir = Path(stage_dir)
    if not stage_dir.is_dir():
        return
    for child in stage_dir.iterdir():
        if child.name in RUN_TRACES or child.name.startswith(STUCK_CURVE_PREFIX):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        elif child.is_dir() and not (child / STAGE_DONE).is_file():
            remove_run_traces(child)


def invalidate(stage_dir: Path) -> None:
    """Remove a stage's completion marker: from here until the new one is written, it is not complete."""
    (Path(stage_dir) / STAGE_DONE).unlink(missing_ok=True)


def stage_lock(ctx: StageContext, collective: bool = True) -> ContextManager[None]:
    """Hold the stage directory's lock while the unit runs (rank 0 takes it; with `collective` every
    rank learns whether it got it). A second live run writing the same stage is refused; a lock
    left by a process that died is taken over (mmadapt.files.locks)."""
    return held_lock(Path(ctx.stage_dir) / STAGE_LOCK, ctx.dist, collective, str(ctx.stage_dir))


def recorded_restarts(ctx: StageContext) -> dict[str, Any] | None:
    """What an interrupted run of these settings recorded of its restarts (`RESTART_RECORD` in the stage's
    directory; None for a fresh stage, or a record of other settings)."""
    path = ctx.stage_dir / RESTART_RECORD
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text(encoding="utf-8"))
    return recorded if recorded.get("fingerprint") == ctx.fingerprint else None


def start_attempt_over(ctx: StageContext, attempt: int, record: dict[str, Any], dropped: tuple[str, ...] = ()) -> None:
    """Give up a training attempt: drop its checkpoints (and the `dropped` directories of the stage), keep its training
    curve as `<STUCK_CURVE_PREFIX><attempt>.jsonl`, and record `record` with the stage's fingerprint in
    `RESTART_RECORD`, for `recorded_restarts`; every rank waits for it."""
    if ctx.dist.is_main:  # checkpoints first: a run stopped in between starts the given-up attempt again, never
        # resumes the next one from the given-up one's checkpoints
        for directory in (CHECKPOINTS, *dropped):
            shutil.rmtree(ctx.stage_dir / directory, ignore_errors=True)
        curve = ctx.stage_dir / METRICS_FILE
        if curve.is_file():
            curve.replace(ctx.stage_dir / f"{STUCK_CURVE_PREFIX}{attempt}.jsonl")
        write_text_atomic(ctx.stage_dir / RESTART_RECORD,
                          json.dumps({"fingerprint": ctx.fingerprint, **record}, indent=1))
    barrier()
    gc.collect()
