"""`mmadapt swap`: a language pack swapped into a fine-tuned model of the same body (any task head).

Which models a pack fits is decided in `mmadapt.model.packs` (its docstring); the swap itself is
`mmadapt.model.surgery.swap_vocabulary`, the same function the transfer stage builds its target models
with, so a swapped model equals the pipeline's own target model for that language.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmadapt.errors import MmadaptError
from mmadapt.model.packs import (BODY_RECORD, PACK_EMBEDDINGS, PACK_TOKENIZER, body_record_text, body_tensors,
                                 read_body_record, read_manifest)


def swap_language(model_dir: Path, pack_dir: Path, out_dir: Path, plugins: Any, force: bool = False) -> list[str]:
    """Write `out_dir` (atomically): the model of `model_dir` with the pack's vocabulary and tokenizer.

    Refuses, with one line, a pack that does not fit (`force` lets a body that cannot be shown to be
    the pack's through; shapes must agree anyway). Returns the warnings to show the user.
    """
    import torch

    from mmadapt.training.distributed import DistInfo
    from mmadapt.model.export import save_pretrained_atomic
    from mmadapt.training.progress import quiet_third_party_bars
    from mmadapt.model.surgery import load_embeddings, swap_vocabulary

    model_dir, pack_dir, out_dir = Path(model_dir), Path(pack_dir), Path(out_dir)
    for given in (model_dir, pack_dir):
        if out_dir.resolve() == given.resolve():
            raise MmadaptError(f"OUT_DIR {out_dir} is an input of the swap; give another directory")
    manifest = read_manifest(pack_dir)
    body = manifest["body"]
    quiet_third_party_bars()
    check_shapes(body, model_config(model_dir), model_dir)
    family = plugins.model_families.get(body["family"])
    model = load_saved_model(model_dir)
    fits, warnings = check_body(model, family, body, model_dir, force)
    tokenizer = family.load_tokenizer(str(pack_dir / PACK_TOKENIZER))
    weight, bias = load_embeddings(pack_dir / PACK_EMBEDDINGS)
    if tuple(weight.shape) != (len(tokenizer), body["hidden_size"]):
        raise MmadaptError(f"language pack {pack_dir} is inconsistent: its embeddings are {tuple(weight.shape)}, "
                           f"its tokenizer has {len(tokenizer)} tokens and its body is {body['hidden_size']} wide")
    swap_vocabulary(model, weight, bias)
    # a forced swap does not vouch for the body the model started from
    record = {BODY_RECORD: body_record_text(body["digest"], body["family"])} if fits else {}
    save_pretrained_atomic(model, out_dir, DistInfo(0, 1, 0, torch.device("cpu")), tokenizer, record,
                           family.max_sequence_length(model.config.to_dict()))
    return warnings


def model_config(model_dir: Path) -> dict[str, Any]:
    """A `save_pretrained` directory's config.json, as plain data."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise MmadaptError(f"{model_dir} is not a save_pretrained model directory: it has no config.json")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise MmadaptError(f"{path} is not valid JSON ({exc})") from exc


def check_shapes(body: dict[str, Any], config: dict[str, Any], model_dir: Path) -> None:
    """Refuse a model whose type, width, positions or padding token differ from the pack's body."""
    kind = f"{body['model_type']} models (model family {body['family']})"
    if config.get("model_type") != body["model_type"]:
        raise MmadaptError(f"the pack does not fit {model_dir}: it holds a {config.get('model_type')} model and the "
                           f"pack is for {kind}")
    for key, what in (("hidden_size", "hidden size"), ("max_position_embeddings", "position embeddings"),
                      ("pad_token_id", "padding token id")):
        if body.get(key) is not None and config.get(key) != body[key]:
            raise MmadaptError(f"the pack does not fit {model_dir}: its {what} is {config.get(key)}, the pack's body's "
                               f"is {body[key]}")


def load_saved_model(model_dir: Path) -> Any:
    """The model of a `save_pretrained` directory, with its own head (the class its config names)."""
    import transformers

    architectures = model_config(model_dir).get("architectures") or []
    model_class = getattr(transformers, architectures[0], None) if architectures else None
    if model_class is None:
        raise MmadaptError(f"cannot tell which model class {model_dir} holds: its config.json names "
                           f"{architectures or 'no architectures'}")
    try:
        return model_class.from_pretrained(str(model_dir), local_files_only=True).eval()
    except (OSError, ValueError) as exc:
        raise MmadaptError(f"cannot load the model from {model_dir}: {(str(exc).splitlines() or [''])[0]}") from exc


def check_body(model: Any, family: Any, body: dict[str, Any], model_dir: Path, force: bool) -> tuple[bool, list[str]]:
    """Whether `model` has the body the pack was trained against (rules in `mmadapt.model.packs`), and warnings:
    (True, []) when it has, (True, [why]) when it is taken to; a refusal when it cannot be shown, or with
    `force` (False, [why])."""
    from mmadapt.files.digests import tensors_digest

    tensors = body_tensors(model, family)
    if tensors_digest(tensors) == body["digest"]:
        return True, []
    same_embeddings = tensors_digest({k: v for k, v in tensors.items() if k.startswith("embeddings.")}) \
        == body["embeddings_digest"]
    record = read_body_record(model_dir)
    short = body["digest"][:12]
    if record is not None and record["pretrained_body"] == body["digest"] and same_embeddings:
        return True, []
    if record is None and same_embeddings:
        return True, [f"{model_dir} has no {BODY_RECORD} saying which body it was fine-tuned from; its embedding module "
                f"is the pack body's ({short}), so it is taken to descend from that body"]
    if record is not None and record["pretrained_body"] != body["digest"]:
        reason = (f"{model_dir} was fine-tuned from body {record['pretrained_body'][:12]} and the pack was trained "
                  f"against body {short}")
    elif record is not None:
        reason = (f"{model_dir}'s embedding module (position and type embeddings, LayerNorm) changed since body "
                  f"{short}, which the pack's embeddings were trained against")
    elif not same_embeddings:
        reason = (f"{model_dir}'s embedding module (position and type embeddings, LayerNorm) is not body {short}'s, "
                  f"which the pack's embeddings were trained against: it was fine-tuned with its embeddings trainable "
                  f"(the transformers default) or from another model")
    else:
        reason = (f"{model_dir}'s body is not body {short} the pack was trained against, and it has no {BODY_RECORD} "
                  f"saying it was fine-tuned from it")
    if not force:
        raise MmadaptError(f"the pack does not fit: {reason}. {HOW_TO_FIT}; or pass --force to swap anyway")
    return False, [f"swapping anyway (--force): {reason}"]


#: how to fine-tune a model that every pack of its body fits (what `mmadapt train`'s finetune stage does)
HOW_TO_FIT = ("To fit, fine-tune from the pack's body with the embedding module frozen (in transformers: "
              "`for p in model.base_model.embeddings.parameters(): p.requires_grad = False` before training), "
              "or with `mmadapt train`, whose finetune stage does so")
