"""`recipe validate` and `train` refuse the same inconsistent recipes, before any work, naming the problem."""
from __future__ import annotations

import subprocess

import pytest
from omegaconf import OmegaConf

from conftest import REPO, RECIPES, clean_env, mmadapt_command, run_in_process
from mmadapt.errors import RecipeError
from mmadapt.pipeline.checks import check_pipeline, stage_problems
from mmadapt.pipeline.plan import task_languages
from mmadapt.plugin_system.manager import get_plugins
from mmadapt.recipe import load_recipe

#: changes to recipes/quickstart_from_scratch.yaml (the quickstart pretraining its own model) -> the problem line
#: each one must be refused with
REFUSED = {
    "no_adapt": ({"stages": ["pretrain", "finetune", "transfer"]},
                 "stages: stage transfer needs adapt (it evaluates the adapted languages): add adapt to stages"),
    "out_of_order": ({"stages": ["pretrain", "adapt", "tokenizer", "finetune", "transfer"]},
                     "stages: stages run in pipeline order (pretrain -> tokenizer -> adapt -> finetune -> transfer); "
                     "write [pretrain, tokenizer, adapt, finetune, transfer]"),
    "repeated": ({"stages": ["pretrain", "tokenizer", "adapt", "adapt"], "adapt.restart.at_step": 0},
                 "stages: adapt listed more than once; write [pretrain, tokenizer, adapt]"),
    "no_pretrain": ({"stages": ["tokenizer", "adapt", "finetune", "transfer"]},
                    "stages: strategies minijoint, minipost need stage pretrain (only a strategy that uses a given "
                    "model as it is starts from model.pretrained without it): add pretrain to stages"),
    "no_tasks": ({"tasks": []}, "tasks: is empty but stages lists finetune/transfer"),
    "negative_big_model_steps": ({"adapt.big_model_steps": -1}, "adapt.big_model_steps: must be at least 0, got -1"),
    "big_model_every_step": ({"adapt.big_model_every": 1},
                             "adapt.big_model_every: 1 runs every adapt step over the big model, which is the `full` "
                             "strategy: give 2 or more (every Nth step over the big model), or 0 for none"),
    "big_model_batch_over_the_step": (
        {"adapt.big_model_micro_batch_size": 128},
        "adapt.big_model_micro_batch_size: 128 is more than strategy minijoint's adapt micro-batch (64, "
        "adapt.train.micro_batch_size): each of adapt.big_model_every's big-model steps trains on that many of its "
        "step's sequences; give at most 64, or 0 for the whole micro-batch"),
    "restart_without_big_model_steps": (
        {"adapt.restart.at_step": 120, "adapt.big_model_steps": 0, "adapt.big_model_every": 0},
        "adapt.restart: the restart runs the big-model steps on the whole micro-batch, and there are none: set "
        "adapt.big_model_steps or adapt.big_model_every, or adapt.restart.at_step: 0"),
    "restart_task_not_in_tasks": (
        {"adapt.restart.at_step": 120, "adapt.restart.task": "pawsx"},
        "adapt.restart.task: 'pawsx' is not one of tasks: (xnli)"),
    "restart_without_finetune": (
        {"adapt.restart.at_step": 120, "stages": ["pretrain", "tokenizer", "adapt"]},
        "stages: adapt.restart probes the embeddings over the fine-tuned model, so the fine-tune runs before adapt: "
        "list finetune (and transfer) in stages, or set adapt.restart.at_step: 0"),
    "unknown_language": ({"adapt.languages": ["vo", "zz"]}, "adapt.languages: 'zz' has no entry under languages:"),
    "task_lists_no_adapted_language": (
        {"tasks.0.languages": ["src", "de"]},
        "tasks[0].languages: lists none of the adapted languages (vo, na), so transfer would evaluate task 'xnli' "
        "on nothing"),
}


def recipe_file(tmp_path, name: str, changes: dict, base=RECIPES / "quickstart_from_scratch.yaml"):
    """`base` with dotted-key `changes`, written to tmp_path/name.yaml (its output_dir inside tmp_path)."""
    cfg = OmegaConf.load(base)
    changes = {"output_dir": str(tmp_path / "runs" / name), "deepspeed.config": "zero2",
               **changes}
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    path = tmp_path / f"{name}.yaml"
    OmegaConf.save(cfg, path)
    return path


def cli(*args):
    return subprocess.run(mmadapt_command() + [str(a) for a in args], capture_output=True, text=True,
                          env=clean_env(), cwd=REPO, timeout=120)


def test_recipe_validate_refuses_every_inconsistent_recipe_with_the_dotted_path_of_its_problem(tmp_path):
    paths = {name: recipe_file(tmp_path, name, changes) for name, (changes, _) in REFUSED.items()}
    out = cli("recipe", "validate", *paths.values())
    assert out.returncode == 2 and "ok:" not in out.stdout and "Traceback" not in out.stderr
    for name, (_, problem) in REFUSED.items():
        assert f"invalid: 1 problem(s) in {paths[name]}:\n  {problem}" in out.stderr, name


@pytest.mark.parametrize("name", REFUSED)
def test_train_refuses_the_same_recipes_before_any_work(name, tmp_path):
    changes, problem = REFUSED[name]
    with pytest.raises(RecipeError) as refused:
        run_in_process(recipe_file(tmp_path, name, changes), [])
    assert problem in str(refused.value) and len(refused.value.problems) == 1
    assert not (tmp_path / "runs").exists()  # nothing written: not even the resolved recipe


def test_train_from_the_command_line_names_the_missing_stage_in_one_message_without_a_traceback(tmp_path):
    changes, problem = REFUSED["no_adapt"]
    out = cli("train", recipe_file(tmp_path, "no_adapt", changes))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"error: 1 problem(s) in {tmp_path / 'no_adapt.yaml'}:\n  {problem}\n" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_a_missing_data_file_is_a_warning_for_validate_and_a_refusal_for_train(tmp_path):
    missing = tmp_path / "nowhere.txt"
    path = recipe_file(tmp_path, "missing_data", {"data.train": [str(missing)]}, base=RECIPES / "tiny_full.yaml")
    out = cli("recipe", "validate", path)
    assert out.returncode == 0 and f"ok: {path}" in out.stdout
    assert f"data.train[0]: {missing}: no such file or directory" in out.stderr
    with pytest.raises(RecipeError, match=rf"data.train\[0\]: {missing}: no such file or directory"):
        run_in_process(path, [])


def test_stages_a_later_stage_runs_for_itself_may_be_left_out(tmp_path):
    plugins = get_plugins()
    # adapt trains the tokenizers it needs, transfer fine-tunes the task models it needs
    implied = load_recipe(recipe_file(tmp_path, "implied", {"stages": ["pretrain", "adapt", "transfer"]}))
    assert stage_problems(implied, plugins) == []
    check_pipeline(implied)  # nor does any other check refuse it
    # `full` takes model.pretrained as its big model without a pretrain stage
    given = load_recipe(RECIPES / "quickstart.yaml", ["strategies=[{name: full}]", "model.pretrained=some/dir",
                                                      "stages=[tokenizer,adapt,finetune,transfer]"])
    assert stage_problems(given, plugins) == []
    check_pipeline(given, data_files=False)  # some/dir is not on this machine
    # while leaving out what nothing makes is refused
    missing = load_recipe(recipe_file(tmp_path, "missing", {"stages": ["transfer"]}))
    assert any(path == "stages" for path, _ in stage_problems(missing, plugins))


def test_transfer_evaluates_a_task_on_the_adapted_languages_it_lists_in_adaptation_order():
    adapted = ["vo", "na", "xx"]
    assert task_languages(OmegaConf.create({"name": "xnli", "languages": ["src", "xx", "vo"]}), adapted) == ["vo", "xx"]
    assert task_languages(OmegaConf.create({"name": "xnli", "languages": []}), adapted) == adapted
    assert task_languages({"name": "reviews"}, adapted) == adapted  # a task without the option: every language
    assert task_languages({"languages": ["src", "de"]}, adapted) == []


def test_a_report_baseline_that_is_not_one_of_the_strategies_is_refused(tmp_path):
    with pytest.raises(RecipeError, match=r"report.baseline: 'mini' is not one of the run's strategies "
                                          r"\(minijoint, full, minipost\)"):
        check_pipeline(load_recipe(RECIPES / "quickstart.yaml", ["report.baseline=mini"]))


@pytest.mark.slow  # every command, each a child process
@pytest.mark.parametrize("recipe, override", [("tiny_minijoint.yaml", "strategy.k=4"),
                                              ("quickstart.yaml", "strategies.2.k=8")])
def test_a_mini_model_as_deep_as_the_big_model_is_refused_by_every_command(recipe, override):
    path = "strategy.k" if override.startswith("strategy.") else "strategies[2].k"
    for command in (["compute"], ["recipe", "validate"], ["train"]):
        out = subprocess.run(mmadapt_command() + [*command, str(RECIPES / recipe), override], capture_output=True,
                             text=True, env=clean_env(), cwd=REPO)
        assert out.returncode == 2 and "Traceback" not in out.stderr, command
        assert f"  {path}: {override.split('=')[1]} is not below the big model's" in out.stderr, out.stderr


def test_a_per_task_value_beating_a_command_line_override_is_warned_about_with_both_values():
    from mmadapt.pipeline.checks import check_before_work
    from mmadapt.plugin_system.manager import get_plugins

    _, warnings = check_before_work(RECIPES / "quickstart_tasks.yaml", ["finetune.train.max_steps=10"], get_plugins())
    assert warnings == ["tasks[0].finetune_train.max_steps (6000) beats the command line's finetune.train.max_steps=10 "
                        "for 'pawsx'; set tasks.0.finetune_train.max_steps=10 to change it"]
    _, warnings = check_before_work(RECIPES / "quickstart_tasks.yaml", ["finetune.train.max_steps=6000"], get_plugins())
    assert warnings == []  # the same value: nothing is lost


def test_a_fine_tune_that_ends_before_its_restart_check_is_warned_about_once_per_task():
    from mmadapt.pipeline.checks import check_before_work
    from mmadapt.plugin_system.manager import get_plugins

    _, warnings = check_before_work(RECIPES / "quickstart.yaml", ["finetune.train.max_steps=300"], get_plugins())
    assert warnings == ["finetune.restart.at_step: 300 is not before task xnli's last fine-tune step (300): its check "
                        "of a fine-tune still on its starting loss never runs; give a step under 300, or 0 to turn it "
                        "off"]  # once, though three strategies list the task
    for overrides in (["finetune.train.max_steps=301"], ["finetune.train.max_steps=300", "finetune.restart.at_step=0"],
                      ["finetune.train.max_steps=300", "stages=[pretrain, tokenizer, adapt]",
                       "adapt.restart.at_step=0"]):
        assert check_before_work(RECIPES / "quickstart.yaml", overrides, get_plugins())[1] == [], overrides


def test_an_adaptation_that_ends_before_its_basin_probe_is_warned_about_once_per_mini_strategy():
    from mmadapt.pipeline.checks import check_before_work
    from mmadapt.plugin_system.manager import get_plugins

    _, warnings = check_before_work(RECIPES / "quickstart.yaml", ["adapt.train.max_steps=200"], get_plugins())
    assert warnings == [f"adapt.restart.at_step: 200 is not before strategy {name}'s last adapt step (200): its probe "
                        "of embeddings that missed the big model's basin never runs; give a step under 200, or 0 to "
                        "turn it off" for name in ("minijoint", "minipost")]  # full adapts over the big model
    for overrides in (["adapt.train.max_steps=201"], ["adapt.train.max_steps=200", "adapt.restart.at_step=0"]):
        assert check_before_work(RECIPES / "quickstart.yaml", overrides, get_plugins())[1] == [], overrides


def test_a_strategy_that_declares_no_mini_layers_option_only_gets_a_warning_for_a_deep_k():
    from types import SimpleNamespace

    from mmadapt.pipeline.checks import layer_count_problems
    from mmadapt.plugin_system.manager import get_plugins

    class Registry(dict):
        get = dict.__getitem__

    plugins = SimpleNamespace(model_families=Registry(xlmr=object()),
                              strategies=Registry(other=SimpleNamespace(),
                                                  minijoint=get_plugins().strategies.get("minijoint")))
    cfg = OmegaConf.create({"model": {"family": "xlmr", "pretrained": None, "config": {"num_hidden_layers": 4}},
                            "strategy": {"name": "full"},
                            "strategies": [{"name": "other", "k": 4}, {"name": "minijoint", "k": 6}]})
    problems, warnings = layer_count_problems(cfg, plugins)
    assert [path for path, _ in problems] == ["strategies[1].k"] and [path for path, _ in warnings] == ["strategies[0].k"]
    assert warnings[0][1].startswith("4 is not below the big model's 4 layers (model.config.num_hidden_layers)")
