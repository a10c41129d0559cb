"""Faults a long run meets, without training: damaged checkpoints, locks, signals and NaN detection.

The end-to-end versions (a diverging run, SIGTERM and resume, a truncated checkpoint) are in
tests/test_fault_runs.py.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

from mmadapt.errors import MmadaptError
from mmadapt.files.locks import LockHeld, held_lock
from mmadapt.training.checkpoint import MARKER, damage, file_records, find_resume_checkpoint, step_tag
from mmadapt.training.distributed import DistInfo
from mmadapt.training.stopping import (EXIT_DIVERGED, EXIT_PREEMPTED, Diverged, NonFiniteGuard, Preempted,
                                       PreemptionWatch)

MAIN = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
CPU = torch.device("cpu")


def _checkpoint(root, step, fingerprint="f", payload=b"weights" * 100):
    path = root / step_tag(step)
    (path / "sub").mkdir(parents=True)
    (path / "model.pt").write_bytes(payload)
    (path / "sub" / "optim.pt").write_bytes(payload[::-1])
    (path / MARKER).write_text(json.dumps({"step": step, "fingerprint": fingerprint, "files": file_records(path)}))
    return path


# -- checkpoint integrity ---------------------------------------------------------------------------------------------

def test_the_marker_records_the_size_and_digest_of_every_file(tmp_path):
    path = _checkpoint(tmp_path, 10)
    files = json.loads((path / MARKER).read_text())["files"]
    assert sorted(files) == ["model.pt", "sub/optim.pt"] and files["model.pt"]["size"] == 700
    assert len(files["model.pt"]["sha256"]) == 64 and damage(path) is None


def test_a_truncated_newest_checkpoint_falls_back_to_the_newest_intact_one_with_a_warning(tmp_path):
    _checkpoint(tmp_path, 10)
    newest = _checkpoint(tmp_path, 20)
    with open(newest / "model.pt", "r+b") as f:
        f.truncate(100)
    warnings = []
    assert find_resume_checkpoint(tmp_path, "auto", "f", warn=warnings.append) == tmp_path / step_tag(10)
    assert warnings == [f"warning: checkpoint {newest} is damaged (model.pt has 100 bytes, 700 were written); "
                        "resuming from the older intact step_00000010 instead"]


def test_a_bit_flipped_checkpoint_is_not_loaded_silently(tmp_path):
    _checkpoint(tmp_path, 10)
    newest = _checkpoint(tmp_path, 20)
    data = bytearray((newest / "sub" / "optim.pt").read_bytes())
    data[17] ^= 0x01
    (newest / "sub" / "optim.pt").write_bytes(bytes(data))
    warnings = []
    assert find_resume_checkpoint(tmp_path, "auto", "f", warn=warnings.append) == tmp_path / step_tag(10)
    assert "sub/optim.pt has changed since it was written (its sha256 differs)" in warnings[0]
    with pytest.raises(MmadaptError, match="is damaged \\(sub/optim.pt has changed"):
        find_resume_checkpoint(tmp_path, str(newest), "f")  # an explicit path is verified too


def test_no_intact_checkpoint_is_one_line_naming_each_damage(tmp_path):
    for step in (10, 20):
        (_checkpoint(tmp_path, step) / "model.pt").unlink()
    with pytest.raises(MmadaptError) as failed:
        find_resume_checkpoint(tmp_path, "auto", "f", warn=print)
    message = str(failed.value)
    assert "\n" not in message and f"no intact checkpoint in {tmp_path}" in message
    assert "step_00000020: model.pt is missing; step_00000010: model.pt is missing" in message


def test_a_checkpoint_from_before_digests_is_still_resumed_from(tmp_path):
    path = tmp_path / step_tag(5)
    path.mkdir()
    (path / MARKER).write_text(json.dumps({"step": 5, "fingerprint": "f"}))
    assert find_resume_checkpoint(tmp_path, "auto", "f") == path


# -- one run per output directory -------------------------------------------------------------------------------------

@pytest.fixture
def live_process():
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield other
    other.kill()
    other.wait()


def test_a_second_run_is_refused_naming_the_holders_host_pid_and_start_time(tmp_path, live_process):
    lock = tmp_path / ".run.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": live_process.pid, "started": "2026-01-02 03:04:05 UTC"}))
    with pytest.raises(LockHeld) as refused:
        with held_lock(lock, MAIN, what=f"output_dir {tmp_path}"):
            pytest.fail("must not run")
    assert str(refused.value) == (f"output_dir {tmp_path} is being written by another run (process {live_process.pid} "
                                  f"on {socket.gethostname()}, started 2026-01-02 03:04:05 UTC); wait for it to "
                                  f"finish, or delete {lock} if that run is gone")
    assert refused.value.exit_code == 2 and lock.exists()  # the holder keeps its lock


def test_a_lock_from_another_host_is_respected_and_a_dead_local_one_is_taken_over(tmp_path):
    lock = tmp_path / ".run.lock"
    lock.write_text(json.dumps({"host": "some-other-node", "pid": 1, "started": "yesterday"}))
    with pytest.raises(LockHeld, match="process 1 on some-other-node, started yesterday"):
        with held_lock(lock, MAIN):
            pass
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "started": "earlier"}))
    with held_lock(lock, MAIN):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()  # released when the run ends


def test_a_lock_is_released_when_the_run_fails(tmp_path):
    lock = tmp_path / "out" / ".run.lock"
    with pytest.raises(RuntimeError):
        with held_lock(lock, MAIN):
            raise RuntimeError("failed")
    assert not lock.exists()


def test_an_output_dir_that_is_a_file_is_one_clear_line(tmp_path):
    (tmp_path / "out").write_text("not a directory")
    with pytest.raises(LockHeld) as refused:
        with held_lock(tmp_path / "out" / ".run.lock", MAIN):
            pass
    assert str(refused.value) == f"cannot write in {tmp_path / 'out'}: it is a file, not a directory"


# -- NaN and infinities -----------------------------------------------------------------------------------------------

class _Engine:
    def __init__(self, norm=None):
        self.norm = norm

    def get_global_grad_norm(self):
        return self.norm


def test_the_first_non_finite_step_is_remembered_on_the_device_and_read_later():
    guard = NonFiniteGuard("stop", 0, CPU)
    guard.after_step(1, torch.tensor(2.0, dtype=torch.float64), _Engine(1.0))
    assert guard.first_bad_step() is None
    guard.after_step(2, torch.tensor(3.0, dtype=torch.float64), _Engine(float("inf")))  # the gradient norm
    guard.after_step(3, torch.tensor(float("nan"), dtype=torch.float64), _Engine(None))
    assert guard.first_bad_step() == 2


def test_skip_mode_drops_a_bounded_number_of_non_finite_micro_batches():
    guard = NonFiniteGuard("skip", 2, CPU)
    assert guard.skipping and guard.keep_micro_batch(torch.tensor(1.0))
    assert not guard.keep_micro_batch(torch.tensor(float("nan")))
    assert not guard.keep_micro_batch(torch.tensor(float("inf"))) and not guard.exhausted
    assert not guard.keep_micro_batch(torch.tensor(float("nan"))) and guard.exhausted and guard.skips == 3
    assert Diverged.exit_code == EXIT_DIVERGED == 3


def test_the_diverged_line_names_the_step_and_the_last_good_checkpoint():
    from mmadapt.training.stopping import diverged_message

    assert diverged_message("pretrain", 7, "ck/step_00000006") == (
        "pretrain: the loss or gradient norm became NaN or infinite at step 7; stopped, the last good checkpoint is "
        "ck/step_00000006 (kept: the same command resumes from it; a lower train.lr starts the stage over)")
    assert "made 4 micro-batches be dropped, more than train.max_nonfinite_skips allows, at step 9; stopped, no " \
           "checkpoint was saved" in diverged_message("adapt/vo", 9, None, skips=4)


# -- preemption signals -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_preemption_signal_is_noted_not_fatal_and_the_old_handler_comes_back(sig):
    before = signal.getsignal(sig)
    with PreemptionWatch(CPU, 1) as watch:
        assert not watch.requested()
        os.kill(os.getpid(), sig)
        assert watch.requested() and watch.received == signal.Signals(sig).name
    assert signal.getsignal(sig) == before
    assert Preempted.exit_code == EXIT_PREEMPTED == 75


# -- a full disk ------------------------------------------------------------------------------------------------------

class _FullDiskEngine:
    def save_checkpoint(self, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 123 vs 456: "
                           "basic_ios::clear: iostream error")


def test_a_full_disk_while_checkpointing_is_one_line_with_the_free_bytes(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from mmadapt.training.checkpoint import save_checkpoint

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1000, 1000 - 4096, 4096))
    with pytest.raises(MmadaptError) as failed:
        save_checkpoint(_FullDiskEngine(), tmp_path, 7, {}, 2, MAIN)
    assert str(failed.value) == (f"no space left on the filesystem holding {tmp_path} (4096 bytes free) while writing "
                                 "checkpoint step_00000007; free some space (or lower train.keep_checkpoints) and run "
                                 "the same command to resume")
    assert not list(tmp_path.glob("step_*"))  # nothing half-written was published


def test_an_os_error_is_one_line_with_the_path_and_the_reason():
    import errno

    from mmadapt.errors import os_error_message

    assert os_error_message(PermissionError(errno.EACCES, "Permission denied", "/x/y")) == "/x/y: Permission denied"
    assert os_error_message(OSError(errno.ENOSPC, "No space left on device", "/")).startswith(
        "no space left on the filesystem holding / (")


# -- a user's model and corpus files ----------------------------------------------------------------------------------

def test_truncated_safetensors_are_named_as_damaged_weights(tmp_path):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from mmadapt.plugin_system.manager import get_plugins

    model = tmp_path / "model"
    XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=32, max_position_embeddings=20)).save_pretrained(model)
    weights = model / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    with pytest.raises(MmadaptError) as failed:
        get_plugins().model_families.get("xlmr").load_pretrained(str(model))
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"cannot load the model from {model}: its safetensors weights "
                                                      "are damaged or incomplete (")


@pytest.mark.parametrize("text", ["", "x" * 20000 + "\n"])
def test_a_corpus_sentencepiece_cannot_train_on_names_the_corpus_and_the_fix(tmp_path, text):
    from mmadapt.model.tokenizer_training import SentencePieceConfig, train_sentencepiece_tokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text)
    with pytest.raises(MmadaptError) as failed:
        train_sentencepiece_tokenizer([corpus], tmp_path / "tok", SentencePieceConfig(vocab_size=50))
    assert str(failed.value).startswith(f"SentencePiece found no sentence to train on in {corpus}: the text is empty, "
                                        "or every line is longer than it accepts")
    assert not (tmp_path / "tok").exists()


def test_an_fp16_overflow_the_loss_scaler_skips_is_not_a_divergence():
    class Fp16Engine(_Engine):
        def fp16_enabled(self):
            return True

    guard = NonFiniteGuard("stop", 0, CPU)
    guard.after_step(1, torch.tensor(2.0, dtype=torch.float64), Fp16Engine(float("inf")))
    assert guard.first_bad_step() is None


def test_a_checkpoint_with_an_unreadable_marker_is_damaged(tmp_path):
    _checkpoint(tmp_path, 10)
    (_checkpoint(tmp_path, 20, fingerprint=None) / MARKER).write_text("{\"step\": 2")
    assert damage(tmp_path / "step_00000020") == f"its {MARKER} is unreadable"
