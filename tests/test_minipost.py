"""Strategy `minipost`: frozen lower layers stay bit-identical, new layers and head train."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import RECIPES, run_in_process, tiny_overrides
from minimodel_helpers import hidden_states, load_mlm, load_weights, tiny_xlmr
from mmadapt.errors import MmadaptError
from mmadapt.pipeline.building_blocks import resolve_pretrained
from mmadapt.plugin_system.manager import get_plugins
from mmadapt_plugins.minipost import build_minipost_model

TINY = RECIPES / "tiny_minipost.yaml"
K, NEW = 2, 2


def xlmr():
    return get_plugins().model_families.get("xlmr")


@pytest.fixture(scope="module")
def big_run(tiny_corpus, tmp_path_factory):
    """A tiny big model trained by `full`, as recipes/tiny_minipost.yaml expects one."""
    out = tmp_path_factory.mktemp("full") / "run"
    run_in_process(RECIPES / "tiny_full.yaml", tiny_overrides(tiny_corpus, out))
    return out


@pytest.fixture(scope="module")
def minipost_run(big_run, tiny_corpus, tmp_path_factory):
    """tiny_minipost.yaml over `big_run` (given as its run directory), new layers copied."""
    out = tmp_path_factory.mktemp("minipost") / "run"
    cfg, result = run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=15", "train.warmup_steps=0",
                                                      f"model.pretrained={big_run}", "strategy.new_layer_init=copy_next"))
    return result, out / "pretrain"


def test_minipost_writes_big_mini_and_a_manifest(minipost_run, big_run):
    result, stage = minipost_run
    assert result.outputs["pretrain"] == {"big": stage / "big", "mini": stage / "mini"}
    manifest = json.loads((stage / "manifest.json").read_text())
    source, big, mini = load_weights(big_run / "pretrain" / "big"), load_weights(stage / "big"), load_mlm(stage / "mini")
    assert source.keys() == big.keys() and all(torch.equal(source[k], big[k]) for k in source)
    assert (mini.config.num_hidden_layers, mini.config.mmadapt_big_layers) == (K + NEW, [0, 1, None, None])
    assert manifest["strategy"] == "minipost" and manifest["k"] == K and manifest["big_num_layers"] == 4
    assert manifest["layer_rule"] == {"name": "first_k", "options": {}}
    assert manifest["mini_layers"] == [{"mini_layer": 0, "big_layer": 0}, {"mini_layer": 1, "big_layer": 1},
                                       {"mini_layer": 2, "big_layer": None}, {"mini_layer": 3, "big_layer": None}]
    new = sum(p.numel() for i in range(K, K + NEW) for p in mini.roberta.encoder.layer[i].parameters())
    head = sum(p.numel() for n, p in mini.lm_head.named_parameters() if n != "decoder.weight")
    assert manifest["parameters"] == {"big": load_mlm(stage / "big").num_parameters(), "mini": mini.num_parameters(),
                                      "mini_trainable": new + head}
    assert manifest["flops_per_token"]["mini"] == manifest["flops_per_token"]["big"]  # 2 + 2 layers == 4 layers


def test_minipost_mini_hidden_state_after_its_frozen_layers_equals_the_big_models_bit_for_bit(minipost_run, big_run):
    _, stage = minipost_run
    big, mini = load_mlm(big_run / "pretrain" / "big"), load_mlm(stage / "mini")
    ids = torch.randint(5, big.config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[2, 9:] = 0
    big_h, mini_h = hidden_states(big, ids, mask), hidden_states(mini, ids, mask)
    for i in range(K + 1):
        assert torch.equal(mini_h[i], big_h[i]), f"hidden state after layer {i} differs"
    assert not torch.equal(mini_h[K + 1], big_h[K + 1])  # the copied layer above has trained


def test_minipost_training_leaves_every_frozen_parameter_unchanged_and_moves_every_new_one(minipost_run, big_run):
    _, stage = minipost_run
    big, mini = load_weights(big_run / "pretrain" / "big"), load_weights(stage / "mini")
    frozen = [n for n in mini if n.startswith("roberta.embeddings.")
              or any(n.startswith(f"roberta.encoder.layer.{i}.") for i in range(K))]
    new = [n for n in mini if n not in frozen and n != "lm_head.decoder.weight"]
    # head: bias (saved twice, also as decoder.bias), dense and layer_norm weight + bias
    assert len(frozen) == 5 + 16 * K and len(new) == 16 * NEW + 6
    for name in frozen:
        assert torch.equal(mini[name], big[name]), f"frozen {name} changed"
    for name in new:
        # copy_next: new layer K+j started as big layer K+j; the head started as the big head
        assert not torch.equal(mini[name], big[name]), f"new {name} did not move"


def test_new_layers_are_fresh_or_copies_of_the_next_big_layers_and_only_they_and_the_head_train():
    family = xlmr()
    big = tiny_xlmr()
    state = {k: v.clone() for k, v in big.state_dict().items()}
    copied = build_minipost_model(family, big, [0, 1], 2, "copy_next")
    for i, j in ((2, 2), (3, 3)):
        for (n, p), q in zip(copied.roberta.encoder.layer[i].named_parameters(), big.roberta.encoder.layer[j].parameters()):
            assert torch.equal(p, q) and p is not q, n
    assert torch.equal(copied.lm_head.dense.weight, big.lm_head.dense.weight)
    assert copied.lm_head.dense.weight is not big.lm_head.dense.weight
    assert copied.lm_head.decoder.weight is big.roberta.embeddings.word_embeddings.weight
    assert copied.roberta.encoder.layer[0] is big.roberta.encoder.layer[0]
    trainable = {n for n, p in copied.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in copied.named_parameters()
                         if n.startswith(("roberta.encoder.layer.2.", "roberta.encoder.layer.3.", "lm_head."))
                         and n != "lm_head.decoder.weight"}

    fresh = build_minipost_model(family, tiny_xlmr(), [0, 1], 2, "random")
    query = fresh.roberta.encoder.layer[2].attention.self.query
    assert not torch.equal(query.weight, state["roberta.encoder.layer.2.attention.self.query.weight"])
    assert query.weight.std().item() == pytest.approx(0.02, rel=0.2)  # the model's own init
    assert torch.equal(query.bias, torch.zeros_like(query.bias))


def test_copy_next_past_the_top_layer_is_an_error():
    with pytest.raises(MmadaptError, match="copies big-model layers 3..4"):
        build_minipost_model(xlmr(), tiny_xlmr(), [0, 1, 2], 2, "copy_next")


def test_minipost_without_a_pretrained_model_says_what_to_set(tiny_corpus, tmp_path):
    with pytest.raises(MmadaptError, match="set model.pretrained"):
        run_in_process(TINY, tiny_overrides(tiny_corpus, tmp_path / "run", "~model.pretrained"))


def test_model_pretrained_may_name_a_run_or_its_pretrain_stage(big_run, tmp_path):
    big = str(big_run / "pretrain" / "big")
    assert resolve_pretrained(str(big_run)) == big
    assert resolve_pretrained(str(big_run / "pretrain")) == big
    assert resolve_pretrained(big) == big
    assert resolve_pretrained("xlm-roberta-large") == "xlm-roberta-large"
    (tmp_path / "recipe.yaml").write_text("output_dir: x\n")
    with pytest.raises(MmadaptError, match="without a finished pretraining stage"):
        resolve_pretrained(str(tmp_path))


def test_distillation_scores_zero_for_a_mini_model_that_is_the_big_model_and_pulls_new_layers_towards_it():
    from mmadapt_plugins.minipost import DistilledMLMObjective

    from minimodel_helpers import mlm_batch

    family = xlmr()
    big = tiny_xlmr().eval()
    same = build_minipost_model(family, big, [0, 1], 2, "copy_next").eval()  # the big model's own 4 layers
    losses = DistilledMLMObjective(same, big, weight=1.0)(mlm_batch())
    assert losses["distill_loss"].item() == pytest.approx(0.0, abs=1e-10)
    assert losses["loss"].item() == pytest.approx(losses["mlm_loss"].item(), rel=1e-6)

    with torch.no_grad():  # upper layers that really transform their input, unlike a fresh init's
        for p in (*big.roberta.encoder.layer[2].parameters(), *big.roberta.encoder.layer[3].parameters()):
            p.normal_(0, 0.3)
    fresh = build_minipost_model(family, big, [0, 1], 1, "random").eval()
    objective = DistilledMLMObjective(fresh, big, weight=10.0)
    optimiser = torch.optim.Adam([p for p in fresh.parameters() if p.requires_grad], lr=3e-3)
    before = objective(mlm_batch(seed=1))["distill_loss"].item()
    for step in range(30):
        optimiser.zero_grad()
        objective(mlm_batch(seed=step))["loss"].backward()
        optimiser.step()
    assert objective(mlm_batch(seed=1))["distill_loss"].item() < 0.5 * before


def test_distillation_adds_the_teachers_forward_to_predicted_pretraining_compute():
    from omegaconf import OmegaConf

    from mmadapt.training.flops import ModelShape
    from mmadapt_plugins.minipost import MiniPostStrategy

    plugins, strategy = get_plugins(), MiniPostStrategy()
    big = ModelShape(hidden_size=64, intermediate_size=256, num_layers=6, vocab_size=400)
    def options(**values):
        return OmegaConf.structured(MiniPostStrategy.Options(**values))

    plain = strategy.predict_compute(options(k=2, new_layers=1), big, 32, 0.15, plugins)
    taught = strategy.predict_compute(options(k=2, new_layers=1, distill=1.0), big, 32, 0.15, plugins)
    teacher_forward = 6 * (2 * (4 * 64 * 64 + 2 * 64 * 256) + 4 * 32 * 64)
    assert taught.pretrain.total - plain.pretrain.total == pytest.approx(teacher_forward)
    assert taught.pretrain.backward == plain.pretrain.backward


def test_a_minipost_run_continuing_an_earlier_one_without_steps_keeps_its_mini_model_bit_for_bit(
        minipost_run, big_run, tiny_corpus, tmp_path):
    _, earlier = minipost_run
    out = tmp_path / "run"
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=0", f"model.pretrained={big_run}",
                                        f"strategy.continue_from={earlier.parent}"))
    before, after = load_weights(earlier / "mini"), load_weights(out / "pretrain" / "mini")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    fresh = load_weights(big_run / "pretrain" / "big")
    assert not torch.equal(after["lm_head.dense.weight"], fresh["lm_head.dense.weight"])  # the trained head came


def test_an_unset_plugin_option_stays_out_of_the_pretrain_fingerprint_so_earlier_runs_stay_complete(minipost_run):
    _, stage = minipost_run
    strategy = json.loads((stage / "stage_complete.json").read_text())["settings"]["strategy"]
    assert "continue_from" not in strategy and strategy["new_layers"] == NEW
    assert strategy["reuse"] is None and strategy["init_from"] is None  # the section's own keys always count


def test_continuing_a_mini_model_of_other_layers_or_no_mini_model_is_refused_naming_the_option(
        minipost_run, big_run, tiny_corpus, tmp_path):
    _, earlier = minipost_run
    with pytest.raises(MmadaptError, match=r"strategy.continue_from: .* mini-model over big-model layers "
                                           r"\[0, 1, None, None\], not a minipost one over \[0, 1, None\]"):
        run_in_process(TINY, tiny_overrides(tiny_corpus, tmp_path / "a", "train.max_steps=0", "strategy.new_layers=1",
                                            f"model.pretrained={big_run}", f"strategy.continue_from={earlier}"))
    with pytest.raises(MmadaptError, match="no manifest.json in"):
        run_in_process(TINY, tiny_overrides(tiny_corpus, tmp_path / "b", "train.max_steps=0",
                                            f"model.pretrained={big_run}", f"strategy.continue_from={big_run}"))
