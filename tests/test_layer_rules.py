"""Layer-selection rules: the built-ins, their recipe options, and a third-party rule in a recipe."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from conftest import RECIPES, run_in_process, tiny_overrides
from minimodel_helpers import hidden_states, load_mlm
from mmadapt.api import load_recipe
from mmadapt.errors import MmadaptError, RecipeError
from mmadapt.model.minimodel import select_layers
from mmadapt.plugin_system.hookspecs import hookimpl
from mmadapt.plugin_system.interfaces import LayerRule
from mmadapt.plugin_system.manager import build_plugins, get_plugins

TINY = RECIPES / "tiny_minijoint.yaml"


def rule_section(name: str, **options) -> dict:
    return {"name": name, **options}


class _Options:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_first_k_takes_the_bottom_k_layers():
    assert select_layers(get_plugins(), 24, 4, rule_section("first_k")) == [0, 1, 2, 3]


def test_every_nth_takes_every_nth_layer_from_the_bottom():
    rule = get_plugins().layer_rules.get("every_nth")
    assert rule.select(4, 2, _Options(n=2)) == [1, 3]
    assert rule.select(24, 4, _Options(n=6)) == [5, 11, 17, 23]
    assert rule.select(24, 4, _Options(n=1)) == [0, 1, 2, 3]
    with pytest.raises(MmadaptError, match="needs 12 layers but the big model has 4"):
        rule.select(4, 4, _Options(n=3))


def test_k_outside_the_model_and_a_malformed_rule_result_are_errors():
    plugins = get_plugins()
    with pytest.raises(MmadaptError, match="strategy.k is 5 but the big model has 4 layers"):
        select_layers(plugins, 4, 5, rule_section("first_k"))

    class Backwards(LayerRule):
        def select(self, num_layers, k, options):
            return [num_layers - 1 - i for i in range(k)]

    class Plugin:
        @hookimpl
        def mmadapt_register_layer_rules(self, registry):
            registry.add("backwards", Backwards())

    with pytest.raises(MmadaptError, match=r"returned \[3, 2\].*2 increasing layer indices"):
        select_layers(build_plugins(extra=[Plugin()]), 4, 2, rule_section("backwards"))


def test_layer_rule_names_and_options_are_validated_with_the_recipe(tmp_path):
    with pytest.raises(RecipeError) as err:
        load_recipe(TINY, ["strategy.layer_rule.name=frist_k"])
    assert "strategy.layer_rule.name" in str(err.value) and "did you mean 'first_k'" in str(err.value)
    with pytest.raises(RecipeError) as err:
        load_recipe(TINY, ["strategy.layer_rule.name=every_nth", "strategy.layer_rule.m=3", "strategy.layer_rule.n=x"])
    problems = dict(err.value.problems)
    assert problems["strategy.layer_rule.m"] == "unknown key; valid keys: name, n"
    assert "expected int" in problems["strategy.layer_rule.n"]
    cfg = load_recipe(TINY, ["strategy.layer_rule.name=every_nth"])
    assert cfg.strategy.layer_rule.n == 2  # the rule's default joins the resolved recipe


def test_every_nth_mini_model_equals_the_big_models_selected_layers_applied_in_turn(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=3", "strategy.layer_rule.name=every_nth"))
    stage = out / "pretrain"
    manifest = json.loads((stage / "manifest.json").read_text())
    assert [m["big_layer"] for m in manifest["mini_layers"]] == [1, 3]
    assert manifest["layer_rule"] == {"name": "every_nth", "options": {"n": 2}}
    big, mini = load_mlm(stage / "big"), load_mlm(stage / "mini")
    ids = torch.randint(5, big.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(3))
    mini_h = hidden_states(mini, ids)
    with torch.no_grad():
        h = big.roberta.embeddings(input_ids=ids)
        assert torch.equal(mini_h[0], h)
        for i, j in enumerate([1, 3]):
            h = big.roberta.encoder.layer[j](h)
            h = h[0] if isinstance(h, tuple) else h
            assert torch.equal(mini_h[i + 1], h), f"mini layer {i} (big layer {j})"


class TopK(LayerRule):
    """A third-party rule: the top k layers, optionally skipping some at the very top."""

    @dataclass
    class Options:
        skip_top: int = 0

    description = "the top k layers below skip_top"
    calls: list = []

    def select(self, num_layers, k, options):
        self.calls.append((num_layers, k, options.name, options.skip_top))
        top = num_layers - options.skip_top
        return list(range(top - k, top))


class ThirdPartyRules:
    """What a third-party package's plugin module holds (here an object, registered in the test)."""

    @hookimpl
    def mmadapt_register_layer_rules(self, registry):
        registry.add("top_k", TopK())


def test_a_third_party_layer_rule_is_validated_and_used_by_a_recipe(tiny_corpus, tmp_path):
    plugins = build_plugins(extra=[ThirdPartyRules()])
    assert {"first_k", "every_nth", "top_k"} <= set(plugins.layer_rules.names())
    with pytest.raises(RecipeError, match="strategy.layer_rule.skip_tpo"):
        load_recipe(TINY, ["strategy.layer_rule.name=top_k", "strategy.layer_rule.skip_tpo=1"], plugins)
    out = tmp_path / "run"
    TopK.calls.clear()
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=2", "strategy.layer_rule.name=top_k",
                                        "strategy.layer_rule.skip_top=1"), plugins)
    assert set(TopK.calls) == {(4, 2, "top_k", 1)}  # pretraining, and the FLOP model of its record
    manifest = json.loads((out / "pretrain" / "manifest.json").read_text())
    assert manifest["layer_rule"] == {"name": "top_k", "options": {"skip_top": 1}}
    assert [m["big_layer"] for m in manifest["mini_layers"]] == [1, 2]
    assert load_mlm(out / "pretrain" / "mini").config.mmadapt_big_layers == [1, 2]


def test_plugins_command_lists_the_strategies_and_both_layer_rules():
    from typer.testing import CliRunner

    from mmadapt.cli import app

    result = CliRunner().invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "strategies: full" in result.output
    assert "strategies: minijoint" in result.output and "strategies: minipost" in result.output
    assert "layer_rules: every_nth, first_k" in result.output
