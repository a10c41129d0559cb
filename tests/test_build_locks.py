"""A JIT build lock left by a killed run: found and removed before DeepSpeed would wait on it forever,
a live build's lock left alone, a young one without a local builder named in one line."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import RECIPES, clean_env, mmadapt_command, tiny_overrides
from mmadapt.training.build_locks import STALE_SECONDS, check_build_locks, extensions_root


def _lock(root, age_seconds: float, op: str = "deepspeed_shm_comm", abi: str = "py311_cpu"):
    build_dir = root / abi / op
    build_dir.mkdir(parents=True, exist_ok=True)
    lock = build_dir / "lock"
    lock.touch()
    then = time.time() - age_seconds
    os.utime(lock, (then, then))
    return lock


def test_a_stale_build_lock_with_no_builder_is_removed_with_one_line(tmp_path):
    lock = _lock(tmp_path, STALE_SECONDS + 60)
    lines = []
    assert check_build_locks(lines.append, tmp_path) == [lock]
    assert not lock.exists()
    assert len(lines) == 1 and str(lock) in lines[0] and lines[0].startswith("removed a stale JIT build lock")


def test_a_lock_with_a_live_build_in_its_directory_is_left_alone_however_old(tmp_path):
    lock = _lock(tmp_path, STALE_SECONDS + 60)
    builder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=lock.parent)
    try:
        time.sleep(0.5)
        lines = []
        assert check_build_locks(lines.append, tmp_path) == []
        assert lock.exists() and lines == []
    finally:
        builder.kill()
        builder.wait()


def test_a_young_lock_without_a_local_builder_is_named_with_the_fix_and_kept(tmp_path):
    lock = _lock(tmp_path, 5)
    lines = []
    assert check_build_locks(lines.append, tmp_path) == []
    assert lock.exists()
    assert len(lines) == 1 and str(lock) in lines[0] and "remove it and run again" in lines[0]


@pytest.mark.slow
def test_a_run_after_one_killed_mid_build_does_not_hang_on_the_lock_it_left(tiny_corpus, tmp_path):
    root = tmp_path / "extensions"
    built = next(extensions_root().glob("*/deepspeed_shm_comm"), None)
    if built is not None and (built / "deepspeed_shm_comm.so").is_file():  # else the run builds it (~40 s)
        shutil.copytree(built, root / built.parent.name / built.name)
    lock = _lock(root, STALE_SECONDS + 60,  # what a run killed while building leaves
                 abi=built.parent.name if built is not None else f"py{sys.version_info[0]}{sys.version_info[1]}_cpu")
    started = time.monotonic()
    run = subprocess.run(mmadapt_command() + ["train", str(RECIPES / "tiny_full.yaml"),
                                              *tiny_overrides(tiny_corpus, tmp_path / "run")],
                         capture_output=True, text=True, env=clean_env(TORCH_EXTENSIONS_DIR=str(root), MMADAPT_CACHE=str(tmp_path / "cache")),
                         cwd=RECIPES.parent, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [line for line in run.stderr.splitlines() if "stale JIT build lock" in line][0].endswith(
        "a run was killed while building that op; the next run that needs it builds it again")
    assert not lock.exists() and time.monotonic() - started < 240
