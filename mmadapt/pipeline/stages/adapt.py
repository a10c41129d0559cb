"""Stage `adapt`: new-language word embeddings trained with MLM over the (mini-)model.

Trainable: the word embeddings and the LM head's output bias (the decoder stays tied to
the embeddings). Frozen: position/type embeddings, the embedding LayerNorm, every layer,
the rest of the head. For mini strategies only the mini-model is trained over: the big model's
upper layers never enter training, unless `adapt.big_model_steps` asks for a few first steps
over the big model, or `adapt.big_model_every` for every Nth step (rank 0 loads the big model
once, before training, on the CPU, for the digest of the body the language pack fits).

Besides the embeddings (and snapshots), each language's stage publishes a language pack in
`pack/` (mmadapt.model.packs): the trained embeddings, the tokenizer and a manifest naming the body
they fit, for `mmadapt swap`.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from mmadapt.data.mlm import MaskedBlocks, MaskingSpec, build_blocks
from mmadapt.errors import MmadaptError
from mmadapt.files.digests import stage_fingerprint
from mmadapt.model.packs import PACK_DIR, describe_body, pack_manifest, write_pack
from mmadapt.model.surgery import (EMBEDDINGS_FILE, freeze_all_but, lm_head_bias, save_embeddings, share_vocabulary,
                                   swap_word_embeddings)
from mmadapt.pipeline.building_blocks import cache_dir, model_family, source_fingerprints, text_sources
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.lifecycle import StageUnit, outcome_settings, recorded_restarts, run_stage, start_attempt_over
from mmadapt.pipeline.outputs import AdaptCost, AdaptOutputs, BasinRestart
from mmadapt.pipeline.plan import AdaptAttempt
from mmadapt.pipeline.stages.basin_probe import ProbeReading, SourceKappaProbe
from mmadapt.pipeline.stages.initialisation import init_data_fingerprints, initial_embeddings
from mmadapt.pipeline.stages.snapshots import SNAPSHOT_DIR, snapshot_saver, trained_embeddings
from mmadapt.training.flops import adapt_flops_per_token
from mmadapt.training.objectives import InterleavedMaskedLMObjective, MaskedLMObjective, mlm_head_name
from mmadapt.training.trainer import Trainer, seed_everything

INITIAL_EMBEDDINGS_FILE = "embeddings_init.safetensors"
#: where the big-model steps of a mini strategy's adaptation checkpoint (`adapt.big_model_steps`)
BIG_MODEL_STEPS_DIR = "big_model_steps"


def adapt_language(ctx: StageContext, language: str, model_dir: Path, tokenizer_dir: Path,
                   upstream: str, big_dir: Path | None = None, big_model_steps_cfg: Any = None,
                   probe: SourceKappaProbe | None = None, whole_batch: AdaptAttempt | None = None) -> AdaptOutputs:
    """Train `language`'s embeddings into ctx.stage_dir; skipped if complete for these settings.

    With `adapt.big_model_steps` N > 0 and a mini-model (`model_dir` is not `big_dir`), the first
    N steps run over the big model (with `big_model_steps_cfg`, the run plan's config for them) and
    the embeddings then continue over the mini-model for `train.max_steps` steps: the big model
    picks the solution the cheaper mini-model refines. With `adapt.big_model_every` N > 0, every
    Nth of those steps runs over the big model too (`InterleavedMaskedLMObjective`). With
    `adapt.restart.at_step` and a mini-model, `probe` reads the embeddings at that step, and when they missed the
    big model's basin the stage starts again once with `whole_batch` (mmadapt.pipeline.stages.basin_probe).
    """
    cfg = ctx.cfg
    over_mini = big_dir is not None and Path(big_dir) != Path(model_dir)  # the strategy made a mini-model
    steps_over_big = int(cfg.adapt.big_model_steps) if over_mini else 0
    interleave_every = int(cfg.adapt.big_model_every) if over_mini else 0
    adapt_settings = outcome_settings(cfg.adapt)
    init = ctx.plugins.embedding_inits.get(cfg.adapt.init.name)
    init_data = init_data_fingerprints(ctx, language) if init.reads_corpora else None
    if not over_mini:  # the big-model steps change nothing for a strategy that adapts over the big model
        adapt_settings.update(big_model_steps=0, big_model_micro_batch_size=0)
    if not interleave_every:  # none: as before the key existed, so earlier runs stay complete
        adapt_settings.pop("big_model_every", None)
    # the run plan decided whether `adapt.restart` applies (on, and before the last step): it planned `whole_batch`
    probing = over_mini and whole_batch is not None
    if not probing:  # off, past the last step, or nothing to probe: as before the key existed
        adapt_settings.pop("restart", None)
    elif probe is None:
        raise MmadaptError(f"adapt/{language}: adapt.restart.at_step is {cfg.adapt.restart.at_step} but no probe was "
                           "given (mmadapt.pipeline.runner)")

    def fingerprint() -> str:
        return stage_fingerprint(
            "adapt", pretrained=upstream, adapt=adapt_settings, train=outcome_settings(cfg.train, is_train=True),
            # the corpus by content, and the tokenizer settings: the tokenizer stage re-trains on either
            corpus=source_fingerprints(ctx, cfg.languages[language].corpus),
            eval_corpus=source_fingerprints(ctx, cfg.languages[language].eval_corpus), tokenizer=cfg.tokenizer,
            block_size=cfg.data.block_size, mlm_probability=cfg.data.mlm_probability, precision=cfg.precision,
            deepspeed=cfg.deepspeed.resolved, seed=cfg.seed, **({"init_data": init_data} if init_data else {}),
            **({"restart_probe": probe.fingerprint} if probing else {}))

    if steps_over_big > 0 and big_model_steps_cfg is None:
        raise MmadaptError(f"adapt/{language}: adapt.big_model_steps is {steps_over_big} but no config was planned "
                           "for those steps (mmadapt.pipeline.plan.StrategyRun.big_model_steps_cfg)")
    return run_stage(StageUnit(f"adapt/{language}", ctx, fingerprint,
                               lambda stage: _adapt(stage, language, model_dir, tokenizer_dir, big_dir,
                                                    big_model_steps_cfg if steps_over_big > 0 else None,
                                                    interleave_every, probe if probing else None, whole_batch),
                               AdaptOutputs))


class MissedBasin(Exception):
    """`adapt.restart`'s probe read a `source_kappa` under `adapt.restart.min_source_kappa`."""

    def __init__(self, step: int, train_seconds: float, reading: ProbeReading):
        super().__init__(f"source kappa {reading.source_kappa:.3f} at step {step}")
        self.step, self.train_seconds, self.reading = step, train_seconds, reading
        #: what the attempt spent up to the probe (filled in on the way out of the stage's training)
        self.spent: AdaptCost | None = None

    def restart(self) -> BasinRestart:
        """The record of the restart: the abandoned attempt's whole cost, its probe's forward passes included."""
        spent = self.spent
        return BasinRestart(self.step, self.reading.source_kappa, True,
                            abandoned_flops=spent.flops + self.reading.flops,
                            abandoned_seconds=round(spent.seconds + self.reading.seconds, 3),
                            abandoned_tokens=spent.tokens)


def _adapt(ctx: StageContext, language: str, model_dir: Path, tokenizer_dir: Path, big_dir: Path | None,
           big_model_steps_cfg: Any, interleave_every: int = 0, probe: SourceKappaProbe | None = None,
           whole_batch: AdaptAttempt | None = None) -> AdaptOutputs:
    """The adapt stage's work (`ctx`: the stage's context): one attempt, or with `probe` (`adapt.restart`) a probed
    one and, when it missed the big model's basin, a second with `whole_batch`'s configs (the record of the
    restart kept in the stage's directory, so a resumed run goes on with the second)."""
    restart = _recorded_restart(ctx) if probe is not None else None
    if restart is None:
        try:
            return _attempt(ctx, language, model_dir, tokenizer_dir, big_dir, big_model_steps_cfg, interleave_every,
                            probe)
        except MissedBasin as missed:
            restart = missed.restart()
            _start_over(ctx, language, restart)
    return _attempt(replace(ctx, cfg=whole_batch.cfg), language, model_dir, tokenizer_dir, big_dir,
                    whole_batch.big_model_steps_cfg, interleave_every, restart=restart)


def _recorded_restart(ctx: StageContext) -> BasinRestart | None:
    """The restart an interrupted run of these settings made already (None for a fresh stage)."""
    recorded = recorded_restarts(ctx)
    return BasinRestart(**recorded["restart"]) if recorded else None


def _start_over(ctx: StageContext, language: str, restart: BasinRestart) -> None:
    """Say so, drop the missed attempt's checkpoints, its big-model steps' and its snapshots, keep its training
    curve beside the next attempt's, and record the restart."""
    limit = ctx.cfg.adapt.restart.min_source_kappa
    ctx.log(f"warning: adapt[{language}]: source kappa {restart.source_kappa:.3f} at step {restart.at_step}, "
            f"under adapt.restart.min_source_kappa {limit}: the embeddings missed the big model's basin; starting "
            f"again from the initial embeddings with every big-model step on the whole micro-batch of "
            f"{ctx.cfg.train.micro_batch_size} (the missed attempt's compute counted)")
    start_attempt_over(ctx, 1, {"restart": asdict(restart)}, (BIG_MODEL_STEPS_DIR, SNAPSHOT_DIR))


def _attempt(ctx: StageContext, language: str, model_dir: Path, tokenizer_dir: Path, big_dir: Path | None,
             big_model_steps_cfg: Any, interleave_every: int = 0, probe: SourceKappaProbe | None = None,
             restart: BasinRestart | None = None) -> AdaptOutputs:
    """One attempt at the stage's work: initial and trained embeddings (and snapshots), the language pack, and
    what it cost (`restart`: the record of the attempt this one replaces, its cost counted). With `probe`, raises
    `MissedBasin` at `adapt.restart.at_step` when the embeddings missed the big model's basin."""
    cfg = ctx.cfg
    family = model_family(ctx)
    seed_everything(cfg.seed)
    model = family.load_pretrained(str(model_dir))
    big = family.load_pretrained(str(big_dir)) if big_model_steps_cfg is not None or interleave_every else None
    # before any training: under ZeRO-3 the weights are partitioned from then on
    body = _pack_body(ctx, family, model, model_dir, big_dir, big)
    tokenizer = family.load_tokenizer(str(tokenizer_dir))
    weight, init_cost = initial_embeddings(ctx, language, model, tokenizer, family.load_tokenizer(str(model_dir)))
    if ctx.dist.is_main:
        save_embeddings(ctx.stage_dir / INITIAL_EMBEDDINGS_FILE, weight, None)
    train_set, eval_set = language_mlm_data(ctx, language, tokenizer)
    start, bias = None, None
    if big_model_steps_cfg is not None:
        weight, bias, start = _start_over_big_model(ctx, language, big, weight, big_model_steps_cfg, train_set)
    swap_word_embeddings(model, weight, bias)
    every = cfg.adapt.snapshot_every
    saver = snapshot_saver(ctx, model, every, cfg.train.max_steps) if every > 0 else None
    watch = _ProbeWatch(ctx, language, model, probe) if probe is not None else None
    ctx.log(f"adapt[{language}]: {weight.numel()} embedding weights over {model.config.num_hidden_layers} layers "
            f"({model_dir})")
    try:
        cost = _train_embeddings(ctx, model, train_set, eval_set, _each(saver, watch),
                                 (big, interleave_every) if interleave_every else None)
    except MissedBasin as missed:
        missed.spent = (missed.spent.with_big_model_steps(start) if start is not None else missed.spent
                        ).with_init(init_cost)
        raise
    cost = (cost.with_big_model_steps(start) if start is not None else cost).with_init(init_cost)
    if restart is not None or (watch is not None and watch.record is not None):
        cost = cost.with_restart(restart or watch.record)
    outputs = AdaptOutputs(ctx.fingerprint, ctx.stage_dir / EMBEDDINGS_FILE, ctx.stage_dir / INITIAL_EMBEDDINGS_FILE,
                           tokenizer_dir, ctx.stage_dir / PACK_DIR, ctx.stage_dir / SNAPSHOT_DIR if every > 0 else None,
                           cost)
    trained_weight, trained_bias = trained_embeddings(model)
    if ctx.dist.is_main:
        save_embeddings(outputs.embeddings, trained_weight, trained_bias)
        manifest = pack_manifest(language, OmegaConf.to_container(cfg.strategy, resolve=True), cfg.adapt.init.name,
                                 cost, body, len(tokenizer), ctx.fingerprint)
        write_pack(outputs.pack, outputs.embeddings, tokenizer_dir, manifest)
    return outputs


def _each(*hooks: Any) -> Any:
    """One Trainer `on_step` hook calling each of `hooks` (None: left out) in turn; None for none."""
    present = [hook for hook in hooks if hook is not None]
    if not present:
        return None

    def on_step(step: int, seconds: float) -> None:
        for hook in present:
            hook(step, seconds)

    return on_step


class _ProbeWatch:
    """A Trainer `on_step` hook: at `adapt.restart.at_step`, the probe's reading of the embeddings; raises
    `MissedBasin` under `adapt.restart.min_source_kappa`, and otherwise keeps the record of the probe (`record`).
    An undefined kappa (one answer to everything in both languages: the fine-tune, not the embeddings, failed to
    tell examples apart) warns and goes on."""

    def __init__(self, ctx: StageContext, language: str, model: Any, probe: SourceKappaProbe):
        self.ctx, self.language, self.model, self.probe = ctx, language, model, probe
        self.at_step, self.limit = int(ctx.cfg.adapt.restart.at_step), float(ctx.cfg.adapt.restart.min_source_kappa)
        self.record: BasinRestart | None = None

    def __call__(self, step: int, seconds: float) -> None:
        if step != self.at_step:
            return
        weight, bias = trained_embeddings(self.model)  # every rank: gathering is collective
        reading = self.probe.read(weight, bias, self.ctx.stage_dir)
        if reading.source_kappa is not None and reading.source_kappa < self.limit:
            raise MissedBasin(step, seconds, reading)
        self.record = BasinRestart(step, reading.source_kappa, False, reading.flops, reading.seconds)
        if reading.source_kappa is None:
            self.ctx.log(f"warning: adapt[{self.language}]: the probe at step {step} cannot read a source kappa: the "
                         "fine-tuned model gives one answer to every example, in both languages (its source score "
                         "shows whether it learned the task); going on without a restart")
        else:
            self.ctx.log(f"adapt[{self.language}]: source kappa {reading.source_kappa:.3f} at step {step}, at least "
                         f"adapt.restart.min_source_kappa {self.limit}: going on")


def _pack_body(ctx: StageContext, family: Any, model: Any, model_dir: Path, big_dir: Path | None,
               big: Any) -> dict[str, Any] | None:
    """The body the pack fits (rank 0; `mmadapt.model.packs.describe_body`): the big model's, which the
    embeddings are for, even when they are trained over a mini-model (loaded here only for its digest
    when the stage has no other use for it)."""
    if not ctx.dist.is_main:
        return None
    if big is None:
        big = model if big_dir is None or Path(big_dir) == Path(model_dir) else family.load_pretrained(str(big_dir))
    return describe_body(big, ctx.cfg.model.family, family)


def language_mlm_data(ctx: StageContext, language: str, tokenizer: Any) -> tuple[MaskedBlocks, MaskedBlocks | None]:
    """The language's masked MLM blocks for training (and evaluation, with an `eval_corpus`)."""
    cfg, data = ctx.cfg, ctx.cfg.data
    spec = MaskingSpec.from_tokenizer(tokenizer, data.mlm_probability)
    section = cfg.languages[language]
    blocks = build_blocks(text_sources(ctx, section.corpus), tokenizer, data.block_size, cache_dir(cfg), ctx.dist,
                          f"languages.{language}.corpus", data.prepare_processes)
    eval_set = None
    if section.eval_corpus:
        eval_blocks = build_blocks(text_sources(ctx, section.eval_corpus), tokenizer, data.block_size, cache_dir(cfg),
                                   ctx.dist, f"languages.{language}.eval_corpus", data.prepare_processes)
        eval_set = MaskedBlocks(eval_blocks, spec, cfg.seed + 1)
    return MaskedBlocks(blocks, spec, cfg.seed), eval_set


def _train_embeddings(ctx: StageContext, model: Any, train_set: MaskedBlocks, eval_set: MaskedBlocks | None,
                      on_step: Any = None, interleaved: tuple[Any, int] | None = None) -> AdaptCost:
    """Train `model`'s word embeddings and LM-head bias (all else frozen); what the training cost.

    `interleaved`: (the big model, N): every Nth step runs over the big model instead, sharing the
    embeddings and bias (on `adapt.big_model_micro_batch_size` of the step's sequences)."""
    vocabulary = [model.get_input_embeddings().weight, lm_head_bias(model)]
    trainable = freeze_all_but(model, vocabulary)
    train, data = ctx.cfg.train, ctx.cfg.data
    sequences = train.micro_batch_size * train.grad_accum * ctx.dist.world_size  # per step
    objective: Any = MaskedLMObjective(model)
    before_step, big, every, big_sequences = None, None, 0, 0
    if interleaved is not None:
        big, every = interleaved
        share_vocabulary(big, model)
        freeze_all_but(big, vocabulary)
        big_batch = int(ctx.cfg.adapt.big_model_micro_batch_size) or train.micro_batch_size  # at most it (checked)
        objective = InterleavedMaskedLMObjective(model, big, every, big_batch)
        before_step = objective.start_step
        big_sequences = big_batch * train.grad_accum * ctx.dist.world_size
    flops_per_token = _adapt_flops_per_token(ctx, model)

    def cost(steps: int, seconds: float) -> AdaptCost:
        over_big = InterleavedMaskedLMObjective.big_model_steps_in(steps, every) if every else 0
        mini_tokens = (steps - over_big) * sequences * data.block_size
        big_tokens = over_big * big_sequences * data.block_size
        flops = mini_tokens * flops_per_token + (big_tokens * _adapt_flops_per_token(ctx, big) if over_big else 0)
        return AdaptCost(steps=steps, seconds=round(seconds, 3), tokens=mini_tokens + big_tokens,
                         flops=int(round(flops)), flops_per_token=flops_per_token, peak_memory_bytes=None,
                         peak_memory_source=None, data_wait_fraction=None, model_layers=model.config.num_hidden_layers,
                         final_loss=None, big_model_interleaved=over_big if every else None)

    try:
        result = Trainer(ctx, objective, trainable, train_set, eval_set, on_step=on_step,
                         before_step=before_step).train()
    except MissedBasin as missed:  # what the steps up to the probe spent
        missed.spent = cost(missed.step, missed.train_seconds)
        raise
    return replace(cost(result.steps, result.wall_seconds), peak_memory_bytes=result.peak_memory_bytes,
                   peak_memory_source=result.peak_memory_source,
                   data_wait_fraction=round(result.data_wait_fraction, 5), final_loss=result.last_metrics.get("loss"))


def _adapt_flops_per_token(ctx: StageContext, model: Any) -> float:
    """Analytic training FLOPs per token of adapting over `model` (mmadapt.training.flops): the MLM head
    runs at masked positions only, so at `data.mlm_probability` of them."""
    return adapt_flops_per_token(model.config, model.config.num_hidden_layers, ctx.cfg.data.block_size,
                                 vocab_size=model.get_input_embeddings().weight.shape[0],
                                 masked_fraction=ctx.cfg.data.mlm_probability if mlm_head_name(model) else None)


def _start_over_big_model(ctx: StageContext, language: str, big: Any, weight: torch.Tensor, cfg: Any,
                          train_set: MaskedBlocks) -> tuple[torch.Tensor, torch.Tensor | None, AdaptCost]:
    """The first adapt steps over the big model (`cfg`: the run plan's config for them), in their own
    checkpoint directory (its checkpoints carry the stage's fingerprint with the directory's name);
    returns the embeddings, LM-head bias and what those steps cost."""
    steps = int(cfg.train.max_steps)
    sub = replace(ctx, cfg=cfg, stage_dir=ctx.stage_dir / BIG_MODEL_STEPS_DIR,
                  fingerprint=f"{ctx.fingerprint}:{BIG_MODEL_STEPS_DIR}")
    swap_word_embeddings(big, weight)
    ctx.log(f"adapt[{language}]: the first {steps} steps over the big model ({big.config.num_hidden_layers} layers)")
    spent = _train_embeddings(sub, big, train_set, None)
    trained_weight, trained_bias = trained_embeddings(big)
    return trained_weight, trained_bias, spent
