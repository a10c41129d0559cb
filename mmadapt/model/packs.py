"""Language packs: a language's adapted vocabulary, to swap into any fine-tuned model of the body it
was trained against, without the pipeline.

Every adapt stage writes one, `<run>/adapt/<language>/pack/`:

    manifest.json            what the pack is, which body it fits and what it cost (`pack_manifest`)
    embeddings.safetensors   the trained word embeddings and LM-head bias (`mmadapt.model.surgery` layout)
    tokenizer/               the language's tokenizer (transformers format)

**Which body a pack fits.** The body is everything of the model but the vocabulary and the head:
the embedding module without the word embeddings (position and token-type embeddings, their
LayerNorm) and the transformer layers. A pack records the digest of the *pretrained* big model's
body its embeddings were learned against (`body.digest`) and, apart, the digest of that body's
embedding module (`body.embeddings_digest`). Fine-tuning changes the layers, so a fine-tuned
model's own body digest no longer matches; the finetune stage therefore writes, into the model
directory, `mmadapt_body.json` naming the pretrained body it started from, and keeps the embedding
module frozen (the method needs it). `mmadapt swap` takes a model when, after the shapes (model
type, hidden size, positions, padding token) agree:

1. its own body is the pack's body (the pretrained model itself, or one fine-tuned with its body frozen); or
2. its `mmadapt_body.json` names the pack's body and its embedding module is the pack body's; or
3. it has no `mmadapt_body.json` (fine-tuned elsewhere, or by an mmadapt before packs) and its
   embedding module is the pack body's: taken to descend from that body, with a warning.

Anything else is refused with one line saying why; `--force` swaps anyway (shapes must still agree).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from mmadapt.errors import MmadaptError
from mmadapt.files.atomic import write_dir_atomic
from mmadapt.files.digests import tensors_digest
from mmadapt.pipeline.outputs import AdaptCost

#: a pack's directory inside its adapt stage directory
PACK_DIR = "pack"
MANIFEST = "manifest.json"
PACK_EMBEDDINGS = "embeddings.safetensors"
PACK_TOKENIZER = "tokenizer"
PACK_FORMAT = "mmadapt-language-pack"
PACK_VERSION = 1
#: written into a fine-tuned (or swapped) model's directory: the pretrained body it started from
BODY_RECORD = "mmadapt_body.json"


def body_tensors(model: Any, family: Any) -> dict[str, Any]:
    """The body's weights by name relative to the body (`embeddings.*`, `layers.*`), so that any head
    class on the same body gives the same names: the embedding module without the word embeddings,
    then the transformer layers."""
    word = family.word_embeddings(model).weight
    tensors = {f"embeddings.{name}": p for name, p in family.embeddings(model).named_parameters() if p is not word}
    tensors.update({f"layers.{name}": p for name, p in family.layers(model).named_parameters()})
    return tensors


def describe_body(model: Any, family_name: str, family: Any) -> dict[str, Any]:
    """What a pack records of the body it was trained against: shapes and the two digests."""
    tensors = body_tensors(model, family)
    config = model.config
    return {"family": family_name, "model_type": config.model_type, "hidden_size": int(config.hidden_size),
            "num_hidden_layers": int(config.num_hidden_layers),
            "max_position_embeddings": getattr(config, "max_position_embeddings", None),
            "pad_token_id": getattr(config, "pad_token_id", None),
            "digest": tensors_digest(tensors),
            "embeddings_digest": tensors_digest({k: v for k, v in tensors.items() if k.startswith("embeddings.")})}


def body_record_text(pretrained_body: str, family_name: str) -> str:
    """The `mmadapt_body.json` of a model whose body started as the pretrained body `pretrained_body`."""
    return json.dumps({"pretrained_body": pretrained_body, "family": family_name}, indent=1)


def read_body_record(model_dir: Path) -> dict[str, Any] | None:
    """A model directory's `mmadapt_body.json`, or None when it has none (or an unreadable one)."""
    path = Path(model_dir) / BODY_RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("pretrained_body") else None


def pack_manifest(language: str, strategy: Any, init: str, cost: AdaptCost, body: dict[str, Any],
                  vocab_size: int, fingerprint: str | None) -> dict[str, Any]:
    """A pack's manifest: the language, the strategy (name, its `k` if it has one, its options), the
    initialiser, what adapting cost (`steps`, `big_model_steps`, `flops`, `tokens`, `seconds`) and the body."""
    options = {key: value for key, value in dict(strategy).items() if key not in ("name", "train", "adapt_train")}
    big_model = cost.big_model_spent
    return {"format": PACK_FORMAT, "version": PACK_VERSION, "language": language, "strategy": strategy["name"],
            "k": options.get("k"), "strategy_options": options, "init": init, "vocab_size": int(vocab_size),
            "steps": cost.steps, "big_model_steps": big_model.steps, "flops": cost.flops, "tokens": cost.tokens,
            "seconds": cost.seconds, "body": body, "adapt_fingerprint": fingerprint}


def write_pack(target: Path, embeddings_file: Path, tokenizer_dir: Path, manifest: dict[str, Any]) -> Path:
    """Publish a pack directory at `target` atomically. The embeddings file is hard-linked where the
    filesystem allows (a published file is never rewritten in place, so the two names stay equal)."""

    def write(staged: Path) -> None:
        try:
            os.link(embeddings_file, staged / PACK_EMBEDDINGS)
        except OSError:
            shutil.copyfile(embeddings_file, staged / PACK_EMBEDDINGS)
        shutil.copytree(tokenizer_dir, staged / PACK_TOKENIZER)
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=1))

    return write_dir_atomic(target, write)


def read_manifest(pack_dir: Path) -> dict[str, Any]:
    """A pack's manifest, after checking the pack is whole; a one-line MmadaptError otherwise."""
    pack_dir = Path(pack_dir)
    path = pack_dir / MANIFEST
    if not path.is_file():
        raise MmadaptError(f"{pack_dir} is not a language pack: it has no {MANIFEST} (the adapt stage writes "
                           f"packs as <run>/adapt/<language>/{PACK_DIR}; `mmadapt packs RUN_DIR` lists them)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise MmadaptError(f"{path} is not valid JSON ({exc}); write the pack again") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != PACK_FORMAT:
        raise MmadaptError(f"{path} is not a language pack manifest (no \"format\": \"{PACK_FORMAT}\")")
    if manifest.get("version") != PACK_VERSION:
        raise MmadaptError(f"{path} is a version {manifest.get('version')} pack; this mmadapt reads version "
                           f"{PACK_VERSION}")
    for name in (PACK_EMBEDDINGS, PACK_TOKENIZER):
        if not (pack_dir / name).exists():
            raise MmadaptError(f"language pack {pack_dir} is incomplete: {name} is missing")
    return manifest


def find_packs(run_dir: Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """Every pack under a run directory (a one-strategy run, or a run of several), by path, with its
    manifest (None when it cannot be read)."""
    found = []
    for path in sorted(Path(run_dir).glob(f"**/adapt/*/{PACK_DIR}/{MANIFEST}")):
        try:
            manifest = read_manifest(path.parent)
        except MmadaptError:
            manifest = None
        found.append((path.parent, manifest))
    return found


PACK_COLUMNS = ("language", "strategy", "k", "init", "steps", "big_model_steps", "flops", "body", "pack")


def packs_table(packs: list[tuple[Path, dict[str, Any] | None]], run_dir: Path) -> str:
    """The packs as an aligned text table (a pack whose manifest cannot be read says so)."""
    rows = [PACK_COLUMNS]
    for path, m in packs:
        where = os.path.relpath(path, run_dir)
        if m is None:
            rows.append(("?", "?", "", "", "", "", "", "unreadable manifest", where))
            continue
        rows.append((m["language"], m["strategy"], "" if m.get("k") is None else str(m["k"]), m.get("init") or "",
                     str(m["steps"]), str(m.get("big_model_steps") or 0), f"{m['flops']:.3g}", f"{m['body']['family']}:{m['body']['digest'][:12]}", where))
    widths = [max(len(row[i]) for row in rows) for i in range(len(PACK_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
