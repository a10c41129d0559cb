"""The recipe of docs/guide.md is one mmadapt accepts, with the compute the guide quotes."""
from __future__ import annotations

import json
import re

from conftest import REPO
from mmadapt.pipeline.checks import build_run_plan, check_pipeline
from mmadapt.plugin_system.manager import get_plugins
from mmadapt.recipe import load_recipe


def guide_recipe(tmp_path):
    doc = (REPO / "docs" / "guide.md").read_text(encoding="utf-8")
    text = re.search(r"```yaml\n(# mmadapt train xlmr_new_language.yaml\n.*?)```", doc, re.S).group(1)
    path = tmp_path / "xlmr_new_language.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_guides_recipe_validates_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_recipe(guide_recipe(tmp_path), plugins=get_plugins())
    check_pipeline(cfg, data_files=False)  # the data are on the user's machine, not here
    assert [s.name for s in cfg.strategies] == ["minipost", "full", "minijoint"]
    assert [t.name for t in cfg.tasks] == ["xnli", "pawsx", "mlqa"]
    assert cfg.deepspeed.resolved.zero_optimization.stage == 2


def test_the_guides_adapt_compute_per_step_is_what_mmadapt_compute_predicts(tmp_path):
    from mmadapt.commands.compute import predict

    base = tmp_path / "xlmr-base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({
        "model_type": "xlm-roberta", "vocab_size": 250002, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514}))
    cfg = load_recipe(guide_recipe(tmp_path), [f"variables.xlmr={base}"], plugins=get_plugins())
    predictions, _ = predict(build_run_plan(cfg, get_plugins(), data_files=False), get_plugins())
    per_step = {(p.strategy, s.stage): s.per_step for p in predictions for s in p.stages}
    # the guide's table, XLM-R base column (3 significant figures)
    quoted = {("full", "adapt"): 6.60e12, ("minipost", "adapt"): 3.59e12, ("minijoint", "adapt"): 2.58e12,
              ("minipost", "pretrain"): 4.29e12, ("minijoint", "pretrain"): 1.45e13,
              ("full", "finetune/xnli"): 4.26e12, ("full", "finetune/mlqa"): 1.35e13}
    for key, value in quoted.items():
        assert abs(per_step[key] - value) / value < 0.005, (key, per_step[key])
