"""Stage `finetune`: the big model on the source-language task, embedding module frozen.

The word, position and type embeddings and their LayerNorm stay as pretrained: the new
languages' embeddings were learned against exactly those, so they must still fit after. The
model directory also holds `mmadapt_body.json`, naming the pretrained body it started from, so
`mmadapt swap` can tell which language packs fit it (mmadapt.model.packs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmadapt.data.features import FeatureDataset
from mmadapt.files.digests import stage_fingerprint
from mmadapt.model.export import save_pretrained_atomic
from mmadapt.model.packs import BODY_RECORD, body_record_text, describe_body
from mmadapt.pipeline.building_blocks import model_family
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.lifecycle import (StageUnit, outcome_settings, recorded_restarts, run_stage, start_attempt_over,
                                        task_data_digests, task_settings)
from mmadapt.pipeline.outputs import FinetuneOutputs
from mmadapt.training.engine import trainable_parameters
from mmadapt.training.flops import finetune_flops_per_token
from mmadapt.training.objectives import SupervisedObjective
from mmadapt.training.plateau import PlateauWatch, StuckOnPlateau
from mmadapt.training.trainer import Trainer, seed_everything


#: restart n trains with the seed `seed + RESTART_SEED_STRIDE * n`: far from the seeds a user runs side by side
RESTART_SEED_STRIDE = 1000


def finetune_task(ctx: StageContext, task_section: Any, big_dir: Path, upstream: str) -> FinetuneOutputs:
    """Fine-tune on one task into ctx.stage_dir/model; skipped if complete for these settings."""
    cfg = ctx.cfg
    task = ctx.plugins.tasks.get(task_section.name)

    def fingerprint() -> str:
        language = task.option_value(task_section, task.train_language_option) or ""
        train_data = task_data_digests(task, task_section, "train", language)
        finetune = outcome_settings(cfg.finetune)
        if not finetune["restart"]["at_step"]:  # off: as before the key existed, so earlier runs stay complete
            del finetune["restart"]
        return stage_fingerprint("finetune", pretrained=upstream, task=task_settings(task_section),
                                 train_data=train_data, finetune=finetune,
                                 train=outcome_settings(cfg.train, is_train=True), precision=cfg.precision, deepspeed=cfg.deepspeed.resolved, seed=cfg.seed)

    return run_stage(StageUnit(f"finetune/{task_section.name}", ctx, fingerprint,
                               lambda stage: _finetune(stage, task, task_section, big_dir), FinetuneOutputs))


def _finetune(ctx: StageContext, task: Any, task_section: Any, big_dir: Path) -> FinetuneOutputs:
    """The finetune stage's work (`ctx`: the stage's context): the fine-tuned model and its metrics. A fine-tune
    still on its starting loss at `finetune.restart.at_step` starts again from `big_dir` with the next seed."""
    family = model_family(ctx)
    tokenizer = family.load_tokenizer(str(big_dir))
    features = task.train_features(task.train_examples(task_section), tokenizer, task_section)
    restarts = _recorded_restarts(ctx)
    while True:
        watch = _plateau_watch(ctx, len(restarts))
        seed = _attempt_seed(ctx, len(restarts))
        try:
            model, record, result = _train(ctx, task, family, big_dir, features, seed, watch)
            break
        except StuckOnPlateau as stuck:
            restarts.append({"seed": seed, "step": stuck.step, "first_loss": stuck.first, "loss": stuck.latest})
            _start_over(ctx, restarts, stuck)
    if watch is not None and watch.stuck():
        ctx.log(f"warning: {ctx.label}: the training loss is still {watch.latest:.3f} over the steps up to "
                f"{watch.at_step} (the first steps': {watch.first:.3f}) after {len(restarts)} restart(s): the "
                "model may not have learned the task; its source score shows whether it did")
    model_dir = save_pretrained_atomic(model, ctx.stage_dir / "model", ctx.dist, tokenizer, {BODY_RECORD: record},
                                       family.max_sequence_length(model.config.to_dict()))
    seq_len = int(features[0]["input_ids"].shape[-1]) if features else 0
    flops_per_token = finetune_flops_per_token(model.config, seq_len)
    train_cfg = ctx.cfg.train
    tokens_per_step = train_cfg.micro_batch_size * train_cfg.grad_accum * ctx.dist.world_size * seq_len
    tokens = result.tokens + sum(r["step"] for r in restarts) * tokens_per_step  # the restarted attempts' too
    metrics = {**result.summary(), "flops": int(round(tokens * flops_per_token)), "flops_per_token": flops_per_token,
               "train_features": len(features), "seed": seed, "restarts": len(restarts)}
    return FinetuneOutputs(ctx.fingerprint, model_dir, metrics)


def _train(ctx: StageContext, task: Any, family: Any, big_dir: Path, features: list[dict], seed: int,
           watch: PlateauWatch | None) -> tuple[Any, str, Any]:
    """One attempt: the task model built from `big_dir` with `seed`, trained; the model, the record of the body it
    started from and the Trainer's result."""
    cfg = ctx.cfg
    seed_everything(seed)
    model = task.build_model(family, str(big_dir))
    # the pretrained body this model starts from, for `mmadapt swap` (mmadapt.model.packs); taken before
    # training, which changes the layers (and under ZeRO-3 partitions them)
    record = (body_record_text(describe_body(model, cfg.model.family, family)["digest"], cfg.model.family)
              if ctx.dist.is_main else "")
    for p in family.embeddings(model).parameters():
        p.requires_grad_(False)
    objective = SupervisedObjective(model)
    result = Trainer(ctx, objective, trainable_parameters(objective), FeatureDataset(features, seed), seed=seed,
                     plateau=watch).train()
    return model, record, result


def _attempt_seed(ctx: StageContext, restarts: int) -> int:
    """The seed of the attempt after `restarts` restarts."""
    return int(ctx.cfg.seed) + RESTART_SEED_STRIDE * restarts


def _plateau_watch(ctx: StageContext, restarts: int) -> PlateauWatch | None:
    """The check of `finetune.restart` for the attempt after `restarts` restarts (None: no check this run);
    the last allowed attempt is checked only to warn."""
    restart = ctx.cfg.finetune.restart
    if not restart.at_step or restart.at_step >= ctx.cfg.train.max_steps:
        return None
    return PlateauWatch(int(restart.at_step), int(restart.window), float(restart.loss_fraction),
                        raise_when_stuck=restarts < restart.max_restarts)


def _recorded_restarts(ctx: StageContext) -> list[dict]:
    """The restarts an interrupted run of these settings made already (none for a fresh stage)."""
    return list((recorded_restarts(ctx) or {}).get("restarts", []))


def _start_over(ctx: StageContext, restarts: list[dict], stuck: StuckOnPlateau) -> None:
    """Record the restart, keep the stuck attempt's training curve beside the next one's and drop its checkpoints."""
    ctx.log(f"{ctx.label}: {stuck}: the fine-tune has not left the loss it started at; starting again from the "
            f"pretrained model with seed {_attempt_seed(ctx, len(restarts))} (restart "
            f"{len(restarts)} of at most {ctx.cfg.finetune.restart.max_restarts})")
    start_attempt_over(ctx, len(restarts), {"restarts": restarts})
