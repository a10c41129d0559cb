"""What the benchmarks share: model shapes, the adapt-stage set-up through mmadapt's own code,
random token blocks, and step timing that leaves out warm-up steps.

Not a test module and not part of the package: imported by the scripts beside it.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SPECIAL_IDS = [0, 1, 2, 3]  # <s>, <pad>, </s>, <unk>, as in XLM-R


@dataclass(frozen=True)
class Shape:
    """A model shape to benchmark, with its run defaults."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    #: the new language's vocabulary (the embeddings adapt trains)
    vocab: int
    seq: int
    batch: int
    k: int


SHAPES = {
    # CPU-sized: 12 layers like XLM-R base, narrower
    "cpu": Shape(layers=12, hidden=256, heads=4, intermediate=1024, vocab=8000, seq=128, batch=8, k=2),
    "xlmr-base": Shape(layers=12, hidden=768, heads=12, intermediate=3072, vocab=50000, seq=512, batch=16, k=2),
    "xlmr-large": Shape(layers=24, hidden=1024, heads=16, intermediate=4096, vocab=50000, seq=512, batch=16, k=4),
}


def family():
    """The xlmr model-family plugin (benchmarks go through the plugin registry like the pipeline)."""
    from mmadapt.plugin_system.manager import get_plugins

    return get_plugins().model_families.get("xlmr")


def build_big(shape: Shape, seed: int = 0) -> Any:
    """A randomly initialised XLM-R MLM of `shape` (source vocabulary = the new one's size)."""
    from types import SimpleNamespace

    torch.manual_seed(seed)
    config = {"num_hidden_layers": shape.layers, "hidden_size": shape.hidden, "num_attention_heads": shape.heads,
              "intermediate_size": shape.intermediate, "max_position_embeddings": shape.seq + 2,
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    tokenizer = SimpleNamespace(pad_token_id=1, bos_token_id=0, eos_token_id=2)
    return family().build_from_config(config, shape.vocab, tokenizer)


def adapt_model(strategy: str, shape: Shape, new_layers: int = 2, seed: int = 0) -> Any:
    """The model `adapt` trains over: the big one (`full`), or a mini-model holding only its layers.

    minijoint: embeddings + big layers 1..k + a secondary head (what `pretrain/mini` holds);
    minipost: embeddings + big layers 1..k + `new_layers` new layers + a head. The big model's
    other layers are dropped, as when the pipeline loads `pretrain/mini`.
    """
    fam = family()
    big = build_big(shape, seed)
    if strategy == "full":
        return big
    layers = list(range(shape.k))
    if strategy == "minijoint":
        mini = fam.assemble(big, [fam.layers(big)[i] for i in layers], fam.new_lm_head(big))
    elif strategy == "minipost":
        from mmadapt_plugins.minipost import build_minipost_model

        mini = build_minipost_model(fam, big, layers, new_layers, "random")
    else:
        raise ValueError(strategy)
    del big
    return mini


def prepare_adapt(model: Any, vocab: int, masked_only: bool = True, seed: int = 0) -> tuple[Any, list]:
    """As stage `adapt` does: new word embeddings swapped in, everything but them and the LM bias frozen."""
    from mmadapt.training.objectives import MaskedLMObjective
    from mmadapt.model.surgery import freeze_all_but, lm_head_bias, swap_word_embeddings

    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(vocab, model.config.hidden_size, generator=g) * model.config.initializer_range
    swap_word_embeddings(model, weight)
    trainable = freeze_all_but(model, [model.get_input_embeddings().weight, lm_head_bias(model)])
    return MaskedLMObjective(model, masked_only=masked_only), trainable


def random_blocks(shape: Shape, count: int = 512, seed: int = 0) -> np.ndarray:
    """Token blocks of random non-special ids (the id of <mask> is vocab - 1)."""
    rng = np.random.default_rng(seed)
    return rng.integers(len(SPECIAL_IDS), shape.vocab - 1, size=(count, shape.seq)).astype(np.int32)


def masked_blocks(shape: Shape, blocks: np.ndarray, mlm_probability: float = 0.15, seed: int = 0) -> Any:
    from mmadapt.data.mlm import MaskedBlocks, MaskingSpec

    return MaskedBlocks(blocks, MaskingSpec(shape.vocab - 1, shape.vocab, SPECIAL_IDS, mlm_probability), seed)


class StepClock(torch.nn.Module):
    """Wraps an objective and notes when each forward starts: n steps = time between two starts."""

    def __init__(self, objective: torch.nn.Module):
        super().__init__()
        self.objective = objective
        self.starts: list[float] = []

    def forward(self, batch):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.starts.append(time.perf_counter())
        return self.objective(batch)

    def seconds(self, warmup: int, steps: int) -> float:
        """Wall time of `steps` steps after `warmup` ones (needs warmup + steps + 1 forwards)."""
        return self.starts[warmup + steps] - self.starts[warmup]


def ensure_single_rank_env() -> None:
    """Launcher variables for one process (DeepSpeed wants them), and quiet CPU accelerator."""
    from mmadapt.training.distributed import init_distributed

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    init_distributed()


def run_mmadapt(objective: torch.nn.Module, trainable: list, data: Any, shape: Shape, warmup: int, steps: int,
                precision: str = "fp32", deepspeed_config: str = "zero2") -> dict[str, float]:
    """Train with mmadapt's Trainer (DeepSpeed engine, recipe-driven) and time the steady steps."""
    from mmadapt.pipeline.context import StageContext
    from mmadapt.training.distributed import init_distributed
    from mmadapt.plugin_system.manager import get_plugins
    from mmadapt.recipe import load_recipe
    from mmadapt.training.trainer import Trainer

    out = Path(tempfile.mkdtemp(prefix="mmadapt-bench-"))
    cfg = load_recipe(REPO / "recipes" / "tiny_full.yaml", [
        f"output_dir={out}", f"precision={precision}", f"deepspeed.config={deepspeed_config}",
        f"train.max_steps={warmup + steps + 1}", f"train.micro_batch_size={shape.batch}", "train.grad_accum=1",
        "train.lr=1e-3", "train.warmup_steps=0", "train.log_every=0", "train.progress_bar=false",
        "train.save_every=0", "train.resume=never", f"data.block_size={shape.seq}"])
    clock = StepClock(objective)
    ctx = StageContext(cfg, get_plugins(), init_distributed(), out, out / "adapt")
    result = Trainer(ctx, clock, trainable, data).train()
    seconds = clock.seconds(warmup, steps)
    return {"tokens_per_s": steps * shape.batch * shape.seq / seconds, "seconds_per_step": seconds / steps,
            "peak_memory_bytes": result.peak_memory_bytes, "peak_memory_source": result.peak_memory_source,
            "data_wait_fraction": result.data_wait_fraction, "final_loss": result.last_metrics.get("loss")}


def machine() -> str:
    """One line naming the hardware the numbers come from."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
