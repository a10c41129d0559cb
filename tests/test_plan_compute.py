"""`mmadapt compute` and the run plan every stage with the same settings (mmadapt.pipeline.plan)."""
from __future__ import annotations

import json

import pytest

from conftest import RECIPES
from mmadapt.commands.compute import predict
from mmadapt.pipeline.checks import build_run_plan
from mmadapt.plugin_system.manager import get_plugins
from mmadapt.recipe import load_recipe

QUICKSTART = RECIPES / "quickstart_from_scratch.yaml"
#: a tiny quickstart where every stage has its own batch shape: per-strategy `train` (pretraining) and
#: `adapt_train`, a task's `finetune_train`, each over the stage-wide `adapt.train` / `finetune.train`
OVERRIDES = [
    "train.progress_bar=false", "train.max_steps=3", "train.save_every=0", "train.log_every=0",
    "model.config.num_hidden_layers=2", "model.config.hidden_size=32", "model.config.intermediate_size=64",
    "model.config.num_attention_heads=2", "data.block_size=16", "model.config.max_position_embeddings=18",
    "data.synth={seed: 3, languages: [src, vo], corpus_sentences: 600, nli_train: 60, nli_dev: 10, nli_test: 10}",
    "stages=[pretrain, tokenizer, adapt, finetune]", "adapt.languages=[vo]", "adapt.snapshot_every=0", "adapt.big_model_steps=0",
    "adapt.big_model_every=0",  # off: a stage's tokens per step are then the (mini-)model's own steps
    "adapt.train={max_steps: 2, micro_batch_size: 6}", "finetune.train={max_steps: 2, micro_batch_size: 5}",
    "tasks.0.max_length=16", "tasks.0.finetune_train={micro_batch_size: 3, grad_accum: 2}",
    "strategies=[{name: full, train: {micro_batch_size: 7}, adapt_train: {micro_batch_size: 4}},"
    " {name: minipost, k: 1, new_layers: 1, init_from: full, train: {micro_batch_size: 9, grad_accum: 2}}]",
]


def _planned(cfg):
    return build_run_plan(cfg, get_plugins(), data_files=False)


def _predicted(cfg) -> dict[tuple[str, str], int]:
    predictions, _ = predict(_planned(cfg), get_plugins())
    return {(p.strategy, s.stage): s.tokens_per_step for p in predictions for s in p.stages}


def test_compute_applies_every_per_strategy_and_per_task_train_override(tmp_path):
    cfg = load_recipe(QUICKSTART, [f"output_dir={tmp_path}", *OVERRIDES])
    assert _predicted(cfg) == {
        ("full", "pretrain"): 7 * 16, ("full", "adapt"): 4 * 16, ("full", "finetune/xnli"): 3 * 2 * 16,
        ("minipost", "pretrain"): 9 * 2 * 16, ("minipost", "adapt"): 6 * 16, ("minipost", "finetune/xnli"): 3 * 2 * 16}


@pytest.mark.slow  # a whole run
def test_train_checks_plans_and_fills_deepspeed_once_and_agrees_with_compute_on_tokens_per_step(tmp_path, monkeypatch):
    """`mmadapt train` checks and plans the recipe once (mmadapt.pipeline.checks.build_run_plan), fills
    no DeepSpeed JSON after that, and each stage runs the tokens per step `mmadapt compute` predicts."""
    import mmadapt.pipeline.checks as checks
    import mmadapt.pipeline.plan as plan
    import mmadapt.pipeline.runner as run
    from typer.testing import CliRunner

    from mmadapt.cli import app

    calls = {"check_pipeline": 0, "plan_runs": 0, "fill_auto_while_running": 0}
    running = []

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    def fill_auto(*args, **kwargs):
        calls["fill_auto_while_running"] += bool(running)
        return original_fill_auto(*args, **kwargs)

    def run_recipe(*args, **kwargs):
        running.append(True)
        return original_run_recipe(*args, **kwargs)

    original_fill_auto, original_run_recipe = plan.fill_auto, run.run_recipe
    monkeypatch.setattr(checks, "check_pipeline", counted("check_pipeline", checks.check_pipeline))
    monkeypatch.setattr(checks, "plan_runs", counted("plan_runs", checks.plan_runs))
    monkeypatch.setattr(plan, "fill_auto", fill_auto)
    monkeypatch.setattr(run, "run_recipe", run_recipe)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(QUICKSTART), f"output_dir={out}", *OVERRIDES])
    assert result.exit_code == 0, result.output[-3000:]
    assert running and calls == {"check_pipeline": 1, "plan_runs": 1, "fill_auto_while_running": 0}
    measured = {}
    for strategy in ("full", "minipost"):
        for unit in ("pretrain", "adapt/vo", "finetune/xnli"):
            metrics = json.loads((out / strategy / unit / "stage_complete.json").read_text())["metrics"]
            measured[(strategy, unit.replace("/vo", ""))] = metrics["tokens"] // metrics["steps"]
    assert measured == _predicted(load_recipe(QUICKSTART, [f"output_dir={out}", *OVERRIDES]))


def test_compute_marks_the_stages_the_run_does_including_a_finetune_transfer_does_for_itself(tmp_path):
    cfg = load_recipe(QUICKSTART, [f"output_dir={tmp_path}", "stages=[pretrain, tokenizer, adapt, transfer]"])
    predictions, _ = predict(_planned(cfg), get_plugins())
    runs = {(p.strategy, s.stage): s.runs for p in predictions for s in p.stages}
    # minijoint pretrains and fine-tunes for all three; full and minipost reuse its models
    assert runs == {("minijoint", "pretrain"): True, ("minijoint", "adapt"): True, ("minijoint", "finetune/xnli"): True,
                    ("full", "pretrain"): False, ("full", "adapt"): True, ("full", "finetune/xnli"): False,
                    ("minipost", "pretrain"): True, ("minipost", "adapt"): True, ("minipost", "finetune/xnli"): False,
                    # the mini strategies' adapt steps over the big model (the recipe's big_model_steps/every)
                    ("minijoint", "adapt, big model"): True, ("minipost", "adapt, big model"): True}
