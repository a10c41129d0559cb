"""The real-size `full` recipe: it starts from a pretrained XLM-R large, with no pretraining, and its
adapt stage runs over the real shape."""
from __future__ import annotations

import pytest

from conftest import RECIPES, run_cli, write_corpus
from test_mini_recipes import LARGE, ONE_STEP, save_real_shape_xlmr_large, xlmr_sized_tokenizer

from mmadapt.pipeline.lifecycle import read_marker
from mmadapt.recipe import load_recipe


def test_the_xlmr_large_full_recipe_adapts_a_pretrained_xlmr_large_without_pretraining():
    cfg = load_recipe(RECIPES / "xlmr_large_full.yaml")
    assert cfg.strategy.name == "full" and cfg.precision == "bf16"
    assert cfg.model.pretrained == cfg.variables.xlmr == "/data/xlm-roberta-large"
    assert list(cfg.stages) == ["tokenizer", "adapt", "finetune", "transfer"]
    assert [t.name for t in cfg.tasks] == ["xnli", "pawsx", "mlqa"]


# ~1 minute and ~10 GB of RAM: a real-shape XLM-R large is saved, then one bf16 ZeRO-2 adapt step runs over it
@pytest.mark.slow
def test_the_xlmr_large_full_recipe_adapts_over_the_real_shape_for_one_step(tiny_corpus, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    words = sorted({w for line in tiny_corpus.read_text().splitlines() for w in line.split()})
    large = save_real_shape_xlmr_large(tmp_path / "xlm-roberta-large",
                                       xlmr_sized_tokenizer(tmp_path / "tokenizer", words))
    (tmp_path / "cc100").mkdir()
    for seed, language in enumerate(("de", "zh"), start=1):
        write_corpus(tmp_path / "cc100" / f"{language}.txt", lines=300, seed=seed)
    out = tmp_path / "run"
    run_cli(RECIPES / "xlmr_large_full.yaml",
            [f"variables.xlmr={large}", f"variables.corpora={tmp_path / 'cc100'}", f"output_dir={out}",
             "stages=[tokenizer,adapt]", "tokenizer.vocab_size=60", "adapt.snapshot_every=0",
             *[o.replace("train.", "adapt.train.", 1) for o in ONE_STEP if o.startswith("train.")],
             *[o for o in ONE_STEP if not o.startswith("train.")]])
    for language in ("de", "zh"):
        done = read_marker(out / "adapt" / language)
        assert done["metrics"]["steps"] == 1
        pieces = len(AutoTokenizer.from_pretrained(done["outputs"]["tokenizer"]))
        weight = load_file(done["outputs"]["embeddings"])["word_embeddings"]
        assert tuple(weight.shape) == (pieces, LARGE["hidden_size"]) and pieces <= 60
    assert not (out / "pretrain").exists()
