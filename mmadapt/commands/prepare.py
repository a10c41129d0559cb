"""`mmadapt data prepare`: tokenise every corpus a recipe's stages will read, ahead of training.

On a CPU node before a GPU job, say: the blocks land in the data cache (`data.cache_dir`, else
`$MMADAPT_CACHE`), keyed on the data, tokenizer and settings, where `mmadapt train` with the same
recipe finds them. The tokenizers those corpora need are made first, as training would make them:
the pretraining tokenizer (`model.tokenizer`, `model.pretrained`, or one trained on `data.train`
into the cache) and, when the recipe adapts, each language's tokenizer (stage `tokenizer`,
written into `output_dir` and skipped by the run as complete).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmadapt.data.mlm import INFO_FILE, blocks_dir, build_blocks
from mmadapt.data.sources import TextSource
from mmadapt.files.locks import held_lock
from mmadapt.pipeline.building_blocks import cache_dir, load_tokenizer, text_sources
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.plan import RunPlan, StrategyRun, runs_stage, stage_work_listed
from mmadapt.pipeline.stages.tokenizer import train_language_tokenizer
from mmadapt.training.distributed import init_distributed
from mmadapt.training.progress import quiet_third_party_bars


@dataclass
class PreparedCorpus:
    """One corpus's blocks in the cache."""

    what: str
    blocks: int
    block_size: int
    directory: Path
    #: False when an earlier run or prepare had already built them
    built: bool


def prepare_recipe_data(plan: RunPlan, plugins: Any) -> list[PreparedCorpus]:
    """Build (or find) the blocks of every corpus the plan's stages read; what each is and where it lies."""
    cfg, runs = plan.cfg, list(plan.strategies)
    dist = init_distributed(cfg.distributed.timeout_minutes)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_third_party_bars()
    output_dir = plan.layout.output_dir
    prepared: list[PreparedCorpus] = []
    # the language tokenizers are written into output_dir, which one run at a time may write
    with held_lock(plan.layout.run_lock, dist, what=f"output_dir {output_dir}"):
        for run in _pretraining_runs(runs, cfg, plugins):
            stage_dir = plan.layout.stage_dir(run.name, "pretrain")
            ctx = StageContext(run.pretrain_cfg, plugins, dist, run.run_dir, stage_dir, run_root=run.run_root)
            tokenizer = load_tokenizer(ctx)
            for what in ("train", "eval"):
                prepared += _prepare(ctx, f"data.{what}", text_sources(ctx, ctx.cfg.data[what]), tokenizer, prepared)
        if stage_work_listed("tokenizer", list(cfg.stages)):
            ctx = StageContext(cfg, plugins, dist, output_dir, plan.layout.tokenizers)
            family = plugins.model_families.get(cfg.model.family)
            for language in plan.languages:
                trained = train_language_tokenizer(ctx, language)
                if "adapt" not in cfg.stages:
                    continue
                tokenizer = family.load_tokenizer(str(trained.tokenizer))
                section = cfg.languages[language]
                for key in ("corpus", "eval_corpus"):
                    prepared += _prepare(ctx, f"languages.{language}.{key}", text_sources(ctx, section[key]),
                                         tokenizer, prepared)
    return prepared


def _pretraining_runs(runs: list[StrategyRun], cfg: DictConfig, plugins: Any) -> list[StrategyRun]:
    """The runs whose pretraining reads `data:` with a tokenizer of their own.

    A run that starts from another strategy's big model (`reuse`, `init_from`) reads the same data
    with that model's tokenizer, which is the other run's: it adds no corpus (and its model does not
    exist before training).
    """
    if not stage_work_listed("pretrain", list(cfg.stages)):
        return []
    return [run for run in runs if runs_stage(run, "pretrain", list(cfg.stages), plugins)
            and not ((run.reuse or run.init_from) and not run.cfg.model.tokenizer)]


def _prepare(ctx: StageContext, what: str, sources: list[TextSource], tokenizer: Any,
             done: list[PreparedCorpus]) -> list[PreparedCorpus]:
    """The blocks of one corpus (none when it lists no sources, or was prepared already in this call)."""
    if not sources:
        return []
    data = ctx.cfg.data
    directory = blocks_dir(sources, tokenizer, data.block_size, cache_dir(ctx.cfg))
    if any(corpus.directory == directory for corpus in done):
        return []
    existed = (directory / INFO_FILE).is_file()
    blocks = build_blocks(sources, tokenizer, data.block_size, cache_dir(ctx.cfg), ctx.dist, what,
                          data.prepare_processes)
    return [PreparedCorpus(what, len(blocks), int(data.block_size), directory, not existed)]
