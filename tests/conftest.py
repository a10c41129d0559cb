"""Shared fixtures: a private cache, tiny corpora, in-process runs of recipes."""
from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
_LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Tokenised-data, tokenizer and synth caches live in one per-session folder; the environment is restored after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMADAPT_CACHE", str(tmp_path_factory.mktemp("mmadapt-cache")))
        if not _has_cuda() and "DS_ACCELERATOR" not in os.environ:
            patch.setenv("DS_ACCELERATOR", "cpu")
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TOKENIZERS_PARALLELISM", "false")
        with _one_thread_per_worker(patch):
            yield


@contextlib.contextmanager
def _one_thread_per_worker(patch: pytest.MonkeyPatch) -> Iterator[None]:
    """Under several test workers (pyproject's `-n auto`), each trains on one torch thread, and so do the
    runs it starts, unless OMP_NUM_THREADS says otherwise: workers with a thread per core each would fight."""
    if "PYTEST_XDIST_WORKER" not in os.environ or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    patch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many workers `-n auto` starts: one per core this process may use, at most 4 (the suite is two
    dozen files; more workers mostly add start-up time and memory)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def write_corpus(path: Path, lines: int = 3000, seed: int = 0) -> Path:
    """A small text corpus with some structure (enough for a tiny MLM to learn from)."""
    rng = random.Random(seed)
    nouns = ["dog", "cat", "bird", "house", "tree", "river", "child", "teacher"]
    verbs = ["sees", "likes", "finds", "follows"]
    adjs = ["big", "small", "red", "old", "quick"]
    rows = []
    for _ in range(lines):
        words = ["the", rng.choice(adjs), rng.choice(nouns), rng.choice(verbs), "the", rng.choice(nouns)]
        if rng.random() < 0.5:
            words += ["near", "the", rng.choice(adjs), rng.choice(nouns)]
        rows.append(" ".join(words))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A ~3000-line text corpus file."""
    return write_corpus(tmp_path_factory.mktemp("corpus") / "train.txt")


#: overrides that make tiny_full.yaml run in a few seconds on its test corpus
FAST = ["train.max_steps=8", "train.log_every=1", "train.progress_bar=false", "train.micro_batch_size=8",
        "model.train_tokenizer.vocab_size=60", "data.block_size=32", "train.save_every=0"]


def tiny_overrides(corpus: Path, output_dir: Path, *extra: str) -> list[str]:
    """Overrides turning recipes/tiny_full.yaml into a seconds-long test run."""
    return [f"data.train=[{corpus}]", f"output_dir={output_dir}", *FAST, *extra]


def run_in_process(recipe: Path, overrides: list[str], plugins=None):
    """Load and run a recipe inside the test process (DeepSpeed allows repeated engines)."""
    from mmadapt.plugin_system.manager import get_plugins
    from mmadapt.recipe import load_recipe
    from mmadapt.pipeline.runner import run_recipe

    plugins = plugins or get_plugins()
    cfg = load_recipe(recipe, overrides, plugins)
    return cfg, run_recipe(cfg, plugins)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: no single-rank variables left by in-process runs."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def mmadapt_command() -> list[str]:
    """How to invoke the CLI from a test (the same interpreter as pytest)."""
    return [sys.executable, "-m", "mmadapt"]


def run_cli(recipe: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    """`mmadapt train RECIPE OVERRIDES` in a child process (its memory is returned when it ends:
    the real-size tests must not add up inside the test process)."""
    proc = subprocess.run(mmadapt_command() + ["train", str(recipe), *overrides], capture_output=True, text=True,
                          env=clean_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
