"""The run plan: a recipe checked and expanded once into world size, languages, layout and each stage's config."""
from __future__ import annotations

import dataclasses

import pytest

from conftest import RECIPES
from mmadapt.pipeline.checks import build_run_plan
from mmadapt.plugin_system.manager import get_plugins
from mmadapt.recipe import load_recipe


def _plan(recipe: str, *overrides: str):
    return build_run_plan(load_recipe(RECIPES / recipe, list(overrides)), get_plugins(), data_files=False)


def test_the_quickstart_plan_holds_languages_layout_and_every_stage_config(tmp_path):
    plan = _plan("quickstart.yaml", f"output_dir={tmp_path}")
    assert plan.world_size == 1 and plan.languages == ("vo", "na")
    assert [run.name for run in plan.strategies] == ["minijoint", "full", "minipost"]
    joint, full, post = plan.strategies
    assert full.run_dir == plan.layout.strategy_dir("full") == tmp_path / "full"
    assert plan.layout.tokenizers == tmp_path / "tokenizers"
    assert plan.layout.stage_dir("full", "adapt", "vo") == tmp_path / "full" / "adapt" / "vo"
    # a strategy that reuses another starts from that one's big model
    assert full.reuse == "minijoint" and full.pretrain_cfg.model.pretrained == str(tmp_path / "minijoint/pretrain/big")
    # the stage-wide train sections over the recipe's, then the strategy's or task's own
    assert post.pretrain_cfg.train.max_steps == 0 and post.pretrain_cfg.train.micro_batch_size == 64
    assert joint.adapt_cfg.train.max_steps == 400 and joint.adapt_cfg.train.lr == pytest.approx(3e-3)
    assert joint.finetune_cfgs["xnli"].train.max_steps == plan.cfg.finetune.train.max_steps
    # the adapt stage's first steps over the big model: their own batch, a constant rate after the warm-up
    big = joint.big_model_steps_cfg.train
    assert (big.max_steps, big.micro_batch_size, big.schedule) == (50, 16, "constant")
    assert joint.adapt_cfg.adapt.big_model_every == 2  # and every 2nd of its own steps
    assert joint.big_model_steps_cfg.deepspeed.resolved["train_micro_batch_size_per_gpu"] == 16


def test_a_single_strategy_writes_into_output_dir_itself(tmp_path):
    plan = _plan("tiny_full.yaml", f"output_dir={tmp_path}")
    assert [run.run_dir for run in plan.strategies] == [tmp_path]
    assert plan.layout.big_model("full") == tmp_path / "pretrain" / "big"


def test_the_plan_fills_deepspeed_batch_sizes_for_the_launched_world_size(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    plan = _plan("quickstart.yaml", f"output_dir={tmp_path}")
    assert plan.world_size == 4
    adapt = plan.strategies[0].adapt_cfg
    assert adapt.deepspeed.resolved["train_batch_size"] == 4 * adapt.train.micro_batch_size * adapt.train.grad_accum


def test_the_plan_cannot_be_changed_after_it_is_built(tmp_path):
    plan = _plan("quickstart.yaml", f"output_dir={tmp_path}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.world_size = 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.strategies[0].adapt_cfg = plan.cfg
    with pytest.raises(TypeError):
        plan.strategies[0].finetune_cfgs["xnli"] = plan.cfg
