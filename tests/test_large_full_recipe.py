"""The real-size full-model recipe: it validates and starts on a small corpus."""
from __future__ import annotations

import json

import pytest

from conftest import RECIPES, run_cli
from test_mini_recipes import LARGE, ONE_STEP, xlmr_sized_tokenizer

from mmadapt.recipe import load_recipe


def test_the_xlmr_large_full_recipe_has_the_real_architecture():
    cfg = load_recipe(RECIPES / "xlmr_large_full.yaml")
    assert {k: cfg.model.config[k] for k in LARGE} == LARGE
    assert cfg.strategy.name == "full" and cfg.precision == "bf16"
    assert list(cfg.data.train) == [cfg.variables.corpus]


@pytest.mark.slow
def test_the_xlmr_large_full_recipe_starts_with_one_step_on_a_small_corpus(tiny_corpus, tmp_path):
    words = sorted({w for line in tiny_corpus.read_text().splitlines() for w in line.split()})
    tokenizer = xlmr_sized_tokenizer(tmp_path / "tokenizer", words)
    out = tmp_path / "run"
    run_cli(RECIPES / "xlmr_large_full.yaml",
            [f"variables.tokenizer={tokenizer}", f"variables.corpus={tiny_corpus}", f"output_dir={out}", *ONE_STEP])
    config = json.loads((out / "pretrain" / "big" / "config.json").read_text())
    assert {k: config[k] for k in LARGE} == LARGE
    rows = [json.loads(line) for line in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 1 and 0 < rows[-1]["loss"] < 100
