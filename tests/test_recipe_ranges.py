"""Every numeric recipe value is checked against its range before any work, with the dotted path and the range."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import REPO, RECIPES, clean_env, mmadapt_command
from mmadapt.errors import RecipeError
from mmadapt.pipeline.checks import check_pipeline
from mmadapt.recipe import load_recipe
from mmadapt.recipe.validation import range_problem

TINY = RECIPES / "tiny_full.yaml"

#: override -> the problem line it must be refused with
OUT_OF_RANGE = {
    "train.lr=-1": "train.lr: must be greater than 0, got -1",
    "train.lr=0": "train.lr: must be greater than 0, got 0",
    "data.block_size=0": "data.block_size: must be at least 1, got 0",
    "train.micro_batch_size=0": "train.micro_batch_size: must be at least 1, got 0",
    "train.grad_accum=0": "train.grad_accum: must be at least 1, got 0",
    "data.mlm_probability=1.5": "data.mlm_probability: must be in (0, 1), got 1.5",
    "data.mlm_probability=0": "data.mlm_probability: must be in (0, 1), got 0",
    "data.mlm_probability=-0.2": "data.mlm_probability: must be in (0, 1), got -0.2",
    "train.max_steps=-5": "train.max_steps: must be at least 0, got -5",
    "train.eps=0": "train.eps: must be greater than 0, got 0",
    "train.warmup_steps=-1": "train.warmup_steps: must be at least 0, got -1",
    "train.min_lr_ratio=2": "train.min_lr_ratio: must be in [0, 1], got 2",
    "train.betas=[0.9,1.0]": "train.betas[1]: must be in [0, 1), got 1.0",
    "train.keep_checkpoints=-1": "train.keep_checkpoints: must be at least 0, got -1",
    "train.max_nonfinite_skips=-1": "train.max_nonfinite_skips: must be at least 0, got -1",
    "train.lr=.nan": "train.lr: must be greater than 0, got nan",
    "adapt.train.grad_accum=0": "adapt.train.grad_accum: must be at least 1, got 0",
    "finetune.train.lr=-0.1": "finetune.train.lr: must be greater than 0, got -0.1",
    "model.train_tokenizer.character_coverage=0": "model.train_tokenizer.character_coverage: must be in (0, 1], got 0",
    "data.num_workers=-1": "data.num_workers: must be at least 0, got -1",
    "distributed.timeout_minutes=0": "distributed.timeout_minutes: must be greater than 0, got 0",
}


@pytest.mark.parametrize("override", OUT_OF_RANGE)
def test_a_value_out_of_its_range_is_refused_with_its_path_and_range(override, tmp_path):
    with pytest.raises(RecipeError) as refused:
        load_recipe(TINY, [override, f"output_dir={tmp_path / 'run'}"])
    assert [f"{path}: {message}" for path, message in refused.value.problems] == [OUT_OF_RANGE[override]]


def test_every_value_out_of_range_is_reported_at_once(tmp_path):
    with pytest.raises(RecipeError) as refused:
        load_recipe(TINY, ["train.lr=-1", "data.block_size=0", "train.grad_accum=0"])
    assert sorted(path for path, _ in refused.value.problems) == ["data.block_size", "train.grad_accum", "train.lr"]


def test_a_plugins_options_get_their_ranges_too(tmp_path):
    with pytest.raises(RecipeError) as refused:
        load_recipe(RECIPES / "tiny_minijoint.yaml", ["strategy.k=0", "strategy.weight=-1"])
    assert sorted(f"{p}: {m}" for p, m in refused.value.problems) == [
        "strategy.k: must be at least 1, got 0", "strategy.weight: must be at least 0, got -1"]


def test_the_range_wording_for_each_kind_of_bound():
    assert range_problem(5, {"min": 1}) is None and range_problem(0, {"min": 1}) == "must be at least 1, got 0"
    assert range_problem(1, {"gt": 0, "lt": 1}) == "must be in (0, 1), got 1"
    assert range_problem(3, {"max": 2}) == "must be at most 2, got 3"
    assert range_problem(float("inf"), {"gt": 0}) == "must be greater than 0, got inf"
    assert range_problem(float("inf"), {}) is None  # no range declared: nothing to check
    assert range_problem(True, {"min": 5}) is None  # a bool is a type problem, reported elsewhere


def test_a_block_longer_than_the_models_positions_is_refused_with_the_allowed_range(tmp_path):
    cfg = load_recipe(TINY, ["data.block_size=129", f"output_dir={tmp_path}"])  # 130 positions, 2 before the first token
    with pytest.raises(RecipeError) as refused:
        check_pipeline(cfg, data_files=False)
    (path, message), = refused.value.problems
    assert path == "data.block_size" and "129 + 2 positions exceed the model's 130" in message
    assert "the allowed range is 1 to 128" in message
    check_pipeline(load_recipe(TINY, ["data.block_size=128"]), data_files=False)  # the largest that fits


def test_the_positions_of_a_pretrained_model_are_read_from_its_config_json(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"max_position_embeddings": 66, "model_type": "xlm-roberta"}))
    cfg = load_recipe(TINY, [f"model.pretrained={model}", "data.block_size=100", "~model.config"])
    with pytest.raises(RecipeError, match=r"100 \+ 2 positions exceed the model's 66 \(max_position_embeddings in "):
        check_pipeline(cfg, data_files=False)


def test_a_pretrained_directory_without_config_json_is_named_as_such(tmp_path):
    (tmp_path / "weights").mkdir()
    cfg = load_recipe(TINY, [f"model.pretrained={tmp_path / 'weights'}"])
    with pytest.raises(RecipeError) as refused:
        check_pipeline(cfg, data_files=False)
    assert refused.value.problems == [("model.pretrained", f"{tmp_path / 'weights'} is a directory without "
                                       "config.json: not a model written by save_pretrained (nor an mmadapt run's "
                                       "output_dir)")]


def test_validate_and_train_both_refuse_out_of_range_values_without_a_traceback_and_write_nothing(tmp_path):
    from omegaconf import OmegaConf

    recipe = OmegaConf.load(TINY)
    recipe.output_dir, recipe.train.max_steps = str(tmp_path / "run"), -5
    bad = tmp_path / "bad.yaml"
    OmegaConf.save(recipe, bad)
    for command in (["recipe", "validate", str(bad)], ["train", str(bad), "data.mlm_probability=1.5"]):
        out = subprocess.run(mmadapt_command() + command, capture_output=True, text=True, env=clean_env(), cwd=REPO,
                             timeout=60)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "train.max_steps: must be at least 0, got -5" in out.stderr
    assert "data.mlm_probability: must be in (0, 1), got 1.5" in out.stderr
    assert not (tmp_path / "run").exists()


def test_a_deepspeed_config_that_is_a_json_list_is_refused_with_its_path(tmp_path):
    (tmp_path / "ds.json").write_text('[{"zero_optimization": {"stage": 2}}]')
    with pytest.raises(RecipeError) as refused:
        load_recipe(TINY, [f"deepspeed.config={tmp_path / 'ds.json'}"])
    assert refused.value.problems == [("deepspeed.config", f"{tmp_path / 'ds.json'} holds a JSON list; a DeepSpeed "
                                       'config is a JSON object ({"zero_optimization": {...}, ...})')]


def test_a_task_longer_than_the_models_positions_is_refused(tmp_path):
    cfg = load_recipe(RECIPES / "quickstart.yaml", ["tasks.0.max_length=40", f"output_dir={tmp_path}"])
    with pytest.raises(RecipeError) as refused:
        check_pipeline(cfg, data_files=False)
    assert [path for path, _ in refused.value.problems] == ["tasks[0].max_length"]
    assert "40 + 2 positions exceed the model's 34" in refused.value.problems[0][1]


def test_a_task_length_is_checked_through_the_option_its_plugin_declares(tmp_path):
    from types import SimpleNamespace

    from mmadapt.pipeline.checks import shape_problems
    from mmadapt.plugin_system.manager import get_plugins

    plugins = get_plugins()
    cfg = load_recipe(RECIPES / "quickstart.yaml", ["tasks.0.max_length=40", f"output_dir={tmp_path}"])
    assert [path for path, _ in shape_problems(cfg, plugins)] == ["tasks[0].max_length"]

    class Undeclared(type(plugins.tasks.get("xnli"))):
        sequence_length_option = None

    undeclared = SimpleNamespace(tasks=SimpleNamespace(get=lambda name: Undeclared()),
                                 model_families=plugins.model_families)
    assert shape_problems(cfg, undeclared) == []
