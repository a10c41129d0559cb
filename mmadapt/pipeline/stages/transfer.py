"""Stage `transfer`: swap a language's embeddings and tokenizer into the fine-tuned model and
evaluate zero-shot; also the source language, and a control with untrained embeddings."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mmadapt.files.atomic import write_file_atomic, write_text_atomic
from mmadapt.files.digests import digest, file_digest, stage_fingerprint
from mmadapt.model.export import save_pretrained_atomic
from mmadapt.model.packs import BODY_RECORD
from mmadapt.model.surgery import load_embeddings, swap_vocabulary, swap_word_embeddings
from mmadapt.pipeline.building_blocks import model_family
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.lifecycle import StageUnit, run_stage, task_data_digests, task_settings
from mmadapt.pipeline.outputs import AdaptOutputs, FinetuneOutputs, TransferOutputs
from mmadapt.pipeline.stages.snapshots import snapshots
from mmadapt.training.distributed import barrier, broadcast_object
from mmadapt.training.metrics import write_scalar_series


def evaluate(ctx: StageContext, task: Any, task_section: Any, model: Any, tokenizer: Any, language: str,
             predictions_path: Path | None = None) -> dict[str, float]:
    """The task's official metrics of `model` on `language`'s evaluation split (rank 0 computes)."""
    scores = None
    if ctx.dist.is_main:
        examples, predictions = predict(ctx, task, task_section, model, tokenizer, language, predictions_path)
        scores = task.score(examples, predictions, language)
    return broadcast_object(scores)


def predict(ctx: StageContext, task: Any, task_section: Any, model: Any, tokenizer: Any, language: str,
            predictions_path: Path | None = None) -> tuple[list[dict], dict[str, Any]]:
    """`language`'s evaluation examples (`transfer.split`) and `model`'s predictions for them, written to
    `predictions_path` when given (call on rank 0)."""
    examples = task.eval_examples(task_section, language, ctx.cfg.transfer.split)
    model.to(ctx.dist.device).eval()
    with torch.no_grad():
        predictions = task.predict(model, examples, tokenizer, task_section, ctx.dist.device)
    if predictions_path is not None:
        write_file_atomic(predictions_path, lambda tmp: task.write_predictions(predictions, tmp))
    return examples, predictions


def transfer_language(ctx: StageContext, task_section: Any, finetuned: FinetuneOutputs, language: str,
                      adapted: AdaptOutputs) -> TransferOutputs:
    """Target and control scores for one language; writes the target model with its tokenizer.

    `finetuned` and `adapted` are the outputs of the stages this one builds on.
    """
    task = ctx.plugins.tasks.get(task_section.name)

    def fingerprint() -> str:
        test_data = task_data_digests(task, task_section, ctx.cfg.transfer.split, language)
        return stage_fingerprint("transfer", finetuned=finetuned.fingerprint, adapted=adapted.fingerprint,
                                 task=task_settings(task_section), test_data=test_data, transfer=ctx.cfg.transfer)

    return run_stage(StageUnit(f"transfer/{task_section.name}/{language}", ctx, fingerprint,
                               lambda stage: _transfer(stage, task, task_section, finetuned, language, adapted),
                               TransferOutputs))


def _transfer(ctx: StageContext, task: Any, task_section: Any, finetuned: FinetuneOutputs, language: str,
              adapted: AdaptOutputs) -> TransferOutputs:
    """The transfer stage's work (`ctx`: the stage's context): control and target scores, the target model,
    the score curve."""
    family = model_family(ctx)
    tokenizer = family.load_tokenizer(str(adapted.tokenizer))
    scores = {}
    for kind, file in (("control", adapted.initial_embeddings), ("target", adapted.embeddings)):
        model = task.build_model(family, str(finetuned.model))
        swap_vocabulary(model, *load_embeddings(file))
        scores[kind] = evaluate(ctx, task, task_section, model, tokenizer, language,
                                predictions_path(ctx.stage_dir, kind, task))
    control_score, target_score = (scores[kind][task.metric_names[0]] for kind in ("control", "target"))
    # the target model keeps the fine-tuned model's record of its body: packs swap into it too
    record = finetuned.model / BODY_RECORD
    extra = {BODY_RECORD: record.read_text()} if record.is_file() else None
    target_dir = save_pretrained_atomic(model, ctx.stage_dir / "model", ctx.dist, tokenizer, extra,
                                        family.max_sequence_length(model.config.to_dict()))
    curve = None
    if adapted.snapshots:
        curve = _score_curve(ctx, task, task_section, model, tokenizer, language, adapted, control_score,
                             target_score)
        if ctx.dist.is_main:  # next to the adapt stage's training events
            write_scalar_series(adapted.snapshots.parent, f"snapshot/target_score/{task_section.name}/{language}",
                                [(p["step"], p["target_score"]) for p in curve])
    return TransferOutputs(ctx.fingerprint, Path(target_dir), control_score, scores["control"], target_score,
                           scores["target"], curve)


#: the target predictions of each adapt snapshot (the last one's are `predictions_target.*`)
SNAPSHOT_PREDICTIONS_DIR = "snapshot_predictions"


def predictions_path(stage_dir: Path, kind: str, task: Any) -> Path:
    """Where a transfer stage writes the `kind` ("control", "target") embeddings' predictions."""
    return Path(stage_dir) / f"predictions_{kind}.{task.predictions_suffix}"


def snapshot_predictions_path(stage_dir: Path, step: int, task: Any) -> Path:
    """Where a transfer stage writes the target predictions of the adapt snapshot of `step`."""
    return Path(stage_dir) / SNAPSHOT_PREDICTIONS_DIR / f"step_{step:08d}.{task.predictions_suffix}"


def _score_curve(ctx: StageContext, task: Any, task_section: Any, model: Any, tokenizer: Any, language: str,
                 adapted: AdaptOutputs, initial_score: float, final_score: float) -> list[dict[str, float]]:
    """Target score of the initial embeddings and of each adapt snapshot, swapped into `model`.

    One point per snapshot: adapt steps, analytic FLOPs and training seconds spent to reach
    it, and the score; the report draws these as score against adapt compute. Step 0 is the
    initial embeddings (scored as the control, `initial_score`), at the initialiser's own cost;
    every later point adds the training after it. The snapshot of the last step holds the
    final embeddings, already scored as `final_score`.
    """
    spent = adapted.cost
    # an attempt `adapt.restart` abandoned comes first, then the initialiser's cost, then `adapt.big_model_steps`'s,
    # then the (mini-)model's steps (with `adapt.big_model_every`'s among them: spread evenly, exact at the snapshots
    # that are multiples of it), and after its step, the forward passes of a probe that let the attempt go on
    init, big_model, restart = spent.init_spent, spent.big_model_spent, spent.restart
    abandoned_flops, abandoned_seconds = (restart.abandoned_flops, restart.abandoned_seconds) if restart else (0, 0.0)
    probe_flops, probe_step = (restart.probe_flops, restart.at_step) if restart else (0, 0)
    start_flops = abandoned_flops + init.flops + big_model.flops
    start_seconds = abandoned_seconds + init.seconds + big_model.seconds
    flops_per_step = (spent.flops - start_flops - probe_flops) / spent.steps
    points = [{"step": 0, "adapt_flops": int(abandoned_flops + init.flops),
               "adapt_seconds": round(abandoned_seconds + init.seconds, 3), "target_score": initial_score}]
    for step, seconds, path in snapshots(adapted.snapshots, adapted.fingerprint):
        if step == spent.steps:
            score = final_score
        else:
            weight, _ = load_embeddings(path)
            swap_word_embeddings(model, weight)
            score = evaluate(ctx, task, task_section, model, tokenizer, language,
                             snapshot_predictions_path(ctx.stage_dir, step, task))[task.metric_names[0]]
        probed = probe_flops if step > probe_step else 0  # the snapshot of its step is saved before it runs
        points.append({"step": step, "adapt_flops": int(round(start_flops + flops_per_step * step + probed)),
                       "adapt_seconds": round(start_seconds + seconds, 3), "target_score": score})
    return points


def source_scores(ctx: StageContext, task_section: Any, finetuned: FinetuneOutputs) -> dict[str, float]:
    """The fine-tuned model on the source language, cached beside the fine-tuned model.

    The cache holds the digest of the fine-tuning record and evaluation settings it was
    computed for, so a re-run fine-tune (other settings) is scored afresh, never reported
    with its predecessor's score; and the digest of the predictions file it wrote, which both
    splits share, so that the file beside a cached score is always that score's predictions.
    """
    finetuned_dir = finetuned.model
    split, language = ctx.cfg.transfer.split, ctx.cfg.transfer.source_language
    task = ctx.plugins.tasks.get(task_section.name)
    key = digest("source_scores", finetuned.fingerprint, task_settings(task_section), split, language,
                 task_data_digests(task, task_section, split, language))
    path = finetuned_dir.parent / f"source_{split}_scores.json"
    predictions = source_predictions_path(finetuned, task)
    if path.is_file() and predictions.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key and cached.get("predictions") == file_digest(predictions, cached=False):
            return cached["scores"]
    family = model_family(ctx)
    model = task.build_model(family, str(finetuned_dir))
    tokenizer = family.load_tokenizer(str(finetuned_dir))
    scores = evaluate(ctx, task, task_section, model, tokenizer, language, predictions)
    if ctx.dist.is_main:
        write_text_atomic(path, json.dumps({"key": key, "scores": scores,
                                            "predictions": file_digest(predictions, cached=False)}))
    barrier()
    return scores


def source_predictions_path(finetuned: FinetuneOutputs, task: Any) -> Path:
    """The fine-tuned model's predictions on the source language's evaluation split (the one `source_scores`
    scored last; the other split's scores stay cached beside it, their predictions are written again when asked)."""
    return finetuned.model.parent / f"predictions_source.{task.predictions_suffix}"
