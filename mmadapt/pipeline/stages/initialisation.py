"""The adapt stage's first step: the initialiser, what it may read, and what it costs.

An `EmbeddingInit` gets an `InitInputs`: the source corpus (`data.train`), the new language's
corpus and its bilingual dictionary (`languages.<code>.init_dictionary`, else `.dictionary`).
Its booked FLOPs and the seconds `initialise` took are added to the adapt stage's compute, before
any training step: step 0 of the score-against-compute curve (`mmadapt.pipeline.stages.transfer`).
"""
from __future__ import annotations

import time
from typing import Any

import torch

from mmadapt.pipeline.building_blocks import source_fingerprints, text_sources
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.diagnostics.alignment import read_dictionary
from mmadapt.pipeline.outputs import InitCost
from mmadapt.plugin_system.interfaces import InitInputs


def _init_dictionary_spec(ctx: StageContext, language: str) -> str | None:
    """The bilingual dictionary an initialiser learns from: `init_dictionary`, else `dictionary`."""
    section = ctx.cfg.languages[language]
    return section.get("init_dictionary") or section.get("dictionary")


def _init_inputs(ctx: StageContext, language: str, reads_corpora: bool, model: Any, tokenizer: Any,
                 source_tokenizer: Any) -> InitInputs:
    """What an initialiser gets for `language`: the vocabularies, the model's embeddings, the generator and
    options, and the corpora and dictionary it may read (corpora read lazily, when it does)."""
    cfg = ctx.cfg

    def documents(specs: Any):
        return lambda: (doc for source in text_sources(ctx, specs) for doc in source.documents())

    spec = _init_dictionary_spec(ctx, language) if reads_corpora else None
    pairs = read_dictionary(text_sources(ctx, [spec])[0].local_path()) if spec else []
    return InitInputs(tokenizer, source_tokenizer, model.get_input_embeddings().weight.detach(), model.config,
                      torch.Generator().manual_seed(cfg.seed), cfg.adapt.init, language, documents(cfg.data.train),
                      documents(cfg.languages[language].corpus), pairs)


def init_data_fingerprints(ctx: StageContext, language: str) -> list[list[str]]:
    """The content of what `_init_inputs` hands an initialiser that reads corpora: part of the fingerprint."""
    spec = _init_dictionary_spec(ctx, language)
    return [source_fingerprints(ctx, ctx.cfg.data.train), source_fingerprints(ctx, [spec] if spec else [])]


def initial_embeddings(ctx: StageContext, language: str, model: Any, tokenizer: Any,
                       source_tokenizer: Any) -> tuple[torch.Tensor, InitCost]:
    """The initialiser's embeddings, and its cost: the FLOPs it booked and the seconds it took."""
    cfg = ctx.cfg
    init = ctx.plugins.embedding_inits.get(cfg.adapt.init.name)
    inputs = _init_inputs(ctx, language, init.reads_corpora, model, tokenizer, source_tokenizer)
    started = time.perf_counter()
    weight = init.initialise(inputs)
    seconds = time.perf_counter() - started
    if inputs.flops:
        ctx.log(f"adapt[{language}]: initialiser {cfg.adapt.init.name!r} took {seconds:.1f} s and "
                f"{inputs.flops:.3g} FLOPs ({', '.join(f'{k} {v:.3g}' for k, v in inputs.parts.items())})")
    return weight, InitCost(inputs.flops, round(seconds, 3), dict(inputs.parts))
