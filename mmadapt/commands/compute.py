"""`mmadapt compute`: a recipe's predicted training FLOPs per stage, without training.

Reads only configs: the recipe, `config.json` of a `model.pretrained` directory (or the
recipe's `model.config` over the family's defaults), and a tokenizer's size when the model's
vocabulary is the tokenizer's. Counts come from `mmadapt.training.flops` with the MLM head at masked
positions only (`data.mlm_probability` of them), which is what the objectives do.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmadapt.errors import MmadaptError
from mmadapt.training.flops import ModelShape, adapt_flops_per_token, finetune_flops_per_token, tokens_per_step


@dataclass
class StageCompute:
    """One stage of one strategy: FLOPs per token and per optimiser step."""

    stage: str
    per_token: float
    tokens_per_step: int
    what: str
    #: the run does this stage's work (mmadapt.pipeline.plan.runs_stage)
    runs: bool = True

    @property
    def per_step(self) -> float:
        return self.per_token * self.tokens_per_step


@dataclass
class StrategyPrediction:
    """The stages of one strategy and, for a mini-model strategy, full/mini of `adapt`."""

    strategy: str
    big: ModelShape
    stages: list[StageCompute] = field(default_factory=list)
    #: predicted FLOPs of full adapt (over the big model) / this strategy's adapt; None for `full`
    adapt_ratio: float | None = None
    #: the same over the whole adapt stage of `train.max_steps` steps, its big-model steps counted (None: none)
    adapt_stage_ratio: float | None = None
    note: str = ""


def model_shape(cfg: Any, plugins: Any) -> tuple[ModelShape, str]:
    """The big model's shape and where it was read from (no weights are loaded)."""
    from mmadapt.pipeline.building_blocks import resolve_pretrained

    model = cfg.model
    family = plugins.model_families.get(model.family)
    if model.pretrained:
        path = Path(resolve_pretrained(model.pretrained)) / "config.json"
        if path.is_file():
            return ModelShape.of(json.loads(path.read_text())), str(path)
        try:
            from transformers import AutoConfig

            return ModelShape.of(AutoConfig.from_pretrained(model.pretrained, local_files_only=True)), model.pretrained
        except (OSError, ValueError) as exc:
            raise MmadaptError(f"model.pretrained: no config.json found for {model.pretrained!r} (a directory "
                               "written by save_pretrained, a finished run's output_dir, or a cached hub name); "
                               "run the recipe that writes it first") from exc
    overrides = dict(model.config)
    vocab, source = overrides.get("vocab_size"), "model.config"
    if vocab is None:
        vocab, source = _tokenizer_size(cfg, family)
    return ModelShape.of(family.build_config(overrides, int(vocab))), source


def _tokenizer_size(cfg: Any, family: Any) -> tuple[int, str]:
    from mmadapt.pipeline.building_blocks import resolve_pretrained

    if cfg.model.tokenizer:
        return len(family.load_tokenizer(resolve_pretrained(cfg.model.tokenizer))), "model.config + model.tokenizer"
    return int(cfg.model.train_tokenizer.vocab_size), "model.config + model.train_tokenizer.vocab_size"


def predict(plan: Any, plugins: Any) -> tuple[list[StrategyPrediction], str]:
    """Every strategy's stages (pretrain, adapt, finetune) for a run plan (mmadapt.pipeline.plan.RunPlan)."""
    from mmadapt.pipeline.plan import reuses_big_model_as_is, runs_stage

    cfg, world, stages, languages = plan.cfg, plan.world_size, list(plan.stages), list(plan.languages)
    seq, masked = int(cfg.data.block_size), float(cfg.data.mlm_probability)
    predictions: list[StrategyPrediction] = []
    shapes: dict[str, ModelShape] = {}
    source = ""
    for run in plan.strategies:
        if run.reuse or run.init_from:
            big = shapes[run.reuse or run.init_from]
        else:
            big, source = model_shape(run.cfg, plugins)
        shapes[run.name] = big
        prediction = StrategyPrediction(run.name, big)
        plan = plugins.strategies.get(run.name).predict_compute(run.cfg.strategy, big, seq, masked, plugins)
        if plan is None:
            prediction.note = f"strategy {run.name!r} has no FLOP model (Strategy.predict_compute)"
            predictions.append(prediction)
            continue
        as_is = reuses_big_model_as_is(run, plugins)
        pretrain_what = f"{plan.pretrain_what}; uses {run.reuse}'s big model as it is, not run" if as_is \
            else plan.pretrain_what
        prediction.stages.append(StageCompute("pretrain", plan.pretrain.total,
                                              tokens_per_step(run.pretrain_cfg.train, seq, world), pretrain_what,
                                              runs_stage(run, "pretrain", stages, plugins)))
        adapt_train = run.adapt_cfg.train
        vocab = int(cfg.tokenizer.vocab_size) if languages else big.vocab_size
        per_token = adapt_flops_per_token(big, plan.adapt_layers,
                                          seq, vocab_size=vocab, masked_fraction=masked)
        vocab_note = "each new language's" if languages else "the model's own: no languages in this recipe"
        prediction.stages.append(StageCompute("adapt", per_token, tokens_per_step(adapt_train, seq, world),
                                              f"embeddings over {plan.adapt_what}; vocabulary {vocab}, "
                                              f"{vocab_note}", runs_stage(run, "adapt", stages, plugins)))
        if plan.adapt_layers != big.num_layers:
            _add_mini_model_adapt(prediction, run, adapt_flops_per_token(big, big.num_layers, seq, vocab_size=vocab,
                                                                         masked_fraction=masked), seq, world)
        for task in cfg.tasks:
            plugin = plugins.tasks.get(task.name)
            length = int(plugin.option_value(task, plugin.sequence_length_option) or seq)
            train = run.finetune_cfgs[task.name].train
            what = f"task {task.name}, big model, embeddings frozen, length {length}"
            if run.reuse:
                what += f"; reused from {run.reuse}, not run again"
            prediction.stages.append(StageCompute(f"finetune/{task.name}", finetune_flops_per_token(
                big, length), tokens_per_step(train, length, world),
                what, runs_stage(run, "finetune", stages, plugins)))
        predictions.append(prediction)
    return predictions, source


def _add_mini_model_adapt(prediction: StrategyPrediction, run: Any, full: float, seq: int, world: int) -> None:
    """A mini strategy's adapt ratios to `full` (FLOPs a token over the big model), and its steps over the big
    model as a stage line of their own (after its `adapt` line, the last one so far)."""
    adapt = prediction.stages[-1]
    prediction.adapt_ratio = full / adapt.per_token
    over_big = _big_model_adapt_steps(run, seq, world)
    if over_big is None:
        return
    first, interleaved, big_tokens, what = over_big
    prediction.stages.append(StageCompute("adapt, big model", full, big_tokens, what, adapt.runs))
    own_steps = int(run.adapt_cfg.train.max_steps)
    mini_stage = (own_steps - interleaved) * adapt.per_step + (first + interleaved) * full * big_tokens
    prediction.adapt_stage_ratio = own_steps * full * adapt.tokens_per_step / mini_stage if mini_stage else None


def _interleaved_steps(run: Any) -> int:
    """How many of the mini-model's `train.max_steps` adapt steps `adapt.big_model_every` runs over the big model."""
    from mmadapt.training.objectives import InterleavedMaskedLMObjective

    every = int(run.adapt_cfg.adapt.big_model_every)
    return InterleavedMaskedLMObjective.big_model_steps_in(int(run.adapt_cfg.train.max_steps), every) if every else 0


def _big_model_adapt_steps(run: Any, seq: int, world: int) -> tuple[int, int, int, str] | None:
    """(first steps, interleaved steps, tokens a step, what) of a mini strategy's adapt steps over the big model
    per language: `adapt.big_model_steps` first, then `adapt.big_model_every`'s among its own; None when it has none.
    Both run on `adapt.big_model_micro_batch_size` sequences (0: the adapt micro-batch), as the stage does."""
    adapt, train = run.adapt_cfg.adapt, run.adapt_cfg.train
    first, interleaved = int(adapt.big_model_steps), _interleaved_steps(run)
    if not first and not interleaved:
        return None
    micro = int(adapt.big_model_micro_batch_size) or int(train.micro_batch_size)
    parts = ([f"the first {first}"] if first else []) + \
        ([f"1 in {int(adapt.big_model_every)} of the {int(train.max_steps)} after them ({interleaved})"]
         if interleaved else [])
    what = (f"{first + interleaved} steps a language over the big model, on {micro} sequences: "
            f"{' and '.join(parts)}")
    return first, interleaved, micro * int(train.grad_accum) * world * seq, what


def report(plan: Any, predictions: list[StrategyPrediction], source: str) -> str:
    """The text `mmadapt compute` prints for a run plan's predictions."""
    seq, masked, world = plan.cfg.data.block_size, plan.cfg.data.mlm_probability, plan.world_size
    lines = [f"FLOPs predicted by mmadapt.training.flops (matrix products; forward + backward; MLM head at masked "
             f"positions only, {masked:g} of {seq} per block; {world} rank(s))"]
    for p in predictions:
        b = p.big
        lines += ["", f"strategy {p.strategy}: big model {b.num_layers} layers, hidden {b.hidden_size}, "
                      f"intermediate {b.intermediate_size}, vocabulary {b.vocab_size} (from {source})"]
        if p.note:
            lines.append(f"  {p.note}")
        for s in p.stages:
            flag = "" if s.runs else "  [not run by this recipe]"
            lines.append(f"  {s.stage:<18} {s.per_token:10.4g} FLOPs/token x {s.tokens_per_step:>8} tokens/step "
                         f"= {s.per_step:10.4g} FLOPs/step  ({s.what}){flag}")
        if p.adapt_ratio is not None:
            lines.append(f"  predicted adapt ratio full/{p.strategy}: {p.adapt_ratio:.2f}x "
                         "(full adapt over the big model / this strategy's, per step)")
        if p.adapt_stage_ratio is not None:
            lines.append(f"  predicted adapt stage ratio full/{p.strategy}: {p.adapt_stage_ratio:.2f}x (the same "
                         "number of steps, this strategy's steps over the big model counted)")
    return "\n".join(lines)
