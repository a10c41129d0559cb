"""Plugins: entry-point discovery, third-party registration, hard errors, documented hooks."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pluggy
import pytest
import torch

from conftest import RECIPES, clean_env, mmadapt_command, run_in_process, tiny_overrides
from mmadapt.errors import PluginError
from mmadapt.plugin_system import hookspecs
from mmadapt.plugin_system.hookspecs import hookimpl
from mmadapt.plugin_system.interfaces import Strategy
from mmadapt.plugin_system.manager import REGISTRY_HOOKS, build_plugins

THIRD_PARTY = '''
"""A throwaway third-party mmadapt plugin: MLM with the embeddings frozen."""
import json
from dataclasses import dataclass

from mmadapt.api import (MaskedLMObjective, Strategy, Trainer, build_model, hookimpl, load_tokenizer, mlm_datasets,
                         save_pretrained_atomic, trainable_parameters)


@dataclass
class BodyOnlyOptions:
    note: str = "none"


class BodyOnly(Strategy):
    Options = BodyOnlyOptions
    description = "MLM with frozen embeddings"

    def pretrain(self, ctx):
        tokenizer = load_tokenizer(ctx)
        model = build_model(ctx, tokenizer)
        model.get_input_embeddings().weight.requires_grad_(False)
        train_set, _ = mlm_datasets(ctx, tokenizer)
        objective = MaskedLMObjective(model)
        Trainer(ctx, objective, trainable_parameters(objective), train_set).train()
        (ctx.stage_dir / "note.json").write_text(json.dumps({"note": ctx.cfg.strategy.note}))
        return {"big": save_pretrained_atomic(model, ctx.stage_dir / "big", ctx.dist, tokenizer)}


@hookimpl
def mmadapt_register_strategies(registry):
    registry.add("body_only", BodyOnly())
'''


def install_plugin(tmp_path, monkeypatch, module: str, code: str, entry: str, version: str):
    """A plugin module plus dist-info metadata declaring it in the `mmadapt` entry-point group as `entry`."""
    (tmp_path / f"{module}.py").write_text(code)
    info = tmp_path / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[mmadapt]\n{entry} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.fixture
def third_party_dist(tmp_path, monkeypatch):
    """A strategy plugin package declared in the `mmadapt` entry-point group."""
    install_plugin(tmp_path, monkeypatch, "mmadapt_body_only", THIRD_PARTY, "body_only", "0.1")
    yield tmp_path
    sys.modules.pop("mmadapt_body_only", None)


def test_builtins_are_listed_from_the_entry_point_group():
    out = subprocess.run(mmadapt_command() + ["plugins"], capture_output=True, text=True, env=clean_env(), check=True)
    assert "full  (package: mmadapt" in out.stdout
    assert "strategies: full" in out.stdout
    assert "model_families: roberta, xlmr" in out.stdout


def test_a_third_party_strategy_from_entry_point_metadata_runs_from_a_recipe(third_party_dist, tiny_corpus, tmp_path):
    plugins = build_plugins()
    assert "body_only" in plugins.strategies
    info = {i.name: i for i in plugins.describe()}["body_only"]
    assert (info.package, info.version) == ("mmadapt-body-only", "0.1")
    out = tmp_path / "run"
    cfg, result = run_in_process(RECIPES / "tiny_full.yaml",
                                 tiny_overrides(tiny_corpus, out, "strategy.name=body_only", "strategy.note=hello"),
                                 plugins)
    assert cfg.strategy.note == "hello"
    assert (out / "pretrain" / "note.json").read_text() == '{"note": "hello"}'
    assert (result.outputs["pretrain"]["big"] / "config.json").is_file()


def test_the_cli_lists_a_third_party_plugin_with_its_package(third_party_dist):
    env = clean_env(PYTHONPATH=str(third_party_dist))
    out = subprocess.run(mmadapt_command() + ["plugins"], capture_output=True, text=True, env=env, check=True)
    assert "body_only  (package: mmadapt-body-only 0.1)" in out.stdout
    assert "strategies: body_only" in out.stdout


def test_a_plugin_option_typo_is_reported_with_its_dotted_path(third_party_dist, tmp_path):
    from mmadapt.errors import RecipeError
    from mmadapt.api import load_recipe

    with pytest.raises(RecipeError, match=r"strategy.nte: unknown key \(did you mean 'note'\?\)"):
        load_recipe(RECIPES / "tiny_full.yaml", ["strategy.name=body_only", "strategy.nte=x"], build_plugins())


def test_a_plugin_that_fails_to_import_is_a_hard_error_naming_it(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin.py").write_text("import does_not_exist_anywhere\n")
    info = tmp_path / "broken_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mmadapt]\nbroken = broken_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"plugin 'broken' \(broken_plugin, from broken-plugin\) failed to import"):
        build_plugins()


def test_an_initialiser_written_for_the_seven_argument_initialise_fails_at_import_naming_the_fix(tmp_path, monkeypatch):
    old = THIRD_PARTY_INIT.replace("def initialise(self, inputs):", "def initialise(self, new_tokenizer, source_tokenizer, "
                                                                    "source_weight, config, generator, options, inputs):")
    assert old != THIRD_PARTY_INIT
    install_plugin(tmp_path, monkeypatch, "mmadapt_old_init", old, "old_init", "0.1")
    try:
        with pytest.raises(PluginError, match=r"plugin 'old_init' .*failed to import.*ConstantInit\.initialise\(new_tokenizer"
                                              r".*write `def initialise\(self, inputs\)`"):
            build_plugins()
    finally:
        sys.modules.pop("mmadapt_old_init", None)


def test_a_hook_implementation_without_a_spec_is_an_error():
    class Misspelt:
        @hookimpl
        def mmadapt_register_stratgies(self, registry):
            pass

    with pytest.raises(PluginError, match="mmadapt_register_stratgies"):
        build_plugins([Misspelt()])


def test_a_name_registered_twice_names_both_plugins():
    class Again:
        @hookimpl
        def mmadapt_register_strategies(self, registry):
            registry.add("full", Strategy())

    plugins = build_plugins([Again()])
    with pytest.raises(PluginError, match="strategy 'full' is registered by both plugin"):
        plugins.strategies


def test_an_unknown_name_lists_the_available_ones():
    with pytest.raises(PluginError, match=r"unknown strategy 'fulll' \(did you mean 'full'\?\); available: .*full"):
        build_plugins().strategies.get("fulll")


def test_every_hook_is_documented_and_every_registry_hook_is_wired():
    specs = {name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("mmadapt_")}
    for name in specs:
        assert inspect.getdoc(getattr(hookspecs, name)), f"{name} has no docstring"
    registry_hooks = {hook for hook, _ in REGISTRY_HOOKS.values()}
    assert registry_hooks <= specs
    assert specs - registry_hooks == {"mmadapt_stage_finished"}


def test_the_stage_finished_hook_fires_after_pretraining_with_its_measured_metrics(tiny_corpus, tmp_path):
    seen = []

    class Listener:
        @hookimpl
        def mmadapt_stage_finished(self, stage, output_dir, metrics):
            seen.append((stage, output_dir, metrics))

    out = tmp_path / "run"
    run_in_process(RECIPES / "tiny_full.yaml", tiny_overrides(tiny_corpus, out), build_plugins([Listener()]))
    [(stage, output_dir, metrics)] = seen
    assert (stage, output_dir) == ("pretrain", str(out / "pretrain"))
    assert metrics["steps"] > 0 and metrics["tokens"] > 0 and metrics["flops"] > 0
    # a re-run finds the stage complete: nothing ran, nothing fires
    run_in_process(RECIPES / "tiny_full.yaml", tiny_overrides(tiny_corpus, out), build_plugins([Listener()]))
    assert len(seen) == 1


def test_the_hook_markers_use_the_mmadapt_project_name():
    assert isinstance(hookimpl, pluggy.HookimplMarker) and hookimpl.project_name == "mmadapt"


THIRD_PARTY_INIT = '''
"""A throwaway third-party embedding initialiser: every token at `value`, its cost booked."""
from dataclasses import dataclass

import torch

from mmadapt.api import EmbeddingInit, hookimpl

BOOKED = 10**9


class ConstantInit(EmbeddingInit):
    @dataclass
    class Options:
        value: float = 0.0

    description = "every coordinate of every token at `value`"
    reads_corpora = True

    def initialise(self, inputs):
        assert next(iter(inputs.new_documents())).strip() and next(iter(inputs.source_documents())).strip()
        inputs.spend(BOOKED, "constant")
        return torch.full((len(inputs.new_tokenizer), inputs.source_weight.shape[1]), inputs.options.value)


@hookimpl
def mmadapt_register_embedding_inits(registry):
    registry.add("constant", ConstantInit())
'''


@pytest.fixture
def third_party_init(tmp_path, monkeypatch):
    """An embedding-initialiser package declared in the `mmadapt` entry-point group."""
    install_plugin(tmp_path, monkeypatch, "mmadapt_constant_init", THIRD_PARTY_INIT, "constant_init", "0.2")
    yield tmp_path
    sys.modules.pop("mmadapt_constant_init", None)


def test_a_third_party_initialiser_from_entry_point_metadata_is_registered_with_its_options(third_party_init):
    from mmadapt.errors import RecipeError
    from mmadapt.api import load_recipe

    plugins = build_plugins()
    assert "constant" in plugins.embedding_inits.names()
    info = {i.name: i for i in plugins.describe()}["constant_init"]
    assert (info.package, info.version) == ("mmadapt-constant-init", "0.2")
    cfg = load_recipe(RECIPES / "quickstart.yaml", ["adapt.init={name: constant, value: 0.5}"], plugins)
    assert cfg.adapt.init.value == 0.5
    with pytest.raises(RecipeError, match=r"adapt.init.valeu: unknown key \(did you mean 'value'\?\)"):
        load_recipe(RECIPES / "quickstart.yaml", ["adapt.init.name=constant", "adapt.init.valeu=1"], plugins)


@pytest.mark.slow
def test_a_third_party_initialisers_embeddings_and_booked_cost_reach_the_adapt_stage_and_the_curve(
        third_party_init, tmp_path):
    from safetensors.torch import load_file

    from test_pipeline_transfer import QUICKSTART, SHRINK

    out = tmp_path / "run"
    _, result = run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK, "adapt.init={name: constant, value: 0.25}",
                                            "strategies=[{name: full}]", "languages={vo: {corpus: [synth:vo]}}",
                                            "tasks.0.languages=[src, vo]"], build_plugins())
    [row] = result.rows
    initial = load_file(out / "full" / "adapt" / "vo" / "embeddings_init.safetensors")["word_embeddings"]
    assert torch.equal(initial, torch.full_like(initial, 0.25))
    booked = sys.modules["mmadapt_constant_init"].BOOKED
    spent = row["stage_metrics"]["adapt"]
    assert row["adapt_init_flops"] == spent["init_flops"] == booked and spent["init_flops_parts"] == {"constant": booked}
    per_step = (row["adapt_flops"] - booked) / row["adapt_steps"]
    assert per_step > 0 and row["adapt_seconds"] >= spent["init_seconds"]
    # step 0 is the initial embeddings at the initialiser's cost; every later point adds the training after it
    spent_keys = ("step", "adapt_flops", "adapt_seconds", "target_score")  # besides the collapse check's losses
    assert {k: row["curve"][0][k] for k in spent_keys} == {"step": 0, "adapt_flops": booked,
                                                         "adapt_seconds": spent["init_seconds"],
                                                         "target_score": row["control_score"]}
    for point in row["curve"][1:]:
        assert point["adapt_flops"] == pytest.approx(booked + per_step * point["step"], abs=1)
