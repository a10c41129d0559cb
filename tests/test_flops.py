"""The analytic FLOP count used in the mini-model manifests."""
from __future__ import annotations

from types import SimpleNamespace

from mmadapt.flops import config_forward_flops_per_token, mlm_forward_flops_per_token


def test_xlmr_large_forward_flops_per_token_follow_the_documented_formula():
    # per layer: 2·(4·1024² + 2·1024·4096) + 2·2·512·1024 = 27,262,976
    # LM head:   2·1024² + 2·1024·250002                 = 514,101,248
    assert mlm_forward_flops_per_token(24, 1024, 4096, 250002, 512) == 24 * 27_262_976 + 514_101_248
    assert mlm_forward_flops_per_token(4, 1024, 4096, 250002, 512) == 4 * 27_262_976 + 514_101_248


def test_flops_from_a_config_use_its_sizes_and_the_given_layer_count():
    config = SimpleNamespace(hidden_size=64, intermediate_size=256, vocab_size=1000, num_hidden_layers=4)
    assert config_forward_flops_per_token(config, 2, 64) == mlm_forward_flops_per_token(2, 64, 256, 1000, 64)
    assert mlm_forward_flops_per_token(0, 64, 256, 1000, 64) == 2 * 64 * 64 + 2 * 64 * 1000
