"""The basin diagnostic: does the big model read a language's new embeddings as the (mini-)model does?

A mini strategy trains the new embeddings over a shallow model and plugs them into the big one.
When it lands in the big model's basin, the big model predicts masked target words with those
embeddings about as well as the model they were trained over; when it lands elsewhere, the
shallow model fits them and the big model does not. This module measures, for the initial
embeddings and every adapt snapshot, the masked-LM loss of the big model and of the model the
embeddings were trained over, on one fixed sample of the language's own corpus (no labels, no
dictionary). Rank 0 only; the forward passes are counted in `basin_check_flops`. The result is kept
beside the adapt stage's outputs, so a run resumed after its adapt stages does not compute it again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mmadapt.data.mlm import MaskedBlocks, MaskingSpec
from mmadapt.files.atomic import write_text_atomic
from mmadapt.files.digests import digest
from mmadapt.model.surgery import load_embeddings, swap_vocabulary
from mmadapt.pipeline.stages.snapshots import snapshots
from mmadapt.training.flops import ModelShape, training_flops_per_token
from mmadapt.training.objectives import MaskedLMObjective

#: the blocks of the language's corpus the check reads (spread evenly over it)
CHECK_BLOCKS = 128
CHECK_BATCH = 64
#: offsets the masking seed, so the check's masks are not the training's first epoch's
_MASK_SEED_OFFSET = 7919
#: the check's result in the adapt stage's directory, with the key of what it was computed from
CHECK_FILE = "basin_check.json"


def check_batches(blocks: Any, tokenizer: Any, mlm_probability: float, seed: int) -> list[dict[str, torch.Tensor]]:
    """`CHECK_BLOCKS` blocks spread evenly over `blocks`, masked with a seed of their own, in batches."""
    dataset = MaskedBlocks(blocks, MaskingSpec.from_tokenizer(tokenizer, mlm_probability), seed + _MASK_SEED_OFFSET)
    stride = max(1, len(dataset) // CHECK_BLOCKS)
    indices = list(range(0, len(dataset), stride))[:CHECK_BLOCKS]
    return [dataset.__getitems__([(0, i) for i in indices[s:s + CHECK_BATCH]])
            for s in range(0, len(indices), CHECK_BATCH)]


def masked_lm_loss_on(model: Any, batches: list[dict[str, torch.Tensor]]) -> float:
    """Mean masked-LM loss of `model` over `batches` (eval mode, no gradients)."""
    objective = MaskedLMObjective(model)
    model.eval()
    with torch.no_grad():
        losses = [float(objective(batch)["loss"]) for batch in batches]
    return sum(losses) / len(losses)


def embedding_points(adapted: Any, snapshot_list: list[tuple[int, float, Path]]) -> list[tuple[int, Path]]:
    """(step, embeddings file): the initial embeddings at step 0, then every snapshot."""
    return [(0, adapted.initial_embeddings), *((step, path) for step, _, path in snapshot_list)]


def basin_losses(models: dict[str, Any], points: list[tuple[int, Path]],
                 batches: list[dict[str, torch.Tensor]]) -> dict[str, dict[int, float]]:
    """{model name: {step: masked-LM loss}} of each model with each point's embeddings (and LM bias)."""
    out: dict[str, dict[int, float]] = {name: {} for name in models}
    for step, path in points:
        weight, bias = load_embeddings(path)
        if bias is None:  # the initial embeddings carry no trained bias: a flat one, for every model alike
            bias = torch.zeros(weight.shape[0])
        for name, model in models.items():
            swap_vocabulary(model, weight, bias)
            out[name][step] = round(masked_lm_loss_on(model, batches), 5)
    return out


def check_flops(models: dict[str, Any], points: int, batches: list[dict[str, torch.Tensor]], block_size: int,
                mlm_probability: float) -> int:
    """Analytic FLOPs of the check's forward passes: `points` embeddings through every model."""
    tokens = sum(int(b["input_ids"].numel()) for b in batches) * points
    total = 0.0
    for model in models.values():
        config = model.config
        shape = ModelShape.of(config, config.num_hidden_layers, model.get_input_embeddings().weight.shape[0])
        total += tokens * training_flops_per_token(shape, block_size, train_embeddings=True,
                                                   masked_fraction=mlm_probability).forward
    return int(round(total))


def language_basin_check(ctx: Any, language: str, adapted: Any, model_dir: Path, big_dir: Path) -> dict[str, Any]:
    """The big model's (and, for a mini strategy, the mini-model's) masked-LM loss at each adapt point.

    `adapted` is the adapt stage's `AdaptOutputs`; `model_dir` the model its embeddings were trained
    over, `big_dir` the big model they are for. Returns `{"basin_losses": {"big": {step: loss}, "mini":
    {...}}, "basin_check_flops": N}` ({} without snapshots: a curve needs them).
    """
    if not adapted.snapshots:
        return {}
    # the adapt fingerprint covers the embeddings, the corpus, the seed and the models' upstream stages (their
    # content, not where they lie: a run directory moved elsewhere keeps its check)
    key = digest("basin_check", adapted.fingerprint, Path(model_dir) == Path(big_dir), CHECK_BLOCKS, CHECK_BATCH,
                 _MASK_SEED_OFFSET)
    path = Path(ctx.stage_dir) / CHECK_FILE
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
        except ValueError:  # not written by this check (written atomically, it is whole or absent): computed again
            cached = {}
        if cached.get("key") == key:
            result = cached["result"]
            return {**result, "basin_losses": {name: {int(step): loss for step, loss in losses.items()}
                                               for name, losses in result["basin_losses"].items()}}
    result = _basin_check(ctx, language, adapted, model_dir, big_dir)
    write_text_atomic(path, json.dumps({"key": key, "result": result}))
    return result


def _basin_check(ctx: Any, language: str, adapted: Any, model_dir: Path, big_dir: Path) -> dict[str, Any]:
    """`language_basin_check`'s forward passes."""
    from mmadapt.pipeline.stages.adapt import language_mlm_data
    from mmadapt.pipeline.building_blocks import model_family

    family = model_family(ctx)
    tokenizer = family.load_tokenizer(str(adapted.tokenizer))
    train_set, _ = language_mlm_data(ctx, language, tokenizer)
    batches = check_batches(train_set.blocks, tokenizer, ctx.cfg.data.mlm_probability, ctx.cfg.seed)
    models = {"big": family.load_pretrained(str(big_dir))}
    if Path(model_dir) != Path(big_dir):
        models["mini"] = family.load_pretrained(str(model_dir))
    points = embedding_points(adapted, snapshots(adapted.snapshots, adapted.fingerprint))
    return {"basin_losses": basin_losses(models, points, batches),
            "basin_check_flops": check_flops(models, len(points), batches, ctx.cfg.data.block_size,
                                             ctx.cfg.data.mlm_probability)}
