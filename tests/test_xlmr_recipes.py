"""The shipped XLM-R pipeline recipes: the same settings across strategies, and each one runs every
stage (one step each) on a tiny XLM-R-family model and the official-format task files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import RECIPES, run_in_process, write_corpus
from task_helpers import MLQA_DIR, PAWSX_DIR, SQUAD_DIR, XNLI_DIR, tiny_tokenizer

STRATEGIES = ("full", "minipost", "minijoint", "compare")
XLMR_RECIPES = [RECIPES / f"xlmr_{size}_{strategy}.yaml" for size in ("base", "large") for strategy in STRATEGIES]
TASKS = ("xnli", "pawsx", "mlqa")
LANGUAGES = ("de", "zh")
TINY_LAYERS = 6
POST_LAYERS, JOINT_LAYERS = [0, 1, 2, 3, None, None], [0, 1, 2, 3]  # each mini layer's big-model layer (None: new)
#: each recipe's runs: (strategy, its directory under output_dir, its mini-model's layers (None: it has none, so no
#: pretraining), whether it fine-tunes its own task models)
RUNS = {"full": [("full", ".", None, True)], "minipost": [("minipost", ".", POST_LAYERS, True)],
        "minijoint": [("minijoint", ".", JOINT_LAYERS, True)],
        "compare": [("minipost", "minipost", POST_LAYERS, True), ("full", "full", None, False)]}


def sections(recipe: Path) -> dict:
    return yaml.safe_load(recipe.read_text())


@pytest.mark.parametrize("size", ["base", "large"])
def test_the_strategies_of_one_size_share_languages_tasks_tokenizer_adapt_and_finetune(size):
    recipes = {strategy: sections(RECIPES / f"xlmr_{size}_{strategy}.yaml") for strategy in STRATEGIES}
    full = recipes["full"]
    assert full["stages"] == ["tokenizer", "adapt", "finetune", "transfer"] and "pretrain" not in full["stages"]
    for strategy, recipe in recipes.items():
        assert recipe["precision"] == "bf16", strategy
        assert recipe["output_dir"] == f"runs/xlmr_{size}_{strategy}", strategy
        for key in ("languages", "tasks", "tokenizer", "finetune", "transfer"):
            assert recipe[key] == full[key], (strategy, key)
        assert {k: v for k, v in recipe["adapt"].items() if k != "big_model_steps"} == full["adapt"], strategy
        if strategy != "full":
            assert recipe["stages"] == ["pretrain", *full["stages"]], strategy
    assert [t["name"] for t in full["tasks"]] == list(TASKS)


@pytest.mark.parametrize("size, layers", [("base", 12), ("large", 24)])
def test_the_mini_recipes_keep_the_bottom_4_layers_of_xlmr(size, layers):
    from mmadapt.recipe import load_recipe

    post = load_recipe(RECIPES / f"xlmr_{size}_minipost.yaml")
    joint = load_recipe(RECIPES / f"xlmr_{size}_minijoint.yaml")
    compare = load_recipe(RECIPES / f"xlmr_{size}_compare.yaml")
    assert (post.strategy.name, post.strategy.k, post.strategy.new_layers, post.strategy.layer_rule.name) == \
        ("minipost", 4, 2, "first_k")
    assert (joint.strategy.name, joint.strategy.k, joint.model.config.num_hidden_layers) == ("minijoint", 4, layers)
    assert [(s.name, s.get("k"), s.reuse) for s in compare.strategies] == \
        [("minipost", 4, None), ("full", None, "minipost")]
    assert post.model.pretrained == compare.model.pretrained == f"/data/xlm-roberta-{size}"
    assert joint.model.tokenizer == f"/data/xlm-roberta-{size}" and not joint.model.pretrained
    assert list(post.data.train) == list(joint.data.train) == ["/data/cc100/en.txt"]


def test_the_xlmr_recipes_validate_from_another_directory(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mmadapt.cli import app
    from mmadapt.recipe import load_recipe

    for recipe in XLMR_RECIPES:
        shutil.copy(recipe, tmp_path / recipe.name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["recipe", "validate", *(recipe.name for recipe in XLMR_RECIPES)])
    assert result.exit_code == 0, result.output
    assert [line for line in result.stdout.splitlines() if line.startswith("ok: ")] == \
        [f"ok: {recipe.name}" for recipe in XLMR_RECIPES]
    for recipe in XLMR_RECIPES:
        cfg = load_recipe(recipe.name, ["variables.data=/elsewhere"])
        assert cfg.deepspeed.resolved.zero_optimization.stage == 2 and cfg.deepspeed.resolved.bf16.enabled
        assert cfg.tasks[2].mlqa_dir == "/elsewhere/MLQA_V1"
        assert list(cfg.languages.zh.corpus) == ["/elsewhere/cc100/zh.txt"]


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> Path:
    """A data folder laid out as the guide's downloads unpack: task files (the official-format
    fixtures), text per language, and a tiny XLM-R-family model saved with its tokenizer."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    root = tmp_path_factory.mktemp("data")
    (root / "multinli_1.0").mkdir()
    shutil.copy(XNLI_DIR / "multinli_1.0_train.jsonl", root / "multinli_1.0")
    (root / "XNLI-1.0").mkdir()
    for name in ("xnli.dev.tsv", "xnli.test.tsv"):
        shutil.copy(XNLI_DIR / name, root / "XNLI-1.0")
    shutil.copytree(PAWSX_DIR, root / "x-final")
    # the real x-final/en has test_2k.tsv too (the source-language score); the fixtures leave it out
    shutil.copy(PAWSX_DIR / "en" / "dev_2k.tsv", root / "x-final" / "en" / "test_2k.tsv")
    (root / "squad").mkdir()
    shutil.copy(SQUAD_DIR / "train-v1.1.json", root / "squad")
    shutil.copytree(MLQA_DIR, root / "MLQA_V1")
    (root / "cc100").mkdir()
    for seed, language in enumerate(("en", *LANGUAGES)):
        write_corpus(root / "cc100" / f"{language}.txt", lines=400, seed=seed)
    tokenizer = tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=TINY_LAYERS,
                              num_attention_heads=2, intermediate_size=32, max_position_embeddings=514,
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id)
    XLMRobertaForMaskedLM(config).save_pretrained(root / "tiny-xlmr")
    tokenizer.save_pretrained(root / "tiny-xlmr")
    return root


def one_step(recipe: Path, data: Path, output_dir: Path) -> list[str]:
    """Overrides that run every stage of `recipe` for one optimiser step on tiny data and a tiny model."""
    small = "{max_steps: 1, micro_batch_size: 2, grad_accum: 1, save_every: 0, log_every: 1, progress_bar: false}"
    overrides = [f"variables.data={data}", f"variables.xlmr={data / 'tiny-xlmr'}", f"output_dir={output_dir}",
                 f"train={small}", f"adapt.train={small}", f"finetune.train={small}", "data.block_size=32",
                 "tokenizer.vocab_size=60", "adapt.snapshot_every=0"]
    overrides += [f"tasks.{i}.finetune_train.max_steps=1" for i in range(len(TASKS))]
    if "big_model_steps" in sections(recipe)["adapt"]:
        overrides.append("adapt.big_model_steps=1")
    if "minijoint" in recipe.name:  # built from model.config: the tiny model's shape instead of XLM-R's
        overrides += ["~model.config.vocab_size", f"model.config.num_hidden_layers={TINY_LAYERS}",
                      "model.config.hidden_size=16", "model.config.num_attention_heads=2",
                      "model.config.intermediate_size=32"]
    return overrides


def marker(path: Path) -> dict:
    return json.loads((path / "stage_complete.json").read_text())


@pytest.mark.slow  # every stage of a real-size recipe
@pytest.mark.parametrize("recipe", XLMR_RECIPES, ids=[p.stem for p in XLMR_RECIPES])
def test_an_xlmr_recipe_runs_one_step_of_every_stage_and_reports_each_task_and_language(recipe, user_data, tmp_path):
    out = tmp_path / "run"
    run_in_process(recipe, one_step(recipe, user_data, out))
    runs = RUNS[recipe.stem.rsplit("_", 1)[1]]
    for language in LANGUAGES:
        assert (out / "tokenizers" / language / "tokenizer" / "tokenizer.json").is_file()
    for strategy, where, mini_layers, finetunes in runs:
        run_dir = out / where
        if mini_layers:
            assert marker(run_dir / "pretrain")["metrics"]["steps"] == 1, strategy
            manifest = json.loads((run_dir / "pretrain" / "manifest.json").read_text())
            assert [m["big_layer"] for m in manifest["mini_layers"]] == mini_layers, strategy
        else:  # XLM-R as it is
            assert not (run_dir / "pretrain" / "stage_complete.json").exists(), strategy
        for language in LANGUAGES:
            adapted = marker(run_dir / "adapt" / language)["metrics"]
            # the mini strategies: one step over the big model, then one over the mini-model
            assert (adapted["steps"], adapted.get("big_model_steps", 0), adapted["model_layers"]) == \
                (1, 1 if mini_layers else 0, len(mini_layers or [None] * TINY_LAYERS)), (strategy, language)
        for task in TASKS:
            assert (run_dir / "finetune" / task / "stage_complete.json").exists() == finetunes, (strategy, task)
            if finetunes:
                assert marker(run_dir / "finetune" / task)["metrics"]["steps"] == 1, (strategy, task)
            for language in LANGUAGES:
                assert (run_dir / "transfer" / task / language / "model" / "config.json").is_file(), (strategy, task)
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert sorted((r["strategy"], r["task"], r["language"]) for r in rows) == sorted(
        (strategy, task, language) for strategy, *_ in runs for task in TASKS for language in LANGUAGES)
    for row in rows:
        assert 0.0 <= row["source_score"] <= 1.0 and 0.0 <= row["target_score"] <= 1.0, row
        assert row["adapt_steps"] >= 1 and row["adapt_flops"] > 0, row
