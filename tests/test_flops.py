"""The analytic FLOP model: documented formulas, hand counts, and torch's own flop counter."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mmadapt.training.flops import (MLMHead, ModelShape, adapt_flops_per_token, config_forward_flops_per_token,
                                    finetune_flops_per_token, mlm_forward_flops_per_token, tokens_per_step,
                                    training_flops_per_token)
from mmadapt.training.objectives import MaskedLMObjective

# h=64, i=256, V=1000, s=32: P = 4·64² + 2·64·256 = 49,152 weights per layer
H, I, V, S = 64, 256, 1000, 32
P = 4 * H * H + 2 * H * I
TINY = ModelShape(hidden_size=H, intermediate_size=I, num_layers=2, vocab_size=V)


def test_xlmr_large_forward_flops_per_token_follow_the_documented_formula():
    # per layer: 2·(4·1024² + 2·1024·4096) + 2·2·512·1024 = 27,262,976
    # LM head:   2·1024² + 2·1024·250002                 = 514,101,248
    assert mlm_forward_flops_per_token(24, 1024, 4096, 250002, 512) == 24 * 27_262_976 + 514_101_248
    assert mlm_forward_flops_per_token(4, 1024, 4096, 250002, 512) == 4 * 27_262_976 + 514_101_248


def test_flops_from_a_config_use_its_sizes_and_the_given_layer_count():
    config = SimpleNamespace(hidden_size=64, intermediate_size=256, vocab_size=1000, num_hidden_layers=4)
    assert config_forward_flops_per_token(config, 2, 64) == mlm_forward_flops_per_token(2, 64, 256, 1000, 64)
    assert mlm_forward_flops_per_token(0, 64, 256, 1000, 64) == 2 * 64 * 64 + 2 * 64 * 1000
    assert ModelShape.of(config, num_layers=2) == ModelShape(64, 256, 2, 1000)
    assert ModelShape.of({"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 4,
                          "vocab_size": 1000}, vocab_size=10) == ModelShape(64, 256, 4, 10)


# Hand counts for TINY (2 layers), per token:
#   layer forward 2·P + 4·s·h = 98,304 + 8,192 = 106,496
#   head forward  2·h² + 2·h·V = 8,192 + 128,000 = 136,192
LAYER_FWD = 2 * P + 4 * S * H
HEAD_FWD = 2 * H * H + 2 * H * V


def test_all_trainable_costs_three_forwards():
    count = training_flops_per_token(TINY, S, trainable_layers=True, train_embeddings=True,
                                     heads=[MLMHead(trainable=True)])
    assert count.forward == 2 * 106_496 + 136_192 == 349_184
    assert count.backward == 2 * count.forward == 698_368
    assert count.parts["layer 0"] == (106_496, 212_992)


def test_frozen_body_backward_is_activation_gradients_plus_the_tied_decoder_weight_gradient():
    count = training_flops_per_token(TINY, S, train_embeddings=True)
    # frozen layer: input grads 2·P + attention 8·s·h = 98,304 + 16,384
    assert count.parts["layer 1"] == (LAYER_FWD, 114_688)
    # head: dense input grad 2·h², decoder input grad 2·h·V, decoder weight grad 2·h·V
    assert count.parts["head 0 after layer 2"] == (HEAD_FWD, 8_192 + 128_000 + 128_000)
    assert count.total == 349_184 + 2 * 114_688 + 264_192
    assert adapt_flops_per_token(SimpleNamespace(hidden_size=H, intermediate_size=I, vocab_size=V),
                                 2, S) == count.total


def test_masked_only_logits_scale_the_head_by_the_masked_fraction():
    full = training_flops_per_token(TINY, S, train_embeddings=True)
    masked = training_flops_per_token(TINY, S, train_embeddings=True, masked_fraction=0.15)
    head = "head 0 after layer 2"
    assert masked.parts[head] == pytest.approx(tuple(0.15 * x for x in full.parts[head]))
    assert masked.total == pytest.approx(full.total - 0.85 * sum(full.parts[head]))


def test_a_new_vocabulary_changes_only_the_head():
    config = SimpleNamespace(hidden_size=H, intermediate_size=I, vocab_size=V)
    delta = adapt_flops_per_token(config, 2, S, vocab_size=V + 100) - adapt_flops_per_token(config, 2, S)
    assert delta == 3 * 2 * H * 100  # forward, input grad and weight grad of the decoder


def test_frozen_layers_below_every_trainable_parameter_have_no_backward():
    # MiniPost: 2 frozen layers (and frozen embeddings) under 1 new layer and a trainable head
    shape = TINY.with_(num_layers=3)
    count = training_flops_per_token(shape, S, trainable_layers=[False, False, True],
                                     heads=[MLMHead(trainable=True)])
    assert count.parts["layer 0"][1] == count.parts["layer 1"][1] == 0
    # the new layer: weight grads 2·P, input grads except Q, K, V (2·P - 6·h²), attention 8·s·h
    assert count.parts["layer 2"][1] == 2 * P + (2 * P - 6 * H * H) + 8 * S * H
    # head: transform weight grad 2·h², decoder input grad 2·h·V; no decoder weight (embeddings frozen)
    # and nothing below needs the head's input gradient... except the trainable layer under it
    assert count.parts["head 0 after layer 3"][1] == 2 * H * H + 2 * H * V + 2 * H * H


def test_a_second_head_after_layer_k_adds_one_head_and_no_layer_work():
    one = training_flops_per_token(TINY, S, trainable_layers=True, train_embeddings=True,
                                   heads=[MLMHead(trainable=True)])
    two = training_flops_per_token(TINY, S, trainable_layers=True, train_embeddings=True,
                                   heads=[MLMHead(trainable=True), MLMHead(after_layer=1, trainable=True)])
    assert two.total - one.total == 3 * HEAD_FWD
    with pytest.raises(ValueError, match="heads read after"):
        training_flops_per_token(TINY, S, heads=[MLMHead(after_layer=3)])


def test_finetune_and_step_sizes():
    config = SimpleNamespace(hidden_size=H, intermediate_size=I, vocab_size=V, num_hidden_layers=2)
    # layer 0: inputs come from frozen embeddings, so its Q, K, V input grads are skipped
    assert finetune_flops_per_token(config, S) == 2 * LAYER_FWD + (4 * P - 6 * H * H + 8 * S * H) \
        + (4 * P + 8 * S * H)
    assert tokens_per_step(SimpleNamespace(micro_batch_size=8, grad_accum=4), 128, world_size=2) == 8192


# --- against torch's flop counter -------------------------------------------------------------

def _tiny_xlmr():
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=V, hidden_size=H, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=I, max_position_embeddings=S + 2, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0, attn_implementation="eager")
    # eager attention: torch's counter has no formula for the fused CPU attention kernel
    return XLMRobertaForMaskedLM(config)


def _measured(model, objective, batch) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        objective(batch)["loss"].backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _batch(rows: int = 4) -> tuple[dict, float]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, V, (rows, S), generator=g)
    chosen = torch.rand(rows, S, generator=g) < 0.15
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "labels": torch.where(chosen, ids, torch.full_like(ids, -100))}
    return batch, chosen.float().mean().item()


@pytest.mark.parametrize("masked_only", [False, True])
@pytest.mark.parametrize("body", ["frozen", "trainable"])
def test_the_model_matches_torchs_flop_counter_within_ten_percent(body, masked_only):
    model = _tiny_xlmr()
    embeddings = model.get_input_embeddings().weight
    for p in model.parameters():
        p.requires_grad_(body == "trainable" or p is embeddings)
    batch, fraction = _batch()
    measured = _measured(model, MaskedLMObjective(model, masked_only=masked_only), batch)
    predicted = training_flops_per_token(
        TINY, S, trainable_layers=body == "trainable", train_embeddings=True,
        heads=[MLMHead(trainable=body == "trainable")],
        masked_fraction=fraction if masked_only else None).total * batch["input_ids"].numel()
    assert predicted == pytest.approx(measured, rel=0.10)
