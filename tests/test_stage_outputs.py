"""Typed stage outputs (mmadapt.pipeline.outputs): read from a stage's marker and written back unchanged."""
from __future__ import annotations

import json
from pathlib import Path

from mmadapt.pipeline.lifecycle import StageRecord
from mmadapt.pipeline.outputs import (AdaptCost, AdaptOutputs, BigModelSteps, FinetuneOutputs, InitCost,
                                      PretrainOutputs, TokenizerOutputs, TransferOutputs)

#: an adapt marker of a mini strategy with `adapt.big_model_steps`, as the stage has always written it
MINI_ADAPT = {
    "fingerprint": "c71510b8",
    "outputs": {"embeddings": "/r/adapt/vo/embeddings.safetensors", "initial_embeddings": "/r/adapt/vo/init.st",
                "tokenizer": "/r/tokenizers/vo/tokenizer", "pack": "/r/adapt/vo/pack",
                "snapshots": "/r/adapt/vo/snapshots"},
    "metrics": {"steps": 12, "seconds": 1.0, "tokens": 27648, "flops": 64283502183, "flops_per_token": 1768012.8,
                "peak_memory_bytes": 1048702976, "peak_memory_source": "cpu_peak_rss", "data_wait_fraction": 0.0146,
                "model_layers": 2, "final_loss": 4.793148517608643, "big_model_steps": 6,
                "big_model_flops": 20832819610, "big_model_seconds": 0.351, "init_flops": 0, "init_seconds": 0.001,
                "init_flops_parts": {}}}
#: an adapt marker without snapshots, written before packs and the initialiser's cost were recorded
OLD_ADAPT = {
    "fingerprint": "98eb6696",
    "outputs": {"embeddings": "/r/adapt/vo/embeddings.safetensors", "initial_embeddings": "/r/adapt/vo/init.st",
                "tokenizer": "/r/tokenizers/vo/tokenizer"},
    "metrics": {"steps": 12, "seconds": 2.091, "tokens": 24576, "flops": 166662556877, "flops_per_token": 6781516.8,
                "peak_memory_bytes": 1086357504, "peak_memory_source": "cpu_peak_rss", "data_wait_fraction": 0.00426,
                "model_layers": 8, "final_loss": 5.25}}


def _written_back(kind, marker):
    record = StageRecord(marker["fingerprint"], marker["outputs"], marker["metrics"], skipped=True)
    back = kind.from_record(record).to_record()
    assert back.skipped
    return json.dumps({"fingerprint": back.fingerprint, "outputs": back.outputs, "metrics": back.metrics})


def test_every_stages_marker_is_written_back_byte_for_byte_with_its_keys_in_their_order():
    markers = [
        (AdaptOutputs, MINI_ADAPT), (AdaptOutputs, OLD_ADAPT),
        (PretrainOutputs, {"fingerprint": "bb", "outputs": {"big": "/r/pretrain/big", "mini": "/r/pretrain/mini"},
                           "metrics": {"steps": 30, "seconds": 15.3, "tokens": 122880, "flops": 12}}),
        (PretrainOutputs, {"fingerprint": "bb", "outputs": {"big": "/r/big", "extra": "/r/extra"}, "metrics": {}}),
        (FinetuneOutputs, {"fingerprint": "de", "outputs": {"model": "/r/finetune/xnli/model"},
                           "metrics": {"steps": 20, "train_features": 3000}}),
        (TransferOutputs, {"fingerprint": "75", "outputs": {"model": "/r/transfer/xnli/vo/model"},
                           "metrics": {"control_score": 0.3, "control_metrics": {"accuracy": 0.3}, "target_score": 0.5,
                                       "target_metrics": {"accuracy": 0.5},
                                       "curve": [{"step": 0, "adapt_flops": 0, "adapt_seconds": 0.0,
                                                  "target_score": 0.3}]}}),
        (TransferOutputs, {"fingerprint": "75", "outputs": {"model": "/r/m"},
                           "metrics": {"control_score": 0.3, "control_metrics": {}, "target_score": 0.5,
                                       "target_metrics": {}}}),
        (TokenizerOutputs, {"fingerprint": "aa", "outputs": {"tokenizer": "/r/tok"}, "metrics": {}}),
    ]
    for kind, marker in markers:
        assert _written_back(kind, marker) == json.dumps(marker), kind.__name__


def test_adapt_outputs_read_as_attributes_and_absent_parts_are_none():
    mini = AdaptOutputs.from_record(StageRecord(**MINI_ADAPT))
    assert mini.snapshots == Path("/r/adapt/vo/snapshots") and mini.tokenizer == Path("/r/tokenizers/vo/tokenizer")
    assert mini.cost.big_model == BigModelSteps(6, 20832819610, 0.351)
    assert mini.cost.init == InitCost(0, 0.001, {}) and mini.cost.steps == 12
    old = AdaptOutputs.from_record(StageRecord(**OLD_ADAPT))
    assert (old.pack, old.snapshots, old.cost.big_model, old.cost.init) == (None, None, None, None)


def test_the_big_model_steps_and_the_initialiser_add_to_the_totals_but_not_to_the_steps():
    over_mini = AdaptCost(12, 0.6, 1000, 500, 0.5, 10, "cpu_peak_rss", 0.01, 2, 4.2)
    over_big = AdaptCost(6, 0.351, 600, 300, 0.5, 30, "cpu_peak_rss", 0.02, 8, 5.0)
    cost = over_mini.with_big_model_steps(over_big).with_init(InitCost(7, 0.1, {"vectors": 7}))
    assert (cost.steps, cost.tokens, cost.flops, cost.seconds) == (12, 1600, 807, round(round(0.6 + 0.351, 3) + 0.1, 3))
    assert cost.peak_memory_bytes == 30 and cost.model_layers == 2 and cost.final_loss == 4.2
    assert list(cost.metrics())[-6:] == ["big_model_steps", "big_model_flops", "big_model_seconds", "init_flops",
                                         "init_seconds", "init_flops_parts"]
    assert AdaptCost.from_metrics(cost.metrics()) == cost


def test_adapt_trains_over_the_mini_model_when_the_strategy_made_one_else_over_the_big_one():
    assert PretrainOutputs("f", Path("/b"), Path("/m")).adapt_model == Path("/m")
    assert PretrainOutputs("f", Path("/b")).adapt_model == Path("/b")
