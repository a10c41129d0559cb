"""Stage `pretrain`: the strategy's own pretraining (its `big/`, and for a mini-model strategy
`mini/` and `manifest.json`), or the big model a strategy takes as it is."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmadapt.context import StageContext
from mmadapt.digests import digest, stage_fingerprint
from mmadapt.flops import ModelShape
from mmadapt.pipeline.plan import StrategyRun
from mmadapt.pipeline.stages import StageRecord, StageUnit, outcome_settings, run_stage
from mmadapt.pretraining import data_fingerprint, resolve_pretrained
from mmadapt.trainer import TRAIN_SUMMARY, seed_everything


def pretrain(run: StrategyRun, plugins: Any, dist: Any) -> StageRecord:
    """Run `run`'s pretrain stage into `<run_dir>/pretrain` (skipped if complete for these settings)."""
    cfg = run.pretrain_cfg
    ctx = StageContext(cfg, plugins, dist, run.run_dir, run.run_dir / "pretrain", strategy=run.name)

    def fingerprint() -> str:
        strategy = {k: v for k, v in outcome_settings(cfg.strategy).items() if k != "adapt_train"}  # a later stage's
        return stage_fingerprint("pretrain", seed=cfg.seed, precision=cfg.precision, model=cfg.model, strategy=strategy,
                                 data=data_fingerprint(ctx), train=outcome_settings(cfg.train, is_train=True),
                                 deepspeed=cfg.deepspeed.resolved)

    def work() -> tuple[dict[str, Path], dict[str, Any]]:
        ctx.log(f"pretrain: strategy {run.name!r} -> {ctx.stage_dir}")
        seed_everything(cfg.seed)  # the same on every rank: models must be built identically
        outputs = plugins.strategies.get(run.name).pretrain(ctx)
        return outputs, _pretrain_metrics(cfg, plugins, ctx.stage_dir, Path(outputs["big"]))

    return run_stage(StageUnit("pretrain", ctx, fingerprint, work))


def given_big_model(run: StrategyRun) -> StageRecord:
    """The record of a strategy that starts from `model.pretrained` without pretraining (no stage runs)."""
    big = resolve_pretrained(run.pretrain_cfg.model.pretrained)
    return StageRecord(digest("init_from", big), {"big": big})


def reused_big_model(reused: StageRecord) -> StageRecord:
    """The record of a strategy that takes the big model of the strategy it reuses as it is."""
    return StageRecord(digest("reuse", reused.fingerprint), {"big": reused.outputs["big"]})


def _pretrain_metrics(cfg: DictConfig, plugins: Any, stage_dir: Path, big: Path) -> dict[str, Any]:
    """The Trainer's summary of the pretrain stage plus its analytic FLOPs (when the strategy has a model)."""
    path = stage_dir / TRAIN_SUMMARY
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    shape = ModelShape.of(json.loads((big / "config.json").read_text()))
    plan = plugins.strategies.get(cfg.strategy.name).predict_compute(cfg.strategy, shape, int(cfg.data.block_size),
                                                                     float(cfg.data.mlm_probability), plugins)
    if plan is not None and "tokens" in metrics:
        metrics["flops_per_token"] = plan.pretrain.total
        metrics["flops"] = int(round(metrics["tokens"] * plan.pretrain.total))
    return metrics
