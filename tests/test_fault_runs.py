"""Faults injected into real (tiny) runs: divergence, SIGTERM, damaged checkpoints, two runs on one directory.

Each asserts the exit code, a one-line message without a traceback, that nothing finished is lost and
that no stage is marked complete by a bad run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import RECIPES, clean_env, mmadapt_command, tiny_overrides
from mmadapt.pipeline.lifecycle import STAGE_DONE
from mmadapt.training.checkpoint import MARKER, complete_checkpoints, damage
from mmadapt.training.distributed import free_port
from mmadapt.training.metrics import read_metrics
from mmadapt.training.stopping import EXIT_DIVERGED, EXIT_PREEMPTED

#: whole runs with a fault injected: the fast tier (`-m "not slow"`) leaves them to the whole suite
pytestmark = pytest.mark.slow

TINY = RECIPES / "tiny_full.yaml"


def _command(corpus, out, *extra):
    return mmadapt_command() + ["train", str(TINY), *tiny_overrides(corpus, out, "data.block_size=64", *extra)]


def _run(corpus, out, *extra, env=None):
    return subprocess.run(_command(corpus, out, *extra), capture_output=True, text=True, env=env or clean_env(),
                          cwd=RECIPES.parent, timeout=300)


def _losses(out):
    return [row["loss"] for row in read_metrics(out / "pretrain" / "metrics.jsonl") if "loss" in row]


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith(("error:", "stopped:"))]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def _finite_weights(checkpoint) -> bool:
    states = torch.load(checkpoint / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)
    return all(torch.isfinite(t).all() for t in states["module"].values() if torch.is_tensor(t))


def test_a_diverging_run_stops_in_one_line_keeps_its_last_good_checkpoint_and_is_not_complete(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    proc = _run(tiny_corpus, out, "train.lr=1e6", "train.warmup_steps=0", "train.max_steps=30", "train.save_every=1",
                "train.keep_checkpoints=1", "train.log_every=10")
    assert proc.returncode == EXIT_DIVERGED, proc.stderr[-3000:]
    line = _one_line(proc.stderr)
    assert "pretrain: the loss or gradient norm became NaN or infinite at step" in line
    bad_step = int(line.split("at step ")[1].split(";")[0])
    assert not (out / "pretrain" / STAGE_DONE).exists() and not (out / "pretrain" / "big").exists()
    kept = complete_checkpoints(out / "pretrain" / "checkpoints")
    if bad_step > 1:  # a checkpoint before the first bad step survives every later save and pruning
        assert kept and kept[-1][0] < bad_step and f"the last good checkpoint is {kept[-1][1]}" in line
        assert _finite_weights(kept[-1][1])
    assert all(_finite_weights(path) for _, path in kept)  # no NaN weights were ever checkpointed


def test_skip_mode_gives_up_after_max_nonfinite_skips(tiny_corpus, tmp_path):
    proc = _run(tiny_corpus, tmp_path / "run", "train.lr=1e6", "train.warmup_steps=0", "train.max_steps=30",
                "train.nonfinite=skip", "train.max_nonfinite_skips=2")
    assert proc.returncode == EXIT_DIVERGED, proc.stderr[-3000:]
    assert "NaN or infinite" in _one_line(proc.stderr)
    assert not (tmp_path / "run" / "pretrain" / STAGE_DONE).exists()


def _wait_for(predicate, proc, seconds=240):
    deadline = time.time() + seconds
    while not predicate() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert predicate(), "the run ended or stalled before the fault could be injected"


def _logged_steps(out):
    path = out / "pretrain" / "metrics.jsonl"
    return len(read_metrics(path)) if path.exists() else 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_preempted_run_saves_the_step_it_was_signalled_at_and_resumes_exactly(tiny_corpus, tmp_path, sig):
    steps = ["train.max_steps=150", "train.save_every=0"]
    unbroken, broken = tmp_path / "unbroken", tmp_path / "broken"
    assert _run(tiny_corpus, unbroken, *steps).returncode == 0
    proc = subprocess.Popen(_command(tiny_corpus, broken, *steps), env=clean_env(), cwd=RECIPES.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _logged_steps(broken) >= 10, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, stderr[-3000:]
    line = _one_line(stderr)
    step = _logged_steps(broken)
    checkpoint = broken / "pretrain" / "checkpoints" / f"step_{step:08d}"
    assert line == (f"stopped: pretrain: {signal.Signals(sig).name} received: stopped after step {step} and saved "
                    f"the checkpoint {checkpoint}; run the same command to resume (exit code 75)")
    assert (checkpoint / MARKER).is_file() and not (broken / "pretrain" / STAGE_DONE).exists()
    resumed = _run(tiny_corpus, broken, *steps)
    assert resumed.returncode == 0 and f"resumed from {checkpoint} at step {step}" in resumed.stdout
    assert _losses(broken) == _losses(unbroken)  # bit-identical, step for step


def test_sigterm_under_the_deepspeed_launcher_stops_both_ranks_at_one_step_and_resumes_exactly(tiny_corpus, tmp_path):
    def launch(out):
        command = ["deepspeed", "--num_gpus", "2", "--master_port", str(free_port()), "--module", "mmadapt", "train", str(TINY),
                   *tiny_overrides(tiny_corpus, out, "data.block_size=64", "train.max_steps=100", "train.save_every=0")]
        return subprocess.Popen(command, env=clean_env(OMP_NUM_THREADS="1"), cwd=RECIPES.parent,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    unbroken, broken = tmp_path / "unbroken", tmp_path / "broken"
    whole = launch(unbroken)
    assert whole.wait(timeout=400) == 0, whole.stdout.read()[-3000:]
    proc = launch(broken)
    _wait_for(lambda: _logged_steps(broken) >= 8, proc)
    os.killpg(proc.pid, signal.SIGTERM)  # every process of the job, as a scheduler does
    output, _ = proc.communicate(timeout=120)
    assert "Traceback" not in output, output[-3000:]
    step = _logged_steps(broken)
    assert f"SIGTERM received: stopped after step {step} and saved the checkpoint" in output
    assert (broken / "pretrain" / "checkpoints" / f"step_{step:08d}" / MARKER).is_file()
    assert not (broken / "pretrain" / STAGE_DONE).exists()
    resumed = launch(broken)
    assert resumed.wait(timeout=400) == 0, resumed.stdout.read()[-3000:]
    assert _losses(broken) == _losses(unbroken)


def test_a_damaged_newest_checkpoint_is_passed_over_and_none_intact_is_one_line(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    settings = ["train.max_steps=20", "train.save_every=5", "train.keep_checkpoints=2"]
    assert _run(tiny_corpus, out, *settings).returncode == 0
    (out / "pretrain" / STAGE_DONE).unlink()  # as if the run had been stopped after its last checkpoint
    root = out / "pretrain" / "checkpoints"
    (older, _), (newest, newest_path) = complete_checkpoints(root)
    with open(newest_path / "mp_rank_00_model_states.pt", "r+b") as f:
        f.truncate(1000)
    proc = _run(tiny_corpus, out, *settings)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (f"warning: checkpoint {newest_path} is damaged (mp_rank_00_model_states.pt has 1000 bytes" in proc.stdout)
    assert f"resumed from {root / f'step_{older:08d}'} at step {older}" in proc.stdout
    big = (out / "pretrain" / "big" / "model.safetensors").read_bytes()

    (out / "pretrain" / STAGE_DONE).unlink()
    for _, path in complete_checkpoints(root):
        data = bytearray((path / "mp_rank_00_model_states.pt").read_bytes())
        data[-10] ^= 0xFF
        (path / "mp_rank_00_model_states.pt").write_bytes(bytes(data))
    proc = _run(tiny_corpus, out, *settings)
    assert proc.returncode == 2 and f"error: no intact checkpoint in {root}:" in _one_line(proc.stderr)
    assert not (out / "pretrain" / STAGE_DONE).exists()
    assert (out / "pretrain" / "big" / "model.safetensors").read_bytes() == big  # the finished model is untouched


def test_a_second_run_on_the_same_output_dir_is_refused_within_seconds_and_a_dead_runs_lock_is_taken_over(
        tiny_corpus, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(_command(tiny_corpus, out, "train.max_steps=100000"), env=clean_env(), cwd=RECIPES.parent,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: _logged_steps(out) >= 1, first)
        started = time.time()
        second = _run(tiny_corpus, out, "train.max_steps=5")
        assert second.returncode == 2 and time.time() - started < 60
        line = _one_line(second.stderr)
        assert f"output_dir {out} is being written by another run (process {first.pid} on " in line
        assert "started 20" in line and not (out / "pretrain" / STAGE_DONE).exists()
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    holder = json.loads((out / ".run.lock").read_text())
    assert holder["pid"] == first.pid  # left behind by the killed run
    third = _run(tiny_corpus, out, "train.max_steps=5")
    assert third.returncode == 0, third.stderr[-3000:]
    assert (out / "pretrain" / STAGE_DONE).exists() and not (out / ".run.lock").exists()


def test_a_malformed_task_row_stops_the_run_before_any_stage_works(tmp_path):
    from conftest import run_in_process
    from mmadapt.errors import MmadaptError
    from task_helpers import XNLI_DIR

    rows = (XNLI_DIR / "multinli_1.0_train.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(rows[1])
    del row["sentence2"]
    rows[1] = json.dumps(row)
    bad = tmp_path / "train.jsonl"
    bad.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    with pytest.raises(MmadaptError, match=r"train.jsonl:2: missing field\(s\) sentence2"):
        run_in_process(RECIPES / "quickstart_from_scratch.yaml", [f"output_dir={out}", f"tasks.0.train_file={bad}"])
    assert sorted(p.name for p in out.iterdir()) == ["deepspeed.json", "recipe.yaml"]  # no tokenizer, no pretraining


#: `mmadapt` with its atomic publisher killing the process (SIGKILL) once the new `big/` is written in
#: full and about to replace the old one: the worst moment of an export
_KILLED_WHILE_EXPORTING = """
import os, runpy, signal, sys
from pathlib import Path
import mmadapt.files.atomic as atomic
publish = atomic.publish_dir
def publish_or_die(staged, target, replace=True):
    if Path(target).name == "big":
        os.kill(os.getpid(), signal.SIGKILL)
    return publish(staged, target, replace)
atomic.publish_dir = publish_or_die
sys.argv = ["mmadapt", *sys.argv[1:]]
runpy.run_module("mmadapt", run_name="__main__", alter_sys=True)
"""


def _weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_a_run_killed_while_exporting_keeps_the_old_model_unmarked_and_the_rerun_gives_the_unbroken_model(
        tiny_corpus, tmp_path):
    out, unbroken = tmp_path / "run", tmp_path / "unbroken"
    assert _run(tiny_corpus, out).returncode == 0
    big, marker = out / "pretrain" / "big", out / "pretrain" / STAGE_DONE
    old = _weights(big)
    changed = "train.lr=0.002"  # other settings: the stage re-runs and re-exports over the finished model
    command = _command(tiny_corpus, out, changed, "rerun=true")[3:]
    killed = subprocess.run([sys.executable, "-c", _KILLED_WHILE_EXPORTING, *command],
                            capture_output=True, text=True, env=clean_env(), cwd=RECIPES.parent, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not marker.exists()  # the old marker went before the work: nothing vouches for a half-new stage
    assert all(torch.equal(old[name], tensor) for name, tensor in _weights(big).items())  # the old model, whole

    rerun = _run(tiny_corpus, out, changed, "rerun=true")  # takes over the dead run's locks, resumes, exports
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert marker.exists()
    assert _run(tiny_corpus, unbroken, changed).returncode == 0
    expected = _weights(unbroken / "pretrain" / "big")
    assert all(torch.equal(expected[name], tensor) for name, tensor in _weights(big).items())


def _unwritable_output_dirs(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    yield a_file, "it is a file, not a directory"
    under_sys = Path("/sys") / f"mmadapt-{os.getpid()}"
    try:  # sysfs refuses new entries; where it does not, this case says nothing
        under_sys.mkdir()
        under_sys.rmdir()
    except OSError:
        yield under_sys, ""


def test_an_output_dir_that_cannot_be_written_exits_2_in_one_line_before_any_work(tiny_corpus, tmp_path):
    for out, reason in _unwritable_output_dirs(tmp_path):
        refused = _run(tiny_corpus, out)
        assert refused.returncode == 2, refused.stderr[-3000:]
        line = _one_line(refused.stderr)
        assert line.startswith(f"error: cannot write in {out}") and reason in line


#: `mmadapt` killed (SIGKILL) in the middle of saving its step-20 checkpoint: every file written, the
#: marker that makes it complete not yet
_KILLED_WHILE_CHECKPOINTING = """
import os, runpy, signal, sys
import mmadapt.training.checkpoint as checkpoint
write_json = checkpoint.write_json_atomic
def write_or_die(path, data, *args, **kwargs):
    if path.name == checkpoint.MARKER and data.get("step") == 20:
        os.kill(os.getpid(), signal.SIGKILL)
    return write_json(path, data, *args, **kwargs)
checkpoint.write_json_atomic = write_or_die
sys.argv = ["mmadapt", *sys.argv[1:]]
runpy.run_module("mmadapt", run_name="__main__", alter_sys=True)
"""


def test_a_run_killed_while_writing_a_checkpoint_resumes_from_the_one_before_with_the_same_losses(
        tiny_corpus, tmp_path):
    settings = ("train.max_steps=30", "train.save_every=10", "train.keep_checkpoints=2")
    unbroken, broken = tmp_path / "unbroken", tmp_path / "broken"
    assert _run(tiny_corpus, unbroken, *settings).returncode == 0
    killed = subprocess.run([sys.executable, "-c", _KILLED_WHILE_CHECKPOINTING,
                             *_command(tiny_corpus, broken, *settings)[3:]],
                            capture_output=True, text=True, env=clean_env(), cwd=RECIPES.parent, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    checkpoints = broken / "pretrain" / "checkpoints"
    assert [step for step, _ in complete_checkpoints(checkpoints)] == [10]  # step 20's files, but no marker

    resumed = _run(tiny_corpus, broken, *settings)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "step_00000010" in resumed.stdout
    assert _losses(broken)[-20:] == _losses(unbroken)[-20:]  # steps 11-30, bit for bit
    assert _weights(broken / "pretrain" / "big").keys() == _weights(unbroken / "pretrain" / "big").keys()
    assert all(torch.equal(_weights(unbroken / "pretrain" / "big")[name], tensor)
               for name, tensor in _weights(broken / "pretrain" / "big").items())


_SIGNALLED_WHILE_READING_DATA = """
import os, runpy, signal, sys
import mmadapt.pipeline.building_blocks as pretraining
sources = pretraining.text_sources
def sources_then_signal(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler would, while the stage reads its data
    return sources(*args, **kwargs)
pretraining.text_sources = sources_then_signal
sys.argv = ["mmadapt", *sys.argv[1:]]
runpy.run_module("mmadapt", run_name="__main__", alter_sys=True)
"""


def test_a_signal_before_training_starts_is_one_line_exit_75_and_loses_nothing_finished(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    assert _run(tiny_corpus, out).returncode == 0
    marker, model = out / "pretrain" / STAGE_DONE, out / "pretrain" / "big" / "model.safetensors"
    kept = (marker.read_text(), model.stat().st_mtime_ns)
    proc = subprocess.run([sys.executable, "-c", _SIGNALLED_WHILE_READING_DATA, *_command(tiny_corpus, out)[3:]],
                          capture_output=True, text=True, env=clean_env(), cwd=RECIPES.parent, timeout=300)
    assert proc.returncode == EXIT_PREEMPTED, proc.stderr[-3000:]
    assert _one_line(proc.stderr) == (
        "stopped: SIGTERM received while pretrain (checking its inputs, preparing its data and model, or writing its "
        "outputs) (before a training loop saved anything of it): nothing finished was lost (finished stages and "
        "saved checkpoints stay); run the same command again to continue")
    assert (marker.read_text(), model.stat().st_mtime_ns) == kept


#: `mmadapt` on a filesystem that fills up while the step-20 checkpoint is written: torch's zip writer
#: fails as it does on a full disk (no errno, `unexpected pos`), and the checkpoints directory has 12288
#: bytes free
_DISK_FULL_WHILE_CHECKPOINTING = """
import runpy, shutil, sys
import torch
save, usage = torch.save, shutil.disk_usage
def save_or_fill(obj, f, *args, **kwargs):
    if "step_00000020" in str(f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    return save(obj, f, *args, **kwargs)
def usage_nearly_full(path):
    real = usage(path)
    return real._replace(free=12288) if "checkpoints" in str(path) else real
torch.save, shutil.disk_usage = save_or_fill, usage_nearly_full
sys.argv = ["mmadapt", *sys.argv[1:]]
runpy.run_module("mmadapt", run_name="__main__", alter_sys=True)
"""


def test_a_disk_filling_up_while_checkpointing_exits_2_in_one_line_with_the_free_bytes_and_keeps_the_older_one(
        tiny_corpus, tmp_path):
    out = tmp_path / "run"
    settings = ("train.max_steps=30", "train.save_every=10", "train.keep_checkpoints=2")
    full = subprocess.run([sys.executable, "-c", _DISK_FULL_WHILE_CHECKPOINTING, *_command(tiny_corpus, out, *settings)[3:]],
                          capture_output=True, text=True, env=clean_env(), cwd=RECIPES.parent, timeout=300)
    assert full.returncode == 2, full.stderr[-3000:]
    checkpoints = out / "pretrain" / "checkpoints"
    assert _one_line(full.stderr) == (
        f"error: no space left on the filesystem holding {checkpoints} (12288 bytes free) while writing checkpoint "
        "step_00000020; free some space (or lower train.keep_checkpoints) and run the same command to resume")
    assert [step for step, _ in complete_checkpoints(checkpoints)] == [10]  # the finished checkpoint stays
    assert damage(checkpoints / "step_00000010") is None
    assert not (out / "pretrain" / STAGE_DONE).exists()
