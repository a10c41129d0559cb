"""Stage accounting: tokens, wall time, peak memory and data-wait share of every training run."""
from __future__ import annotations

import json
import mmap
import time

import numpy as np
import pytest
import torch

from conftest import RECIPES, run_in_process, tiny_overrides
from mmadapt.data.mlm import MaskedBlocks, MaskingSpec
from mmadapt.pipeline.lifecycle import STAGE_DONE
from mmadapt.training.memory import PeakMemory

TINY = RECIPES / "tiny_full.yaml"
SEQ, BATCH, STEPS = 16, 4, 3
DELAY = 0.25  # seconds per block of the stalled pipeline


class SlowBlocks(MaskedBlocks):
    """Blocks that take `delay` seconds each to produce (a stalled input pipeline)."""

    delay = 0.0

    def __getitems__(self, keys):
        time.sleep(self.delay * len(keys))
        return super().__getitems__(keys)


def _train(tmp_path, delay: float):
    from mmadapt.pipeline.context import StageContext
    from mmadapt.training.distributed import init_distributed
    from mmadapt.training.engine import trainable_parameters
    from mmadapt.training.objectives import MaskedLMObjective
    from mmadapt.plugin_system.manager import get_plugins
    from mmadapt.recipe import load_recipe
    from mmadapt.training.trainer import Trainer
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    cfg = load_recipe(TINY, [f"train.max_steps={STEPS}", f"train.micro_batch_size={BATCH}", "train.log_every=0",
                             "train.progress_bar=false", "train.save_every=0", f"output_dir={tmp_path}"])
    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=4, intermediate_size=64,
                                                   max_position_embeddings=SEQ + 2))
    blocks = np.random.default_rng(0).integers(5, 45, size=(64, SEQ)).astype(np.int32)
    data = SlowBlocks(blocks, MaskingSpec(mask_id=49, vocab_size=50, special_ids=[0, 1, 2, 3]), 0)
    data.delay = delay
    ctx = StageContext(cfg, get_plugins(), init_distributed(), tmp_path, tmp_path / f"stage{delay}")
    objective = MaskedLMObjective(model)
    return Trainer(ctx, objective, trainable_parameters(objective), data).train()


def test_a_training_run_reports_tokens_memory_and_how_long_it_waited_for_data(tmp_path):
    fast = _train(tmp_path, 0.0)
    slow = _train(tmp_path, DELAY)  # 4 blocks x 250 ms of waiting per step: far above a tiny step's cost
    for result in (fast, slow):
        assert result.steps == STEPS and result.tokens == STEPS * BATCH * SEQ
        assert result.peak_memory_source == "cpu_peak_rss"
        assert 50 * 2**20 < result.peak_memory_bytes < 64 * 2**30  # a torch process, resident
        assert 0.0 <= result.data_wait_fraction <= 1.0
        assert result.data_wait_seconds == pytest.approx(result.data_wait_fraction * result.wall_seconds)
    assert slow.data_wait_seconds >= STEPS * BATCH * DELAY
    assert slow.data_wait_fraction > 0.5 > fast.data_wait_fraction


def test_peak_memory_sees_an_allocation_made_after_it_started():
    monitor = PeakMemory(torch.device("cpu"))
    monitor.start()
    baseline = monitor.peak_bytes()
    # A fresh anonymous mapping, every page touched: new resident memory however much freed
    # memory the allocator holds from earlier tests (a tensor could reuse that and not grow RSS).
    block = mmap.mmap(-1, 64 * 2**20)
    block.write(b"\x01" * (64 * 2**20))
    assert monitor.peak_bytes() - baseline >= 60 * 2**20
    block.close()
    monitor.start()  # a fresh start forgets the old peak
    assert monitor.peak_bytes() < baseline + 60 * 2**20


def test_the_adapt_stage_records_flops_from_the_model_tokens_memory_and_data_wait(tiny_corpus, tmp_path):
    from mmadapt.training.flops import adapt_flops_per_token

    out = tmp_path / "run"
    new_corpus = tmp_path / "new.txt"
    new_corpus.write_text(tiny_corpus.read_text().upper(), encoding="utf-8")
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "stages=[pretrain,tokenizer,adapt]",
                                        f"languages={{xx: {{corpus: [{new_corpus}]}}}}", "tokenizer.vocab_size=60",
                                        "adapt.train={max_steps: 3}"))
    metrics = json.loads((out / "adapt" / "xx" / STAGE_DONE).read_text())["metrics"]
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(out / "pretrain" / "big")
    vocab = len(AutoTokenizer.from_pretrained(out / "tokenizers" / "xx" / "tokenizer"))
    assert metrics["steps"] == 3 and metrics["tokens"] == 3 * 8 * 32  # steps x micro batch x block size
    per_token = adapt_flops_per_token(config, config.num_hidden_layers, 32, vocab_size=vocab, masked_fraction=0.15)
    assert metrics["flops_per_token"] == pytest.approx(per_token)
    assert metrics["flops"] == round(metrics["tokens"] * per_token)
    assert metrics["peak_memory_bytes"] > 50 * 2**20 and metrics["peak_memory_source"] == "cpu_peak_rss"
    assert 0.0 <= metrics["data_wait_fraction"] < 1.0
    assert metrics["seconds"] > 0


def test_snapshot_scores_are_readable_back_from_the_tensorboard_event_file(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mmadapt.training.metrics import write_scalar_series

    write_scalar_series(tmp_path, "snapshot/target_score/xnli/vo", [(0, 0.4), (25, 0.5)])
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("snapshot/target_score/xnli/vo")
    assert [(e.step, round(e.value, 3)) for e in scalars] == [(0, 0.4), (25, 0.5)]
