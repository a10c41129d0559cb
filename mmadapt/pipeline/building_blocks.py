"""Building blocks a pretraining strategy composes: tokenizer, model and MLM data."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mmadapt.data.mlm import MaskedBlocks, MaskingSpec, build_blocks
from mmadapt.data.sources import TextSource, default_cache_dir
from mmadapt.errors import MmadaptError
from mmadapt.files.digests import json_digest
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.plan import big_model_candidates
from mmadapt.training.distributed import barrier, broadcast_object


def cache_dir(cfg: Any) -> Path:
    """Where data, tokenizer and synth caches go: `data.cache_dir`, else the default cache."""
    return Path(cfg.data.cache_dir) if cfg.data.cache_dir else default_cache_dir()


def text_sources(ctx: StageContext, specs: Any) -> list[TextSource]:
    """`TextSource`s for a list of recipe data specs."""
    data = ctx.cfg.data
    synth = OmegaConf.to_container(data.synth, resolve=True)
    return [TextSource(str(s), data.text_field, synth, cache_dir(ctx.cfg)) for s in specs]


def source_fingerprints(ctx: StageContext, specs: Any) -> list[str]:
    """The content digests of recipe data specs: what stage fingerprints hold instead of their names,
    so a file edited in place re-runs the stages that read it."""
    return [source.fingerprint() for source in text_sources(ctx, specs)]


def data_fingerprint(ctx: StageContext) -> dict[str, Any]:
    """`data:` as the pretrain stage's fingerprint holds it: the settings, each source by its content.

    `synth` and `cache_dir` are left out: they only say where the corpora come from, which their
    contents already pin (so changing, say, the synthetic benchmark's task sizes keeps pretraining);
    so is `prepare_processes`, which changes how fast blocks are made, never what they hold.
    """
    data = OmegaConf.to_container(ctx.cfg.data, resolve=True)
    for where in ("synth", "cache_dir", "prepare_processes"):
        data.pop(where, None)
    data["train"] = source_fingerprints(ctx, ctx.cfg.data.train)
    data["eval"] = source_fingerprints(ctx, ctx.cfg.data.eval)
    return data


def model_family(ctx: StageContext) -> Any:
    """The recipe's model-family plugin."""
    return ctx.plugins.model_families.get(ctx.cfg.model.family)


def resolve_pretrained(spec: str) -> str:
    """`model.pretrained` / `model.tokenizer` as a loadable path.

    A `save_pretrained` directory is used as is; an earlier run's `output_dir`, or its
    `pretrain/` stage directory, stands for the big model that stage wrote (`pretrain/big`).
    Anything else (a hub name in the local cache) is passed through.
    """
    path = Path(spec)
    candidates = big_model_candidates(path)
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return str(candidate)
    if (path / "recipe.yaml").is_file():
        raise MmadaptError(f"{spec} is an mmadapt run directory without a finished pretraining stage "
                           f"({candidates[-1]} is missing); run that recipe to the end first")
    return spec


def load_tokenizer(ctx: StageContext) -> Any:
    """The model's tokenizer, or one trained (once, cached) on `data.train`."""
    model_cfg = ctx.cfg.model
    family = model_family(ctx)
    source = model_cfg.tokenizer or model_cfg.pretrained
    if source:
        return family.load_tokenizer(resolve_pretrained(source))
    sources = text_sources(ctx, ctx.cfg.data.train)
    if not sources:
        raise MmadaptError("model: neither model.tokenizer nor model.pretrained is set, and data.train is empty, "
                           "so there is no text to train a tokenizer on")
    directory = None
    if ctx.dist.is_main:
        directory = str(_train_cached_tokenizer(sources, dict(model_cfg.train_tokenizer), ctx))
    directory = broadcast_object(directory)
    barrier()
    return family.load_tokenizer(directory)


def _train_cached_tokenizer(sources: list[TextSource], settings: dict, ctx: StageContext) -> Path:
    key = {"sources": [s.fingerprint() for s in sources], "settings": settings, "seed": ctx.cfg.seed}
    target = cache_dir(ctx.cfg) / "tokenizers" / json_digest(key, 24)
    if not (target / "tokenizer_config.json").is_file():
        ctx.log(f"training a {settings['vocab_size']}-token SentencePiece tokenizer on data.train")
        train_tokenizer_on(sources, target, settings, ctx.cfg.seed)
    return target


def train_tokenizer_on(sources: list[TextSource], target: Path, settings: dict, seed: int) -> Path:
    """A SentencePiece tokenizer trained on `settings["input_sentence_size"]` documents of `sources`
    (all of them when there are fewer), sampled with `seed` in one pass, saved in `target`."""
    from mmadapt.model.tokenizer_training import SentencePieceConfig, train_sentencepiece_on_lines

    documents = (doc.replace("\n", " ") for source in sources for doc in source.documents())
    train_sentencepiece_on_lines(documents, target, SentencePieceConfig(**settings), seed=seed,
                                 described=", ".join(source.spec for source in sources))
    return target


def build_model(ctx: StageContext, tokenizer: Any) -> Any:
    """The MLM: loaded from `model.pretrained`, or built from `model.config`."""
    model_cfg = ctx.cfg.model
    family = model_family(ctx)
    if model_cfg.pretrained:
        model = family.load_pretrained(resolve_pretrained(model_cfg.pretrained))
        if model_cfg.config:
            ctx.log("note: model.config is ignored when model.pretrained is set")
        return model
    return family.build_from_config(dict(model_cfg.config), len(tokenizer), tokenizer)


def mlm_datasets(ctx: StageContext, tokenizer: Any) -> tuple[MaskedBlocks, MaskedBlocks | None]:
    """Masked train blocks and (if `data.eval` is set) evaluation blocks."""
    data = ctx.cfg.data
    spec = MaskingSpec.from_tokenizer(tokenizer, data.mlm_probability)
    cache = cache_dir(ctx.cfg)
    train = build_blocks(text_sources(ctx, data.train), tokenizer, data.block_size, cache, ctx.dist, "data.train",
                         data.prepare_processes)
    train_set = MaskedBlocks(train, spec, ctx.cfg.seed)
    eval_set = None
    if data.eval:
        blocks = build_blocks(text_sources(ctx, data.eval), tokenizer, data.block_size, cache, ctx.dist, "data.eval",
                              data.prepare_processes)
        eval_set = MaskedBlocks(blocks, spec, ctx.cfg.seed + 1)
    return train_set, eval_set

