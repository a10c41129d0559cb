"""Running a resolved recipe: its stages, for each of its strategies, then the report."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmadapt.context import StageContext
from mmadapt.data.sources import resolve_synth_paths
from mmadapt.distributed import barrier, init_distributed
from mmadapt.flops import ModelShape
from mmadapt.pipeline.adapt import adapt_language, adapt_model_dir
from mmadapt.pipeline.alignment import language_alignment
from mmadapt.pipeline.checks import check_pipeline
from mmadapt.pipeline.finetune import finetune_task
from mmadapt.pipeline.plan import StrategyRun, plan_runs, reuses_big_model_as_is, stage_cfg, task_languages
from mmadapt.pipeline.report import table, write_report
from mmadapt.pipeline.stages import completed, digest, finish_stage, outcome_settings
from mmadapt.pipeline.tokenizer_stage import train_language_tokenizer
from mmadapt.pipeline.transfer import source_scores, transfer_language
from mmadapt.progress import quiet_third_party_bars
from mmadapt.pretraining import cache_dir, data_fingerprint, resolve_pretrained
from mmadapt.recipe import save_resolved
from mmadapt.trainer import TRAIN_SUMMARY, seed_everything


@dataclass
class RunResult:
    """What each stage wrote (keyed "stage", or "strategy/stage" with several strategies)."""

    output_dir: Path
    outputs: dict[str, dict[str, Path]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def run_recipe(cfg: DictConfig, plugins: Any) -> RunResult:
    """Run every stage in `cfg.stages` for every strategy; finished stages are skipped."""
    check_pipeline(cfg, plugins=plugins)
    runs = plan_runs(cfg)
    for run in runs:
        plugins.strategies.get(run.name)
    dist = init_distributed()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_third_party_bars()
    output_dir = Path(cfg.output_dir)
    if dist.is_main:
        save_resolved(cfg, output_dir)
    barrier()
    result = RunResult(output_dir)
    tasks = _task_sections(cfg, dist)
    stages = list(cfg.stages)
    languages = list(cfg.adapt.languages) or list(cfg.languages)
    several = len(runs) > 1

    def key(run: StrategyRun, stage: str) -> str:
        return f"{run.name}/{stage}" if several else stage

    tokenizers = {}
    if "tokenizer" in stages or "adapt" in stages:
        ctx = StageContext(cfg, plugins, dist, output_dir, output_dir / "tokenizers")
        tokenizers = {lang: train_language_tokenizer(ctx, lang) for lang in languages}

    records: dict[str, dict] = {}
    for run in runs:
        if reuses_big_model_as_is(run, plugins):
            reused = records[run.reuse]["pretrain"]
            pretrain = {"fingerprint": digest("reuse", reused["fingerprint"]), "outputs": {"big": reused["outputs"]["big"]}}
        else:
            pretrain = _pretrain(run, plugins, dist, stages, result, key(run, "pretrain"))
        records[run.name] = {"pretrain": pretrain}
        if "adapt" in stages:
            adapt_cfg = stage_cfg(run.cfg, cfg.adapt.train, run.cfg.strategy.get("adapt_train"))
            for lang in languages:
                stage_dir = run.run_dir / "adapt" / lang
                ctx = StageContext(adapt_cfg, plugins, dist, run.run_dir, stage_dir)
                record = adapt_language(ctx, lang, adapt_model_dir(pretrain["outputs"]), tokenizers[lang],
                                        pretrain["fingerprint"], Path(pretrain["outputs"]["big"]))
                records[run.name][f"adapt/{lang}"] = record
                records[run.name][f"alignment/{lang}"] = (
                    language_alignment(ctx, lang, record, adapt_model_dir(pretrain["outputs"])) if dist.is_main else {})
                result.outputs[key(run, f"adapt/{lang}")] = {k: Path(v) for k, v in record["outputs"].items()}
        for task_section in tasks:
            task = task_section.name
            if "finetune" in stages or "transfer" in stages:
                if run.reuse:
                    finetuned = records[run.reuse][f"finetune/{task}"]
                else:
                    ft_cfg = stage_cfg(run.cfg, cfg.finetune.train, task_section.get("finetune_train"))
                    ctx = StageContext(ft_cfg, plugins, dist, run.run_dir, run.run_dir / "finetune" / task)
                    finetuned = finetune_task(ctx, task_section, Path(pretrain["outputs"]["big"]),
                                              pretrain["fingerprint"])
                records[run.name][f"finetune/{task}"] = finetuned
                result.outputs[key(run, f"finetune/{task}")] = {k: Path(v) for k, v in finetuned["outputs"].items()}
            if "transfer" in stages:
                ctx = StageContext(run.cfg, plugins, dist, run.run_dir, run.run_dir / "transfer" / task)
                source = source_scores(ctx, task_section, finetuned)
                plugin = plugins.tasks.get(task)
                for lang in task_languages(task_section, languages):
                    ctx = StageContext(run.cfg, plugins, dist, run.run_dir, run.run_dir / "transfer" / task / lang)
                    adapted = records[run.name][f"adapt/{lang}"]
                    record = transfer_language(ctx, task_section, finetuned, lang, adapted)
                    result.outputs[key(run, f"transfer/{task}/{lang}")] = {
                        k: Path(v) for k, v in record["outputs"].items()}
                    row = _row(run.name, task, lang, source[plugin.metric_names[0]], record, adapted,
                               records[run.name].get(f"alignment/{lang}", {}))
                    row["stage_metrics"] = {"pretrain": records[run.name]["pretrain"].get("metrics", {}),
                                            "adapt": adapted.get("metrics", {}),
                                            "finetune": finetuned.get("metrics", {})}
                    result.rows.append(row)
    if result.rows and dist.is_main:
        write_report(output_dir, result.rows, cfg.report.baseline)
        print(table(result.rows), flush=True)
    barrier()
    return result


def _task_sections(cfg: DictConfig, dist: Any) -> list[DictConfig]:
    """The task sections with `synth:DIR/FILE` paths made real (rank 0 generates the data first)."""
    cache = cache_dir(cfg)
    settings = OmegaConf.to_container(cfg.data.synth, resolve=True)
    sections = []
    for rank_turn in (True, False):
        if dist.is_main == rank_turn:
            sections = [OmegaConf.create(resolve_synth_paths(OmegaConf.to_container(t, resolve=True), settings, cache))
                        for t in cfg.tasks]
        barrier()
    return sections


def _row(strategy: str, task: str, language: str, source: float, transfer: dict, adapted: dict,
         alignment: dict) -> dict[str, Any]:
    m, a = transfer["metrics"], adapted["metrics"]
    by_step = alignment.get("alignment_by_step", {})
    curve = [{**point, "alignment_at_1": by_step[point["step"]]} if point["step"] in by_step else point
             for point in m.get("curve", [])]
    return {"strategy": strategy, "task": task, "language": language, "source_score": source,
            "target_score": m["target_score"], "control_score": m["control_score"],
            "adapt_steps": a["steps"], "adapt_seconds": a["seconds"], "adapt_flops": a["flops"],
            "adapt_big_model_steps": a.get("big_model_steps", 0),
            "adapt_tokens": a["tokens"], "adapt_model_layers": a["model_layers"],
            "adapt_peak_memory_bytes": a.get("peak_memory_bytes"), "adapt_data_wait_fraction": a.get("data_wait_fraction"),
            "target_metrics": m["target_metrics"], "control_metrics": m["control_metrics"],
            "alignment_at_1": alignment.get("alignment_at_1"), "alignment_pairs": alignment.get("alignment_pairs"),
            "curve": curve}


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


def _pretrain(run: StrategyRun, plugins: Any, dist: Any, stages: list[str], result: RunResult, key: str) -> dict:
    """The pretrain stage of one strategy: run, skip if complete, or take `model.pretrained`."""
    cfg = stage_cfg(run.cfg, run.cfg.strategy.train) if run.cfg.strategy.get("train") else run.cfg
    stage_dir = run.run_dir / "pretrain"
    ctx = StageContext(cfg, plugins, dist, run.run_dir, stage_dir)
    if "pretrain" not in stages:  # check_pipeline made sure this strategy may start from model.pretrained
        big = resolve_pretrained(cfg.model.pretrained)
        record = {"fingerprint": digest("init_from", big), "outputs": {"big": big}}
        result.outputs[key] = {"big": Path(big)}
        return record
    strategy = {k: v for k, v in outcome_settings(cfg.strategy).items() if k != "adapt_train"}  # a later stage's
    fingerprint = digest("pretrain", cfg.seed, cfg.precision, cfg.model, strategy, data_fingerprint(ctx),
                         outcome_settings(cfg.train, is_train=True),
                         cfg.deepspeed.resolved)
    ctx.fingerprint = fingerprint
    done = completed(stage_dir, fingerprint)
    if done:
        ctx.log(f"pretrain: already complete in {stage_dir} (same settings); skipping")
        result.skipped.append(key)
    else:
        ctx.log(f"pretrain: strategy {run.name!r} -> {stage_dir}")
        seed_everything(cfg.seed)  # the same on every rank: models must be built identically
        outputs = plugins.strategies.get(run.name).pretrain(ctx)
        metrics = _pretrain_metrics(cfg, plugins, stage_dir, Path(outputs["big"]))
        done = {"fingerprint": fingerprint, "outputs": {k: str(v) for k, v in outputs.items()}, "metrics": metrics}
        if dist.is_main:
            finish_stage(ctx, "pretrain", fingerprint, outputs, metrics)
        barrier()
    result.outputs[key] = {k: Path(v) for k, v in done["outputs"].items()}
    return done
