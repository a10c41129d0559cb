"""Stage `pretrain`: the strategy's own pretraining (its `big/`, and for a mini-model strategy
`mini/` and `manifest.json`), or the big model a strategy takes as it is."""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmadapt.files.digests import digest, stage_fingerprint
from mmadapt.pipeline.building_blocks import data_fingerprint, resolve_pretrained
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.lifecycle import StageUnit, outcome_settings, run_stage
from mmadapt.pipeline.outputs import PretrainOutputs
from mmadapt.pipeline.plan import StrategyRun
from mmadapt.recipe.schema import StrategySection
from mmadapt.training.flops import ModelShape
from mmadapt.training.trainer import read_train_summary, seed_everything


#: the keys every `strategy:` section has (the rest are its plugin's options)
STRATEGY_SECTION_KEYS = frozenset(f.name for f in fields(StrategySection))


def pretrain(run: StrategyRun, plugins: Any, dist: Any, started_from: PretrainOutputs | None = None) -> PretrainOutputs:
    """Run `run`'s pretrain stage into `<run_dir>/pretrain` (skipped if complete for these settings).

    `started_from`: the outputs of the strategy whose big model this one reuses or continues (`reuse`,
    `init_from`); its fingerprint, not the path it lies at, stands for `model.pretrained` in this stage's, so
    that re-training that big model re-runs this stage, and a moved run directory does not."""
    cfg = run.pretrain_cfg
    ctx = StageContext(cfg, plugins, dist, run.run_dir, run.run_dir / "pretrain", strategy=run.name,
                       run_root=run.run_root)

    def fingerprint() -> str:
        # `adapt_train` is a later stage's; a plugin's option left unset (None) is as if absent, so that an option
        # a strategy adds later leaves the runs made before it complete
        strategy = {k: v for k, v in outcome_settings(cfg.strategy).items()
                    if k != "adapt_train" and (k in STRATEGY_SECTION_KEYS or v is not None)}
        model = OmegaConf.to_container(cfg.model, resolve=True)
        if started_from is not None:
            model["pretrained"] = {"big model of": run.reuse or run.init_from, "fingerprint": started_from.fingerprint}
        return stage_fingerprint("pretrain", seed=cfg.seed, precision=cfg.precision, model=model, strategy=strategy,
                                 data=data_fingerprint(ctx), train=outcome_settings(cfg.train, is_train=True),
                                 deepspeed=cfg.deepspeed.resolved)

    def work(stage: StageContext) -> PretrainOutputs:
        stage.log(f"pretrain: strategy {run.name!r} -> {stage.stage_dir}")
        seed_everything(cfg.seed)  # the same on every rank: models must be built identically
        dirs = {key: Path(value) for key, value in plugins.strategies.get(run.name).pretrain(stage).items()}
        big, mini = dirs.pop("big"), dirs.pop("mini", None)
        return PretrainOutputs(stage.fingerprint, big, mini, _pretrain_metrics(cfg, plugins, stage.stage_dir, big),
                               other_dirs=dirs)

    return run_stage(StageUnit("pretrain", ctx, fingerprint, work, PretrainOutputs))


def given_big_model(run: StrategyRun) -> PretrainOutputs:
    """The outputs of a strategy that starts from `model.pretrained` without pretraining (no stage runs)."""
    big = resolve_pretrained(run.pretrain_cfg.model.pretrained)
    return PretrainOutputs(digest("init_from", big), Path(big))


def reused_big_model(reused: PretrainOutputs) -> PretrainOutputs:
    """The outputs of a strategy that takes the big model of the strategy it reuses as it is."""
    return PretrainOutputs(digest("reuse", reused.fingerprint), reused.big)


def _pretrain_metrics(cfg: DictConfig, plugins: Any, stage_dir: Path, big: Path) -> dict[str, Any]:
    """The Trainer's summary of the pretrain stage (read from the stage directory: the strategy's `pretrain`
    returns only its directories) plus its analytic FLOPs (when the strategy has a model)."""
    metrics = read_train_summary(stage_dir)
    shape = ModelShape.of(json.loads((big / "config.json").read_text()))
    plan = plugins.strategies.get(cfg.strategy.name).predict_compute(cfg.strategy, shape, int(cfg.data.block_size),
                                                                     float(cfg.data.mlm_probability), plugins)
    if plan is not None and "tokens" in metrics:
        metrics["flops_per_token"] = plan.pretrain.total
        metrics["flops"] = int(round(metrics["tokens"] * plan.pretrain.total))
    return metrics
