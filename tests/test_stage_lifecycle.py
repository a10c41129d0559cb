"""The one stage lifecycle (mmadapt.pipeline.stages.run_stage) every stage unit goes through."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from mmadapt.context import StageContext
from mmadapt.distributed import DistInfo
from mmadapt.errors import MmadaptError
from mmadapt.pipeline.stages import STAGE_DONE, STAGE_LOCK, StageUnit, run_stage

MAIN = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class Hooks:
    def __init__(self):
        self.calls = []

    def mmadapt_stage_finished(self, stage, output_dir, metrics):
        self.calls.append((stage, output_dir, metrics))


class Plugins:
    def __init__(self):
        self.hook = Hooks()


def _unit(tmp_path, fingerprint="f1", work=None, plugins=None, rerun=False):
    ctx = StageContext(OmegaConf.create({"rerun": rerun}), plugins or Plugins(), MAIN, tmp_path, tmp_path / "stage")
    calls = []

    def default_work():
        calls.append(ctx.fingerprint)
        (ctx.stage_dir / "out.txt").write_text(fingerprint)
        return {"out": ctx.stage_dir / "out.txt"}, {"steps": 3}

    return StageUnit("adapt/xx", ctx, lambda: fingerprint, work or default_work), calls


def test_a_unit_runs_once_then_is_skipped_with_the_same_record(tmp_path):
    plugins = Plugins()
    unit, calls = _unit(tmp_path, plugins=plugins)
    first = run_stage(unit)
    again, calls_again = _unit(tmp_path, plugins=plugins)
    second = run_stage(again)
    assert calls == ["f1"] and calls_again == []  # the work sees its fingerprint (checkpoints carry it)
    assert not first.skipped and second.skipped
    assert (first.fingerprint, first.outputs, first.metrics) == (second.fingerprint, second.outputs, second.metrics)
    assert plugins.hook.calls == [("adapt/xx", str(tmp_path / "stage"), {"steps": 3})]
    marker = json.loads((tmp_path / "stage" / STAGE_DONE).read_text())
    assert marker == {"fingerprint": "f1", "outputs": {"out": str(tmp_path / "stage" / "out.txt")},
                      "metrics": {"steps": 3}}
    assert not (tmp_path / "stage" / STAGE_LOCK).exists()


def test_the_old_marker_is_gone_before_a_rerun_does_any_work(tmp_path):
    run_stage(_unit(tmp_path, "f1")[0])
    seen = []

    def work():
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
    from mmadapt.digests import stage_fingerprint

    unit, calls = _unit(tmp_path, rerun=rerun, work=work)
    unit.fingerprint = lambda: stage_fingerprint("adapt", **settings)
    return unit, calls


def test_a_finished_unit_whose_settings_changed_is_refused_with_what_changed_and_nothing_is_lost(tmp_path):
    from mmadapt.pipeline.stages import FinishedStageChanged

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
    from mmadapt.pipeline.stages import FinishedStageChanged

    run_stage(_unit(tmp_path, "f1")[0])  # a plain fingerprint: a marker as older versions wrote it
    with pytest.raises(FinishedStageChanged, match="older mmadapt"):
        run_stage(_recorded_unit(tmp_path, {"seed": 2})[0])


def test_a_rerun_removes_the_replaced_units_checkpoints_events_and_metrics_but_not_a_nested_units(tmp_path):
    run_stage(_recorded_unit(tmp_path, {"seed": 1})[0])
    stage = tmp_path / "stage"
    for stale in ("checkpoints/step_00000004/x", "tensorboard/events.out.tfevents.1", "sub/checkpoints/step_1/x",
                  "nested/checkpoints/step_1/x"):
        (stage / stale).parent.mkdir(parents=True, exist_ok=True)
        (stage / stale).write_text("old")
    (stage / "metrics.jsonl").write_text('{"step": 1}\n')
    (stage / "nested" / STAGE_DONE).write_text("{}")  # another unit's directory inside this one
    seen = []
    unit, calls = _recorded_unit(tmp_path, {"seed": 2}, rerun=True,
                                 work=lambda: (seen.append(sorted(p.name for p in stage.iterdir() if p.name != STAGE_LOCK)),
                                                   ({}, {}))[1])
    assert not run_stage(unit).skipped
    assert seen == [["nested", "out.txt", "sub"]]
    assert not (stage / "sub" / "checkpoints").exists() and (stage / "nested" / "checkpoints" / "step_1" / "x").exists()


def test_a_rank_zero_only_unit_is_refused_the_same_way(tmp_path):
    from mmadapt.pipeline.stages import FinishedStageChanged

    first, _ = _recorded_unit(tmp_path, {"tokenizer": {"vocab_size": 400}})
    first.main_only = True
    run_stage(first)
    changed, calls = _recorded_unit(tmp_path, {"tokenizer": {"vocab_size": 300}})
    changed.main_only = True
    with pytest.raises(FinishedStageChanged, match="tokenizer.vocab_size: 400 -> 300"):
        run_stage(changed)
    assert calls == []
