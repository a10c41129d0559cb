"""Stage `tokenizer`: a SentencePiece vocabulary per new language, loadable by transformers."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mmadapt.errors import MmadaptError
from mmadapt.files.digests import stage_fingerprint
from mmadapt.pipeline.building_blocks import text_sources, train_tokenizer_on
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.lifecycle import StageUnit, run_stage
from mmadapt.pipeline.outputs import TokenizerOutputs


def language_tokenizer_dir(output_dir: Path, language: str) -> Path:
    return output_dir / "tokenizers" / language


def train_language_tokenizer(ctx: StageContext, language: str) -> TokenizerOutputs:
    """Train (or reuse, if complete for the same settings) `language`'s tokenizer (rank 0 does the work)."""
    cfg = ctx.cfg
    section = cfg.languages[language]
    if not section.corpus:
        raise MmadaptError(f"languages.{language}.corpus is empty: give the new language's text")
    ctx = replace(ctx, stage_dir=language_tokenizer_dir(ctx.output_dir, language))
    sources = text_sources(ctx, section.corpus)

    def work(stage: StageContext) -> TokenizerOutputs:
        stage.log(f"tokenizer: training a {cfg.tokenizer.vocab_size}-piece vocabulary for {language!r}")
        train_tokenizer_on(sources, stage.stage_dir / "tokenizer", dict(cfg.tokenizer), cfg.seed)
        return TokenizerOutputs(stage.fingerprint, stage.stage_dir / "tokenizer")

    return run_stage(StageUnit(
        f"tokenizer/{language}", ctx,
        lambda: stage_fingerprint("tokenizer", tokenizer=cfg.tokenizer, seed=cfg.seed,
                                  corpus=[s.fingerprint() for s in sources]),
        work, TokenizerOutputs, main_only=True))
