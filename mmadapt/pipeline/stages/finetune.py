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
from mmadapt.pipeline.lifecycle import StageUnit, outcome_settings, run_stage, task_data_digests, task_settings
from mmadapt.pipeline.outputs import FinetuneOutputs
from mmadapt.training.engine import trainable_parameters
from mmadapt.training.flops import finetune_flops_per_token
from mmadapt.training.objectives import SupervisedObjective
from mmadapt.training.trainer import Trainer, seed_everything


def finetune_task(ctx: StageContext, task_section: Any, big_dir: Path, upstream: str) -> FinetuneOutputs:
    """Fine-tune on one task into ctx.stage_dir/model; skipped if complete for these settings."""
    cfg = ctx.cfg
    task = ctx.plugins.tasks.get(task_section.name)

    def fingerprint() -> str:
        language = task.option_value(task_section, task.train_language_option) or ""
        train_data = task_data_digests(task, task_section, "train", language)
        return stage_fingerprint("finetune", pretrained=upstream, task=task_settings(task_section),
                                 train_data=train_data, finetune=outcome_settings(cfg.finetune),
                                 train=outcome_settings(cfg.train, is_train=True), precision=cfg.precision, deepspeed=cfg.deepspeed.resolved, seed=cfg.seed)

    return run_stage(StageUnit(f"finetune/{task_section.name}", ctx, fingerprint,
                               lambda stage: _finetune(stage, task, task_section, big_dir), FinetuneOutputs))


def _finetune(ctx: StageContext, task: Any, task_section: Any, big_dir: Path) -> FinetuneOutputs:
    """The finetune stage's work (`ctx`: the stage's context): the fine-tuned model and its metrics."""
    cfg = ctx.cfg
    family = model_family(ctx)
    seed_everything(cfg.seed)
    tokenizer = family.load_tokenizer(str(big_dir))
    model = task.build_model(family, str(big_dir))
    # the pretrained body this model starts from, for `mmadapt swap` (mmadapt.model.packs); taken before
    # training, which changes the layers (and under ZeRO-3 partitions them)
    record = (body_record_text(describe_body(model, cfg.model.family, family)["digest"], cfg.model.family)
              if ctx.dist.is_main else "")
    for p in family.embeddings(model).parameters():
        p.requires_grad_(False)
    features = task.train_features(task.train_examples(task_section), tokenizer, task_section)
    objective = SupervisedObjective(model)
    result = Trainer(ctx, objective, trainable_parameters(objective), FeatureDataset(features, cfg.seed)).train()
    model_dir = save_pretrained_atomic(model, ctx.stage_dir / "model", ctx.dist, tokenizer, {BODY_RECORD: record},
                                       family.max_sequence_length(model.config.to_dict()))
    seq_len = int(features[0]["input_ids"].shape[-1]) if features else 0
    flops_per_token = finetune_flops_per_token(model.config, seq_len)
    metrics = {**result.summary(), "flops": int(round(result.tokens * flops_per_token)),
               "flops_per_token": flops_per_token, "train_features": len(features)}
    return FinetuneOutputs(ctx.fingerprint, model_dir, metrics)
