"""The command line itself: `mmadapt data synth`, and usage errors without tracebacks."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import REPO, RECIPES, clean_env, mmadapt_command
from mmadapt.synth import generate_benchmark


def mmadapt(*args):
    return subprocess.run(mmadapt_command() + [str(a) for a in args], capture_output=True, text=True, env=clean_env())


def test_data_synth_writes_the_benchmark_the_generator_writes(tmp_path):
    sizes = dict(corpus_sentences=200, nli_train=30, nli_dev=9, nli_test=9, pawsx_train=20, pawsx_dev=6,
                 pawsx_test=6, qa_train=10, qa_dev=4, qa_test=4)
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in sizes.items()]
    out = mmadapt("data", "synth", tmp_path / "cli", "--seed", "3", "--languages", "src,na", *flags)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "cli" / "manifest.json") in out.stdout
    direct = generate_benchmark(tmp_path / "direct", seed=3, languages=["src", "na"], **sizes)
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest == json.loads(direct.manifest.read_text())
    for rel in ("corpus/na.txt", "multinli_1.0/multinli_1.0_train.jsonl", "XNLI-1.0/xnli.test.tsv",
                "paws-x/train.tsv", "squad/train-v1.1.json"):
        assert (tmp_path / "cli" / rel).read_bytes() == (direct.root / rel).read_bytes(), rel


def test_data_synth_names_an_unknown_language_in_one_line(tmp_path):
    out = mmadapt("data", "synth", tmp_path / "x", "--languages", "src,zz")
    assert out.returncode == 2
    assert "unknown synthetic language 'zz'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x").exists()


def test_an_unknown_command_is_a_usage_error_not_a_traceback():
    out = mmadapt("trian", "recipes/quickstart.yaml")
    assert out.returncode == 2
    assert "No such command 'trian'" in out.stderr and "Traceback" not in out.stderr


def test_version_and_h_print_without_a_traceback():
    from importlib.metadata import version

    out = mmadapt("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"mmadapt {version('mmadapt')}"
    for command in (["-h"], ["train", "-h"], ["recipe", "validate", "-h"], ["data", "synth", "-h"]):
        out = mmadapt(*command)
        assert out.returncode == 0 and "Usage: mmadapt" in out.stdout and "Traceback" not in out.stderr, command


def test_an_override_may_use_a_variable_another_override_sets(tmp_path):
    out = mmadapt("recipe", "show", RECIPES / "tiny_full.yaml", "output_dir=${variables.data}/runs",
                  f"variables.data={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert f"output_dir: {tmp_path}/runs" in out.stdout.splitlines()


@pytest.mark.parametrize("override, line", [
    ("output_dir=${variables.nope}", "  output_dir: Interpolation key 'variables.nope' not found"),
    ("tasks.5.max_length=1", "  tasks.5.max_length: tasks has 2 item(s) in the recipe file (index 0 to 1): no item 5"),
    ("data.train.3=x", "  data.train.3: data.train has 1 item(s) in the recipe file (index 0 to 0): no item 3"),
])
def test_a_bad_override_is_a_recipe_problem_not_a_traceback(override, line):
    out = mmadapt("recipe", "show", RECIPES / "quickstart_tasks.yaml", override)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines() == ["error: 1 problem(s) in " + str(RECIPES / "quickstart_tasks.yaml") + ":", line]


def test_a_list_item_override_sets_that_item_only():
    from mmadapt.recipe import load_recipe

    cfg = load_recipe(RECIPES / "quickstart_tasks.yaml", ["tasks.1.max_length=24"])
    base = load_recipe(RECIPES / "quickstart_tasks.yaml")
    assert [t.max_length for t in cfg.tasks] == [base.tasks[0].max_length, 24]


@pytest.mark.parametrize("command", [["recipe", "show"], ["recipe", "validate"], ["compute"]])
def test_show_validate_and_compute_refuse_a_block_size_train_refuses(command):
    out = mmadapt(*command, RECIPES / "tiny_full.yaml", "data.block_size=1000")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ("data.block_size: 1000 + 2 positions exceed the model's 130 (model.config.max_position_embeddings); "
            "the allowed range is 1 to 128") in out.stderr
    assert out.stdout == ""


def test_validate_takes_overrides_and_names_missing_task_files_and_model(tmp_path):
    out = mmadapt("recipe", "validate", RECIPES / "xlmr_base_compare.yaml", f"variables.data={tmp_path}")
    assert out.returncode == 0 and out.stdout.strip() == f"ok: {RECIPES / 'xlmr_base_compare.yaml'}"
    warnings = out.stderr.splitlines()
    assert (f"warning: {RECIPES / 'xlmr_base_compare.yaml'}: tasks[0] (train, en): "
            f"{tmp_path}/multinli_1.0/multinli_1.0_train.jsonl: no such file or directory here (train needs it)") in warnings
    assert any(f"model.pretrained: {tmp_path}/xlm-roberta-base: no such directory, nor a model in the local hub cache"
               in line for line in warnings)


def test_train_refuses_a_missing_task_file_before_any_work(tmp_path):
    out = mmadapt("train", RECIPES / "quickstart_tasks.yaml", f"output_dir={tmp_path / 'run'}",
                  f"tasks.0.train_file={tmp_path / 'none.jsonl'}")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"  tasks[0] (train, src): {tmp_path / 'none.jsonl'}: no such file or directory" in out.stderr.splitlines()
    assert not (tmp_path / "run").exists()


def test_the_readmes_deletion_example_is_accepted():
    readme = (REPO / "README.md").read_text()
    example = next(line for line in readme.splitlines() if "~key deletes a key" in line)
    args = example.split("#")[0].split()[2:]  # `mmadapt train RECIPE ...`
    from mmadapt.recipe import load_recipe

    cfg = load_recipe(REPO / args[0], args[1:])
    assert cfg is not None


@pytest.mark.parametrize("recipe", ["quickstart.yaml", "quickstart_tasks.yaml", "xlmr_base_compare.yaml"])
def test_smoke_caps_every_stage_of_every_strategy_and_task(recipe, tmp_path):
    from mmadapt.pipeline.plan import plan_runs
    from mmadapt.recipe import load_recipe
    from mmadapt.recipe.smoke import smoke_overrides

    given = [f"variables.data={tmp_path}", f"output_dir={tmp_path / 'run'}"]
    full_size = load_recipe(RECIPES / recipe, given)
    cfg = load_recipe(RECIPES / recipe, given + smoke_overrides(full_size, 2))
    assert cfg.output_dir == f"{tmp_path / 'run'}-smoke"
    assert cfg.adapt.big_model_steps <= 2 and cfg.adapt.snapshot_every <= 2
    for run, before in zip(plan_runs(cfg), plan_runs(full_size)):
        stages = [run.pretrain_cfg, run.adapt_cfg, *run.finetune_cfgs.values()]
        unsmoked = [before.pretrain_cfg, before.adapt_cfg, *before.finetune_cfgs.values()]
        # every stage takes at most 2 steps; one the recipe gives 0 steps (the quickstart's shipped model) keeps 0
        assert [stage.train.max_steps for stage in stages] == [min(2, s.train.max_steps) for s in unsmoked], run.name
        assert all(stage.train.warmup_steps <= 2 for stage in stages), run.name


@pytest.mark.slow  # a whole run in a child process
def test_train_smoke_runs_two_steps_into_its_own_directory(tmp_path):
    from conftest import tiny_overrides, write_corpus

    corpus = write_corpus(tmp_path / "c.txt", lines=400)
    out = tmp_path / "run"
    proc = mmadapt("train", RECIPES / "tiny_full.yaml", *tiny_overrides(corpus, out), "--smoke")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"smoke run: every stage capped at 2 steps, into {out}-smoke (train.max_steps=2 train.warmup_steps=2)" in proc.stdout
    summary = json.loads((tmp_path / "run-smoke" / "pretrain" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and not out.exists()
