"""`mmadapt compute`: predicted FLOPs per stage and adapt's full/mini ratio, from configs only."""
from __future__ import annotations

import re
import subprocess

import pytest
from typer.testing import CliRunner

from conftest import RECIPES, clean_env, mmadapt_command
from mmadapt.cli import app
from mmadapt.training.flops import ModelShape, adapt_flops_per_token

#: XLM-R large's body with a new language's vocabulary (the recipes' tokenizer.vocab_size): what adapt trains
LARGE_NEW_LANGUAGE = ModelShape(hidden_size=1024, intermediate_size=4096, num_layers=24, vocab_size=50000)


def _ratio(text: str, strategy: str) -> float:
    return float(re.search(rf"predicted adapt ratio full/{strategy}: ([0-9.]+)x", text).group(1))


def _line(text: str, strategy: str, stage: str) -> str:
    block = text.split(f"strategy {strategy}:")[1].split("\nstrategy ")[0]
    return next(line for line in block.splitlines() if line.strip().startswith(stage + " "))


@pytest.mark.slow  # a real-size recipe
def test_the_xlmr_large_minijoint_recipe_prints_its_predicted_adapt_ratio():
    out = subprocess.run(mmadapt_command() + ["compute", str(RECIPES / "xlmr_large_minijoint.yaml")],
                         capture_output=True, text=True, env=clean_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    full = adapt_flops_per_token(LARGE_NEW_LANGUAGE, 24, 512, masked_fraction=0.15)
    mini = adapt_flops_per_token(LARGE_NEW_LANGUAGE, 4, 512, masked_fraction=0.15)
    assert _ratio(out.stdout, "minijoint") == pytest.approx(full / mini, abs=0.005)
    adapt = _line(out.stdout, "minijoint", "adapt")
    assert "16384 tokens/step" in adapt  # adapt's micro batch 8 x grad_accum 4 x block 512
    assert "32768 tokens/step" in _line(out.stdout, "minijoint", "pretrain")  # 8 x 8 x 512
    assert f"{mini * 16384:10.4g} FLOPs/step" in adapt and "mini-model (4 of 24 layers)" in adapt
    assert "second head after layer 4" in _line(out.stdout, "minijoint", "pretrain")


def _compute(*args: str) -> str:
    result = CliRunner().invoke(app, ["compute", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def test_no_model_is_built_or_loaded(monkeypatch):
    from mmadapt_plugins.model_families import RobertaLikeFamily

    def refuse(*args, **kwargs):
        raise AssertionError("mmadapt compute must not build or load a model")

    monkeypatch.setattr(RobertaLikeFamily, "build_from_config", refuse)
    monkeypatch.setattr(RobertaLikeFamily, "load_pretrained", refuse)
    assert _ratio(_compute(RECIPES / "xlmr_large_minijoint.yaml"), "minijoint") > 1


def test_each_strategy_of_a_pipeline_recipe_gets_its_stages_and_the_new_languages_vocabulary():
    text = _compute(RECIPES / "quickstart_from_scratch.yaml", "data.block_size=32", "tokenizer.vocab_size=300",
                    "data.mlm_probability=0.15",
                    "model.config.intermediate_size=512", "adapt.train.micro_batch_size=64",
                    "model.config.num_hidden_layers=4")
    shape = ModelShape(hidden_size=128, intermediate_size=512, num_layers=4, vocab_size=300)
    full = adapt_flops_per_token(shape, 4, 32, masked_fraction=0.15)
    assert _ratio(text, "minijoint") == pytest.approx(full / adapt_flops_per_token(shape, 2, 32, masked_fraction=0.15),
                                                      abs=0.005)
    assert _ratio(text, "minipost") == pytest.approx(full / adapt_flops_per_token(shape, 3, 32, masked_fraction=0.15),
                                                     abs=0.005)
    assert "predicted adapt ratio full/full" not in text
    assert "2048 tokens/step" in _line(text, "full", "adapt")  # 64 sequences x 32
    assert "not run again" in _line(text, "minipost", "finetune/xnli")
    assert "not run by this recipe" not in _line(text, "minijoint", "finetune/xnli")
    # full reuses minijoint's big model as it is: neither pretrained nor fine-tuned again
    assert "as it is, not run" in _line(text, "full", "pretrain") and "not run by this recipe" in _line(text, "full", "pretrain")
    assert "not run again" in _line(text, "full", "finetune/xnli")


def test_a_mini_strategys_adapt_steps_over_the_big_model_enter_its_predicted_adapt_stage():
    text = _compute(RECIPES / "quickstart.yaml", "adapt.big_model_steps=50", "adapt.big_model_every=4",
                    "adapt.big_model_micro_batch_size=16", "adapt.train.micro_batch_size=64",
                    "adapt.train.max_steps=400", "tokenizer.vocab_size=400")
    shape = ModelShape(hidden_size=128, intermediate_size=512, num_layers=8, vocab_size=400)
    full, mini = (adapt_flops_per_token(shape, layers, 32, masked_fraction=0.3) for layers in (8, 2))
    big = _line(text, "minijoint", "adapt, big model")
    assert "512 tokens/step" in big and "150 steps a language over the big model, on 16 sequences" in big
    # 400 steps over the big model against 300 over the mini-model and 50 + 100 over the big one on 16 sequences
    stage = 400 * full * 64 / (300 * mini * 64 + 150 * full * 16)
    assert float(re.search(r"predicted adapt stage ratio full/minijoint: ([0-9.]+)x", text).group(1)) == \
        pytest.approx(stage, abs=0.005)
    assert _ratio(text, "minijoint") == pytest.approx(full / mini, abs=0.005)  # per step, as before
    assert "adapt, big model" not in text.split("strategy full:")[1].split("\nstrategy ")[0]
    plain = _compute(RECIPES / "quickstart.yaml", "adapt.big_model_steps=0", "adapt.big_model_every=0",
                     "adapt.restart.at_step=0")
    assert "adapt, big model" not in plain and "adapt stage ratio" not in plain
    # without interleaving, the first steps read batches of their own: more sequences than the adapt micro-batch too
    wide = _compute(RECIPES / "quickstart.yaml", "adapt.big_model_steps=50", "adapt.big_model_every=0",
                    "adapt.big_model_micro_batch_size=128", "adapt.train.micro_batch_size=64")
    assert "4096 tokens/step" in _line(wide, "minijoint", "adapt, big model")  # 128 x 32, as the stage runs them


def test_a_pretrained_model_is_read_from_its_config_json(tmp_path):
    from transformers import XLMRobertaConfig

    XLMRobertaConfig(vocab_size=500, hidden_size=64, intermediate_size=256, num_hidden_layers=6,
                     num_attention_heads=4).save_pretrained(tmp_path / "big")
    text = _compute(RECIPES / "tiny_minipost.yaml", f"model.pretrained={tmp_path / 'big'}", "strategy.k=2",
                    "strategy.new_layers=1")
    shape = ModelShape(hidden_size=64, intermediate_size=256, num_layers=6, vocab_size=500)
    assert "6 layers, hidden 64, intermediate 256, vocabulary 500" in text
    assert _ratio(text, "minipost") == pytest.approx(
        adapt_flops_per_token(shape, 6, 64, masked_fraction=0.15)
        / adapt_flops_per_token(shape, 3, 64, masked_fraction=0.15), abs=0.005)


def test_a_missing_pretrained_model_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["compute", str(RECIPES / "tiny_minipost.yaml"),
                                      f"model.pretrained={tmp_path / 'nothing'}"])
    assert result.exit_code != 0
    assert "no config.json found" in str(result.exception)
