"""The one stage lifecycle (mmadapt.pipeline.lifecycle.run_stage) every stage unit goes through."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mmadapt.errors import MmadaptError
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.lifecycle import (RELATIVE_PATHS, STAGE_DONE, STAGE_LOCK, StageRecord, StageUnit, read_marker,
                                       run_stage)
from mmadapt.training.distributed import DistInfo

MAIN = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class Hooks:
    def __init__(self):
        self.calls = []

    def mmadapt_stage_finished(self, stage, output_dir, metrics):
        self.calls.append((stage, output_dir, metrics))


class Plugins:
    def __init__(self):
        self.hook = Hooks()


@dataclass(frozen=True)
class FileOutputs:
    """A test stage's typed outputs: one file and a step count."""

    fingerprint: str
    out: Path | None
    steps: int = 3
    skipped: bool = False

    @classmethod
    def from_record(cls, record):
        out = record.outputs.get("out")
        return cls(record.fingerprint, Path(out) if out else None, record.metrics.get("steps", 0), record.skipped)

    def to_record(self):
        outputs = {"out": str(self.out)} if self.out else {}
        return StageRecord(self.fingerprint, outputs, {"steps": self.steps} if self.out else {}, self.skipped)


def _unit(tmp_path, fingerprint="f1", work=None, plugins=None, rerun=False):
    ctx = StageContext(OmegaConf.create({"rerun": rerun}), plugins or Plugins(), MAIN, tmp_path, tmp_path / "stage")
    calls = []

    def default_work(stage):
        calls.append(stage.fingerprint)
        (stage.stage_dir / "out.txt").write_text(fingerprint)
        return FileOutputs(stage.fingerprint, stage.stage_dir / "out.txt")

    return StageUnit("adapt/xx", ctx, lambda: fingerprint, work or default_work, FileOutputs), calls


def test_a_unit_runs_once_then_is_skipped_with_the_same_record(tmp_path):
    plugins = Plugins()
    unit, calls = _unit(tmp_path, plugins=plugins)
    first = run_stage(unit)
    again, calls_again = _unit(tmp_path, plugins=plugins)
    second = run_stage(again)
    assert calls == ["f1"] and calls_again == []  # the work sees its fingerprint (checkpoints carry it)
    assert not first.skipped and second.skipped
    assert (first.fingerprint, first.out, first.steps) == (second.fingerprint, second.out, second.steps)
    assert plugins.hook.calls == [("adapt/xx", str(tmp_path / "stage"), {"steps": 3})]
    marker = json.loads((tmp_path / "stage" / STAGE_DONE).read_text())
    assert marker == {"fingerprint": "f1", "outputs": {"out": "out.txt"}, "paths": RELATIVE_PATHS,
                      "metrics": {"steps": 3}}
    assert not (tmp_path / "stage" / STAGE_LOCK).exists()


def test_a_run_directory_moved_elsewhere_still_finds_its_finished_units_outputs(tmp_path):
    shipped = tmp_path / "shipped.txt"  # an output outside the run directory (a file shipped with a recipe)
    shipped.write_text("model")

    def work(stage):
        (stage.stage_dir / "out.txt").write_text("f1")
        return FileOutputs(stage.fingerprint, stage.stage_dir / "out.txt")

    run_stage(_unit(tmp_path / "run", work=work)[0])
    run_stage(StageUnit("pretrain", StageContext(OmegaConf.create({}), Plugins(), MAIN, tmp_path / "run",
                                                 tmp_path / "run" / "pretrain"),
                        lambda: "p1", lambda stage: FileOutputs(stage.fingerprint, shipped), FileOutputs))
    (tmp_path / "run").rename(tmp_path / "moved")
    again, calls = _unit(tmp_path / "moved")
    moved = run_stage(again)
    assert calls == [] and moved.skipped and moved.out.read_text() == "f1"
    assert moved.out == tmp_path / "moved" / "stage" / "out.txt"
    assert read_marker(tmp_path / "moved" / "pretrain")["outputs"] == {"out": str(shipped)}
    assert json.loads((tmp_path / "moved" / "pretrain" / STAGE_DONE).read_text())["outputs"] == {"out": str(shipped)}


def test_a_marker_an_older_mmadapt_wrote_keeps_its_paths_as_they_were_given(tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / STAGE_DONE).write_text(json.dumps({"fingerprint": "f1", "outputs": {"out": "runs/x/stage/out.txt"},
                                                "metrics": {"steps": 3}}))
    assert read_marker(stage)["outputs"] == {"out": "runs/x/stage/out.txt"}


def test_the_work_gets_a_context_of_its_own_with_the_fingerprint_and_the_units_context_is_never_changed(tmp_path):
    unit, calls = _unit(tmp_path, "f7")
    run_stage(unit)
    assert calls == ["f7"] and unit.ctx.fingerprint is None
    with pytest.raises(FrozenInstanceError):
        unit.ctx.fingerprint = "f8"


def test_outputs_of_another_fingerprint_than_the_stages_are_refused_before_any_marker(tmp_path):
    unit, _ = _unit(tmp_path, "f1", work=lambda stage: FileOutputs("other", None))
    with pytest.raises(RuntimeError, match="fingerprint other"):
        run_stage(unit)
    assert not (tmp_path / "stage" / STAGE_DONE).exists()


def test_the_old_marker_is_gone_before_a_rerun_does_any_work(tmp_path):
    run_stage(_unit(tmp_path, "f1")[0])
    seen = []

    def work(stage):
        seen.append((tmp_path / "stage" / STAGE_DONE).exists())
        raise RuntimeError("killed mid-stage")

    with pytest.raises(RuntimeError):
        run_stage(_unit(tmp_path, "f2", work, rerun=True)[0])
    assert seen == [False]
    assert not (tmp_path / "stage" / STAGE_DONE).exists()  # half-new outputs are never vouched for
    assert not (tmp_path / "stage" / STAGE_LOCK).exists()
    unit, calls = _unit(tmp_path, "f1")
    assert not run_stage(unit).skipped and calls == ["f1"]  # even the old settings run again


def test_a_stage_another_live_run_is_writing_is_refused_and_a_dead_runs_lock_is_taken_over(tmp_path):
    import socket

    (tmp_path / "stage").mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "stage" / STAGE_LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": other.pid}))
        unit, calls = _unit(tmp_path)
        with pytest.raises(MmadaptError, match=f"another run \\(process {other.pid}"):
            run_stage(unit)
        assert calls == []
    finally:
        other.kill()
        other.wait()
    unit, calls = _unit(tmp_path)
    assert not run_stage(unit).skipped and calls == ["f1"]
    assert not os.path.exists(tmp_path / "stage" / STAGE_LOCK)


def _recorded_unit(tmp_path, settings, rerun=False, work=None):
    """A unit whose fingerprint records `settings`, as the pipeline's stages do."""
    from mmadapt.files.digests import stage_fingerprint

    unit, calls = _unit(tmp_path, rerun=rerun, work=work)
    unit.fingerprint = lambda: stage_fingerprint("adapt", **settings)
    return unit, calls


def test_a_finished_unit_whose_settings_changed_is_refused_with_what_changed_and_nothing_is_lost(tmp_path):
    from mmadapt.pipeline.lifecycle import FinishedStageChanged

    first, _ = _recorded_unit(tmp_path, {"train": {"max_steps": 300, "lr": 0.1}, "corpus": ["file:" + "a" * 64]})
    run_stage(first)
    marker = (tmp_path / "stage" / STAGE_DONE).read_text()
    assert json.loads(marker)["settings"] == {"train": {"max_steps": 300, "lr": 0.1}, "corpus": ["file:" + "a" * 64]}
    changed, calls = _recorded_unit(tmp_path, {"train": {"max_steps": 20, "lr": 0.1}, "corpus": ["file:" + "b" * 64]})
    with pytest.raises(FinishedStageChanged) as refused:
        run_stage(changed)
    lines = str(refused.value).splitlines()
    assert lines[0].startswith(f"adapt/xx finished in {tmp_path / 'stage'} with other settings") and "--rerun" in lines[0]
    assert lines[1:] == ["  corpus: content changed (a data file edited in place, or an earlier stage re-run)",
                         "  train.max_steps: 300 -> 20"]
    assert calls == [] and (tmp_path / "stage" / STAGE_DONE).read_text() == marker  # no work, the marker kept


def test_a_marker_without_settings_says_the_settings_changed_without_a_diff(tmp_path):
    from mmadapt.pipeline.lifecycle import FinishedStageChanged

    run_stage(_unit(tmp_path, "f1")[0])  # a plain fingerprint: a marker as older versions wrote it
    with pytest.raises(FinishedStageChanged, match="older mmadapt"):
        run_stage(_recorded_unit(tmp_path, {"seed": 2})[0])


def test_a_rerun_removes_the_replaced_units_checkpoints_events_metrics_and_summary_but_not_a_nested_units(tmp_path):
    run_stage(_recorded_unit(tmp_path, {"seed": 1})[0])
    stage = tmp_path / "stage"
    for stale in ("checkpoints/step_00000004/x", "tensorboard/events.out.tfevents.1", "sub/checkpoints/step_1/x",
                  "nested/checkpoints/step_1/x"):
        (stage / stale).parent.mkdir(parents=True, exist_ok=True)
        (stage / stale).write_text("old")
    (stage / "metrics.jsonl").write_text('{"step": 1}\n')
    (stage / "train_summary.json").write_text('{"steps": 600}')  # would stand for a re-run that trains nothing
    (stage / "nested" / STAGE_DONE).write_text("{}")  # another unit's directory inside this one
    seen = []

    def work(ctx):
        seen.append(sorted(p.name for p in stage.iterdir() if p.name != STAGE_LOCK))
        return FileOutputs(ctx.fingerprint, None)

    unit, calls = _recorded_unit(tmp_path, {"seed": 2}, rerun=True, work=work)
    assert not run_stage(unit).skipped
    assert seen == [["nested", "out.txt", "sub"]]
    assert not (stage / "sub" / "checkpoints").exists() and (stage / "nested" / "checkpoints" / "step_1" / "x").exists()


def test_a_rank_zero_only_unit_is_refused_the_same_way(tmp_path):
    from mmadapt.pipeline.lifecycle import FinishedStageChanged

    first, _ = _recorded_unit(tmp_path, {"tokenizer": {"vocab_size": 400}})
    first.main_only = True
    run_stage(first)
    changed, calls = _recorded_unit(tmp_path, {"tokenizer": {"vocab_size": 300}})
    changed.main_only = True
    with pytest.raises(FinishedStageChanged, match="tokenizer.vocab_size: 400 -> 300"):
        run_stage(changed)
    assert calls == []


def test_an_input_a_stage_reads_now_or_no_longer_is_named_so_not_as_changed_content():
    from mmadapt.pipeline.lifecycle import settings_diff

    assert settings_diff({"seed": 1}, {"seed": 1, "restart_probe": "f" * 64}) == [
        "restart_probe: <unset> -> set (an input the stage now reads)"]
    assert settings_diff({"corpus": ["file:" + "a" * 64]}, {}) == [
        "corpus: set -> <unset> (an input the stage no longer reads)"]


def test_a_finished_unit_whose_output_is_gone_is_refused_naming_the_stage_and_the_output_then_rerun_remakes_it(
        tmp_path):
    from mmadapt.pipeline.lifecycle import FinishedStageChanged, FinishedStageOutputsMissing

    run_stage(_unit(tmp_path)[0])
    marker = (tmp_path / "stage" / STAGE_DONE).read_text()
    (tmp_path / "stage" / "out.txt").unlink()  # e.g. a model directory deleted to free disk
    unit, calls = _unit(tmp_path)
    with pytest.raises(FinishedStageOutputsMissing) as refused:
        run_stage(unit)
    assert isinstance(refused.value, FinishedStageChanged)  # rank-0-only units stop every rank with it too
    assert str(refused.value).splitlines() == [
        f"adapt/xx finished in {tmp_path / 'stage'}, but outputs it wrote are gone; pass --rerun (or set rerun: true) "
        "to run it again, or put them back",
        f"  out: {tmp_path / 'stage' / 'out.txt'} is gone (deleted or moved since the stage finished)"]
    assert calls == [] and (tmp_path / "stage" / STAGE_DONE).read_text() == marker
    again, calls = _unit(tmp_path, rerun=True)
    assert not run_stage(again).skipped and calls == ["f1"]
    assert (tmp_path / "stage" / "out.txt").read_text() == "f1"
    assert run_stage(_unit(tmp_path)[0]).skipped
