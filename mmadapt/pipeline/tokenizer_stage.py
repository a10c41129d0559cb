"""Stage `tokenizer`: a SentencePiece vocabulary per new language, loadable by transformers."""
from __future__ import annotations

from pathlib import Path

from mmadapt.context import StageContext
from mmadapt.distributed import barrier
from mmadapt.errors import MmadaptError
from mmadapt.pipeline.stages import completed, digest, finish_stage
from mmadapt.pretraining import text_sources, train_tokenizer_on


def language_tokenizer_dir(output_dir: Path, language: str) -> Path:
    return output_dir / "tokenizers" / language


def train_language_tokenizer(ctx: StageContext, language: str) -> Path:
    """Train (or reuse, if complete for the same settings) `language`'s tokenizer."""
    cfg = ctx.cfg
    section = cfg.languages[language]
    if not section.corpus:
        raise MmadaptError(f"languages.{language}.corpus is empty: give the new language's text")
    stage_dir = language_tokenizer_dir(ctx.output_dir, language)
    sources = text_sources(ctx, section.corpus)
    fingerprint = digest("tokenizer", cfg.tokenizer, cfg.seed, [s.fingerprint() for s in sources]) \
        if ctx.dist.is_main else None
    if ctx.dist.is_main and not completed(stage_dir, fingerprint):
        ctx.log(f"tokenizer: training a {cfg.tokenizer.vocab_size}-piece vocabulary for {language!r}")
        train_tokenizer_on(sources, stage_dir / "tokenizer", dict(cfg.tokenizer), cfg.seed)
        finish_stage(ctx, f"tokenizer/{language}", fingerprint, {"tokenizer": stage_dir / "tokenizer"},
                     stage_dir=stage_dir)
    barrier()
    return stage_dir / "tokenizer"
