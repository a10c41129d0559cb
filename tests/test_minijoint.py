"""Strategy `minijoint`: two heads, where their gradients go, and what the stage writes."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import RECIPES, run_in_process, tiny_overrides
from minimodel_helpers import hidden_states, load_mlm, load_weights, mlm_batch, tiny_xlmr
from mmadapt.plugin_system.manager import get_plugins
from mmadapt.training.flops import mlm_forward_flops_per_token
from mmadapt.training.metrics import read_metrics
from mmadapt_plugins.minijoint import MiniJointObjective

TINY = RECIPES / "tiny_minijoint.yaml"
K = 2


def objective(layers: list[int], weight: float = 1.0, seed: int = 0) -> MiniJointObjective:
    family = get_plugins().model_families.get("xlmr")
    big = tiny_xlmr(seed=seed)
    return MiniJointObjective(family, big, family.new_lm_head(big), layers, weight)


@pytest.fixture(scope="module")
def minijoint_run(tiny_corpus, tmp_path_factory):
    """tiny_minijoint.yaml for 40 steps on the test corpus."""
    out = tmp_path_factory.mktemp("minijoint") / "run"
    cfg, result = run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=40", "train.lr=3e-3",
                                                      "train.warmup_steps=0"))
    return cfg, result, out / "pretrain"


def test_minijoint_writes_big_mini_and_a_manifest_with_counts_and_flops(minijoint_run):
    cfg, result, stage = minijoint_run
    assert result.outputs["pretrain"] == {"big": stage / "big", "mini": stage / "mini"}
    manifest = json.loads((stage / "manifest.json").read_text())
    big, mini = load_mlm(stage / "big"), load_mlm(stage / "mini")
    c = big.config
    assert (type(mini), mini.config.num_hidden_layers, mini.config.mmadapt_big_layers) == (type(big), K, [0, 1])
    assert manifest == {
        "strategy": "minijoint",
        "k": K,
        "layer_rule": {"name": "first_k", "options": {}},
        "big_num_layers": 4,
        "mini_layers": [{"mini_layer": 0, "big_layer": 0}, {"mini_layer": 1, "big_layer": 1}],
        "parameters": {"big": big.num_parameters(), "mini": mini.num_parameters(),
                       "mini_trainable": mini.num_parameters()},
        "flops_per_token": {
            "big": mlm_forward_flops_per_token(4, c.hidden_size, c.intermediate_size, c.vocab_size, 32),
            "mini": mlm_forward_flops_per_token(K, c.hidden_size, c.intermediate_size, c.vocab_size, 32),
        },
    }
    per_layer = sum(p.numel() for p in big.roberta.encoder.layer[0].parameters())
    assert manifest["parameters"]["big"] - manifest["parameters"]["mini"] == 2 * per_layer


def test_mini_hidden_state_after_its_layers_equals_the_big_models_bit_for_bit(minijoint_run):
    _, _, stage = minijoint_run
    big, mini = load_mlm(stage / "big"), load_mlm(stage / "mini")
    ids = torch.randint(5, big.config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0  # one padded row, so the attention mask takes part
    big_h, mini_h = hidden_states(big, ids, mask), hidden_states(mini, ids, mask)
    assert len(mini_h) == K + 1
    for i in range(K + 1):
        assert torch.equal(mini_h[i], big_h[i]), f"hidden state after layer {i} differs"


def test_the_mini_head_is_the_trained_secondary_head_tied_to_the_shared_embeddings(minijoint_run):
    _, _, stage = minijoint_run
    big, mini = load_weights(stage / "big"), load_weights(stage / "mini")
    assert torch.equal(mini["roberta.embeddings.word_embeddings.weight"], big["roberta.embeddings.word_embeddings.weight"])
    assert not torch.equal(mini["lm_head.dense.weight"], big["lm_head.dense.weight"])
    assert not torch.equal(mini["lm_head.bias"], big["lm_head.bias"])
    model = load_mlm(stage / "mini")
    assert model.lm_head.decoder.weight is model.roberta.embeddings.word_embeddings.weight


def test_both_minijoint_losses_fall_over_a_short_run(minijoint_run):
    _, _, stage = minijoint_run
    rows = [r for r in read_metrics(stage / "metrics.jsonl") if "mini_mlm_loss" in r]
    assert len(rows) == 40
    for name in ("mlm_loss", "mini_mlm_loss"):
        first = sum(r[name] for r in rows[:5]) / 5
        last = sum(r[name] for r in rows[-5:]) / 5
        assert last < first - 0.25, f"{name}: {first:.3f} -> {last:.3f}"
    for r in rows:
        assert r["loss"] == pytest.approx(r["mlm_loss"] + 1.0 * r["mini_mlm_loss"], rel=1e-5)


@pytest.mark.parametrize("layers", [[0, 1], [1, 3]], ids=["first_k", "every_nth"])
def test_secondary_head_gradient_reaches_only_the_embeddings_and_the_selected_layers(layers):
    obj = objective(layers)
    _, secondary = obj.head_losses(mlm_batch())
    secondary.backward()

    def moved(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in obj.big.roberta.embeddings.parameters())
    for i, layer in enumerate(obj.big.roberta.encoder.layer):
        assert moved(layer) == (i in layers), f"layer {i}"
    assert not moved(obj.big.lm_head.dense) and not moved(obj.big.lm_head.layer_norm) and obj.big.lm_head.bias.grad is None
    assert all(p.grad is not None for p in obj.head.parameters())


def test_first_k_secondary_head_reads_the_big_forward_instead_of_running_a_second_one():
    obj = objective([0, 1]).eval()
    calls = []
    obj.big.roberta.encoder.layer[0].register_forward_hook(lambda *a: calls.append(1))
    batch = mlm_batch()
    with torch.no_grad():
        top, secondary = obj.head_losses(batch)
        assert len(calls) == 1
        assert obj.reads_big_hidden_state
        # the same loss as running the mini-model on its own
        assert torch.equal(secondary, obj.mini(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss)


def test_minijoint_loss_is_top_plus_weight_times_secondary():
    obj = objective([0, 1], weight=0.25).eval()
    with torch.no_grad():
        out = obj(mlm_batch())
    assert torch.equal(out["loss"], out["mlm_loss"] + 0.25 * out["mini_mlm_loss"])
    assert out["mlm_loss"] != out["mini_mlm_loss"]


def test_minijoint_continues_an_earlier_minijoint_model_with_its_second_head(minijoint_run, tiny_corpus, tmp_path):
    _, _, stage = minijoint_run
    out = tmp_path / "again"
    # no step: the weights it starts from must come out unchanged, so they are the loaded ones (a learning
    # rate of 0, which this test used before, is refused as a recipe value)
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=0",
                                        f"model.pretrained={stage.parent}"))
    before, after = load_weights(stage / "big"), load_weights(out / "pretrain" / "big")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the mini-model, its second head included, is the earlier one: an earlier MiniJoint model continues whole
    earlier, mini = load_weights(stage / "mini"), load_weights(out / "pretrain" / "mini")
    assert earlier.keys() == mini.keys() and any(key.startswith("lm_head.dense") for key in mini)
    assert all(torch.equal(earlier[k], mini[k]) for k in earlier)


def test_minijoint_over_other_layers_than_the_earlier_model_trains_a_fresh_second_head(minijoint_run, tiny_corpus,
                                                                                      tmp_path, capsys):
    _, _, stage = minijoint_run
    out = tmp_path / "other_k"
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=0", "strategy.k=1",
                                        f"model.pretrained={stage.parent}"))
    assert "has a secondary head over layers [1, 2], not [1]: a fresh head is trained" in capsys.readouterr().out
    earlier, mini = load_weights(stage / "mini"), load_weights(out / "pretrain" / "mini")
    assert not torch.equal(earlier["lm_head.dense.weight"], mini["lm_head.dense.weight"])
