"""Recipes: layered resolution, whole-recipe validation, DeepSpeed JSON filling."""
from __future__ import annotations

import json

import pytest

from conftest import RECIPES
from mmadapt.errors import MmadaptError, RecipeError
from mmadapt.recipe import load_recipe, parse_overrides, save_resolved
from mmadapt.recipe.loading import RESOLVED_RECIPE_NAME

SHIPPED = sorted(RECIPES.glob("*.yaml"))


def write(tmp_path, text: str, name: str = "r.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_misspelt_key_wrong_type_and_unknown_strategy_are_reported_together(tmp_path):
    recipe = write(tmp_path, "trian: {max_steps: 3}\ntrain: {max_steps: lots}\nstrategy: {name: ful}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    paths = [path for path, _ in info.value.problems]
    assert sorted(paths) == ["strategy.name", "train.max_steps", "trian"]
    message = str(info.value)
    assert "did you mean 'train'" in message
    assert "did you mean 'full'" in message and "available: " in message
    assert "expected int, got str 'lots'" in message


def test_per_strategy_and_per_task_train_overrides_are_checked_like_train(tmp_path):
    recipe = write(tmp_path, "strategies: [{name: full, adapt_train: {max_stpes: 3}}]\n"
                             "tasks: [{name: xnli, finetune_train: {lr: fast}}]\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    message = str(info.value)
    assert "strategies[0].adapt_train.max_stpes" in message and "did you mean 'max_steps'" in message
    assert "tasks[0].finetune_train.lr" in message


def test_unknown_model_family_and_choice_value_get_suggestions(tmp_path):
    recipe = write(tmp_path, "model: {family: xlmrr}\nprecision: bf61\ntrain: {schedule: cosin}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    message = str(info.value)
    assert "model.family: unknown model family 'xlmrr' (did you mean 'xlmr'?)" in message
    assert "precision: 'bf61' is not one of fp32, bf16, fp16" in message
    assert "train.schedule: 'cosin' is not one of linear, cosine, constant (did you mean 'cosine'?)" in message


def test_resolution_order_is_schema_then_file_then_overrides(tmp_path):
    recipe = write(tmp_path, "output_dir: runs/from_file\ntrain: {lr: 0.01, max_steps: 5}\n"
                             "deepspeed: {config: zero1}\n")
    cfg = load_recipe(recipe, ["train.max_steps=9", "~output_dir", "data.train=[a.txt,b.txt]"])
    assert cfg.train.lr == 0.01  # from the file
    assert cfg.train.max_steps == 9  # override wins
    assert cfg.output_dir == "runs/default"  # deleted from the file: schema default
    assert list(cfg.data.train) == ["a.txt", "b.txt"]
    assert cfg.train.warmup_steps == 0  # schema default


def test_deleting_a_key_the_recipe_does_not_set_is_an_error(tmp_path):
    with pytest.raises(RecipeError, match="cannot delete"):
        load_recipe(write(tmp_path, "seed: 3\n"), ["~train.lr"])


@pytest.mark.parametrize("arg, shown", [("--max-steps", "max_steps=VALUE"), ("--train.lr=3", "train.lr=3")])
def test_a_stray_flag_is_refused_with_the_key_value_form(arg, shown):
    with pytest.raises(MmadaptError) as info:
        parse_overrides([arg])
    assert shown in str(info.value) and "key=value" in str(info.value)


def test_deepspeed_auto_fields_are_filled_from_the_recipe(tmp_path):
    recipe = write(tmp_path, "precision: bf16\ntrain: {micro_batch_size: 4, grad_accum: 3, lr: 0.002, "
                             "max_grad_norm: 0.5}\n"
                             "deepspeed: {config: zero3}\n")
    ds = load_recipe(recipe).deepspeed.resolved
    assert ds.train_micro_batch_size_per_gpu == 4
    assert ds.gradient_accumulation_steps == 3
    assert ds.train_batch_size == 12
    assert ds.gradient_clipping == 0.5
    assert ds.optimizer.params.lr == 0.002
    assert ds.bf16.enabled is True and ds.fp16.enabled is False
    assert ds.zero_optimization.stage == 3
    assert ds.zero_optimization.stage3_gather_16bit_weights_on_model_save is True


def test_a_hard_coded_deepspeed_value_that_contradicts_the_recipe_is_reported(tmp_path):
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": 1}}))
    with pytest.raises(RecipeError, match="train_micro_batch_size_per_gpu is 2 in the JSON but the recipe gives 8"):
        load_recipe(write(tmp_path, f"deepspeed: {{config: {ds}}}\ntrain: {{micro_batch_size: 8}}\n"))


def test_deepspeed_overrides_are_merged_into_the_json(tmp_path):
    cfg = load_recipe(write(tmp_path, "deepspeed: {config: zero2}\n"),
                      ["deepspeed.overrides={zero_optimization.stage: 1}"])
    assert cfg.deepspeed.resolved.zero_optimization.stage == 1


def test_a_missing_deepspeed_config_names_the_places_looked_at(tmp_path):
    with pytest.raises(RecipeError, match="DeepSpeed config 'nope.json' not found"):
        load_recipe(write(tmp_path, "deepspeed: {config: nope.json}\n"))


def test_the_computed_deepspeed_section_cannot_be_set_by_hand(tmp_path):
    with pytest.raises(RecipeError, match="deepspeed.resolved: is computed"):
        load_recipe(write(tmp_path, "deepspeed: {resolved: {a: 1}}\n"))


def test_interpolation_from_variables_resolves(tmp_path):
    recipe = write(tmp_path, "variables: {corpus: /data/x.txt}\ndata: {train: ['${variables.corpus}']}\n"
                             "deepspeed: {config: zero2}\n")
    assert list(load_recipe(recipe).data.train) == ["/data/x.txt"]


def test_missing_recipe_file_is_a_clear_error(tmp_path):
    with pytest.raises(MmadaptError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


@pytest.mark.parametrize("recipe", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_recipe_validates_and_says_how_to_run_it(recipe):
    first_line = recipe.read_text().splitlines()[0]
    assert first_line.startswith("# mmadapt train ") and recipe.name in first_line
    cfg = load_recipe(recipe)
    assert cfg.deepspeed.resolved["train_micro_batch_size_per_gpu"] == cfg.train.micro_batch_size


def test_a_runs_saved_recipe_runs_again_as_is_with_its_deepspeed_json_beside_it(tmp_path):
    import json

    from omegaconf import OmegaConf

    cfg = load_recipe(RECIPES / "tiny_full.yaml", [f"output_dir={tmp_path}", "train.max_steps=7"])
    saved = save_resolved(cfg, tmp_path)
    assert saved.name == RESOLVED_RECIPE_NAME
    assert "resolved" not in OmegaConf.load(saved).deepspeed
    assert json.loads((tmp_path / "deepspeed.json").read_text()) == OmegaConf.to_container(cfg.deepspeed.resolved)
    assert OmegaConf.to_container(load_recipe(saved)) == OmegaConf.to_container(cfg)


@pytest.mark.slow  # every recipe command, each a child process
def test_the_recipe_commands_show_and_validate_from_the_command_line(tmp_path):
    import subprocess

    from conftest import clean_env, mmadapt_command

    shown = subprocess.run(mmadapt_command() + ["recipe", "show", str(RECIPES / "tiny_full.yaml"),
                                                "train.max_steps=7", "~data.synth"],
                           capture_output=True, text=True, env=clean_env(), check=True)
    assert "max_steps: 7" in shown.stdout and "train_micro_batch_size_per_gpu: 16" in shown.stdout
    bad = write(tmp_path, "trian: {}\n")
    checked = subprocess.run(mmadapt_command() + ["recipe", "validate", *map(str, SHIPPED), str(bad)],
                             capture_output=True, text=True, env=clean_env())
    assert checked.returncode == 2
    assert checked.stdout.count("ok: ") == len(SHIPPED)
    assert "trian: unknown key (did you mean 'train'?)" in checked.stderr and "Traceback" not in checked.stderr
    flag = subprocess.run(mmadapt_command() + ["train", str(RECIPES / "tiny_full.yaml"), "--max-steps=3"],
                          capture_output=True, text=True, env=clean_env())
    assert flag.returncode == 2 and "max_steps=3" in flag.stderr and "Traceback" not in flag.stderr


def test_the_tasks_quickstart_shares_the_quickstarts_data_tokenizers_and_finetuning():
    import yaml

    main, tasks = (yaml.safe_load((RECIPES / name).read_text()) for name in ("quickstart.yaml", "quickstart_tasks.yaml"))
    assert [t["name"] for t in tasks["tasks"]] == ["pawsx", "mlqa"]
    assert tasks["output_dir"] == "runs/quickstart_tasks"
    for key in ("seed", "precision", "stages", "data", "tokenizer", "transfer"):
        assert tasks[key] == main[key], key
    # the restart check was chosen on the NLI fine-tune; paraphrase and QA fine-tunes are not checked
    assert tasks["finetune"] == {"train": main["finetune"]["train"]} and "restart" in main["finetune"]
    assert {lang: section["corpus"] for lang, section in tasks["languages"].items()} == \
        {lang: section["corpus"] for lang, section in main["languages"].items()}


def test_the_quickstart_is_its_from_scratch_recipe_but_for_the_shipped_source_model():
    import yaml

    main, scratch = (yaml.safe_load((RECIPES / name).read_text())
                     for name in ("quickstart.yaml", "quickstart_from_scratch.yaml"))
    assert main["model"] == {"family": "xlmr", "pretrained": "${recipe_dir:}/quickstart_model"}
    assert (main["train"].pop("max_steps"), scratch["train"].pop("max_steps")) == (0, 600)
    main_minipost, scratch_minipost = main["strategies"][2], scratch["strategies"][2]
    assert main_minipost.pop("continue_from") == "${recipe_dir:}/quickstart_model/minipost"
    assert (main_minipost["train"].pop("max_steps"), scratch_minipost["train"].pop("max_steps")) == (0, 600)
    assert scratch["model"]["config"]["num_hidden_layers"] == 8
    assert scratch["output_dir"] == "runs/quickstart_from_scratch"
    for key in sorted((set(main) | set(scratch)) - {"output_dir", "model"}):
        assert main.get(key) == scratch.get(key), key
    manifest = json.loads((RECIPES / "quickstart_model" / "manifest.json").read_text())
    assert (manifest["strategy"], manifest["k"], manifest["big_num_layers"]) == ("minijoint", 2, 8)
    minipost = json.loads((RECIPES / "quickstart_model" / "minipost" / "manifest.json").read_text())
    assert (minipost["strategy"], minipost["k"], [layer["big_layer"] for layer in minipost["mini_layers"]]) == (
        "minipost", 2, [0, 1, None])


def test_recipe_dir_names_the_recipe_files_directory_from_any_working_directory(tmp_path, monkeypatch):
    beside = tmp_path / "recipes"
    beside.mkdir()
    recipe = write(beside, "variables: {model: '${recipe_dir:}/model'}\n")
    monkeypatch.chdir(tmp_path)
    assert load_recipe(recipe).variables.model == str(beside.resolve() / "model")
    assert load_recipe(None, ["variables.here=${recipe_dir:}"]).variables.here == str(tmp_path.resolve())


def test_a_shipped_deepspeed_config_by_name_resolves_the_same_from_any_directory(tmp_path, monkeypatch):
    recipe = write(tmp_path, "deepspeed: {config: zero3}\n")
    here = load_recipe(recipe).deepspeed.resolved
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_recipe(recipe).deepspeed.resolved == here
    assert here.zero_optimization.stage == 3


def test_the_default_deepspeed_config_is_the_shipped_zero2_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_recipe(write(tmp_path, "seed: 3\n"))
    assert cfg.deepspeed.config == "zero2"
    assert cfg.deepspeed.resolved.zero_optimization.stage == 2


def test_the_older_ds_configs_path_form_still_finds_the_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_recipe(write(tmp_path, "deepspeed: {config: ds_configs/zero1.json}\n"))
    assert cfg.deepspeed.resolved.zero_optimization.stage == 1


def test_a_users_own_ds_configs_file_beside_the_recipe_wins_over_the_shipped_one(tmp_path, monkeypatch):
    (tmp_path / "ds_configs").mkdir()
    (tmp_path / "ds_configs" / "zero1.json").write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    monkeypatch.chdir(tmp_path.parent)
    cfg = load_recipe(write(tmp_path, "deepspeed: {config: ds_configs/zero1.json}\n"))
    assert cfg.deepspeed.resolved.zero_optimization.stage == 3


def test_an_unknown_shipped_deepspeed_name_lists_the_shipped_ones(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, "deepspeed: {config: zero22}\n"))
    message = str(info.value)
    assert "no shipped DeepSpeed config 'zero22'" in message and "did you mean 'zero2'" in message
    assert "zero0, zero1, zero2, zero3, zero3_offload" in message


@pytest.mark.slow
def test_the_built_wheel_contains_the_deepspeed_configs(tmp_path):
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", str(RECIPES.parent), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("mmadapt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"mmadapt/ds_configs/zero{n}.json" for n in ("0", "1", "2", "3", "3_offload")} <= names
