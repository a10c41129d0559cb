"""Task models on the body of a saved MLM, and running them over features in batches."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from mmadapt.api import MmadaptError


def load_task_model(auto_class: str, family: Any, pretrained_dir: str, **config: Any) -> Any:
    """`transformers.<auto_class>.from_pretrained(pretrained_dir)`: the MLM's body plus a fresh head.

    The Auto class picks the head class of the checkpoint's own architecture (an XLM-R MLM
    gives XLMRobertaFor...), so the body weights load unchanged; `config` sets head settings
    such as `num_labels`. Local files only.
    """
    import transformers
    from transformers.utils import logging as hf_logging

    loader = getattr(transformers, auto_class)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report lists the swapped heads, expected here; checked below
    try:
        model, info = loader.from_pretrained(str(pretrained_dir), local_files_only=True, output_loading_info=True,
                                             **config)
    except (OSError, ValueError) as exc:
        raise MmadaptError(f"cannot build a {auto_class} from {pretrained_dir}: {exc}") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    body = f"{model.base_model_prefix}."
    missing = sorted(key for key in info["missing_keys"] if key.startswith(body))
    if missing:
        raise MmadaptError(f"{pretrained_dir} lacks {len(missing)} weights of the model body ({', '.join(missing[:3])}"
                           f"{', ...' if len(missing) > 3 else ''}): it is not a checkpoint of this architecture")
    expected = getattr(family, "config_class_name", None)
    if expected and type(model.config).__name__ != expected:
        raise MmadaptError(f"{pretrained_dir} holds a {type(model.config).__name__} model, but the recipe's model "
                           f"family expects {expected}; set model.family to match the checkpoint")
    return model


def batches(features: Sequence[dict], batch_size: int) -> Iterator[dict]:
    """Features stacked into batches of `batch_size` (the last one may be smaller)."""
    from torch.utils.data import default_collate

    if batch_size < 1:
        raise MmadaptError(f"eval_batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(features), batch_size):
        yield default_collate(list(features[start:start + batch_size]))


def length_sorted_batches(features: Sequence[dict], batch_size: int) -> Iterator[tuple[list[int], dict]]:
    """(indices, batch): the features shortest first, each batch cut to its longest sequence.

    For prediction: a row's outputs do not depend on the other rows of its batch, nor on
    padding past its last token, so sorting by `attention_mask` length and dropping the
    columns no row of the batch attends to changes no prediction (beyond float rounding), and on
    evaluation sets of short pairs padded to `max_length` it about halves the work. Only trailing
    columns are dropped: left-padded features keep their width.
    """
    order = sorted(range(len(features)), key=lambda i: int(features[i]["attention_mask"].sum()))
    for number, batch in enumerate(batches([features[i] for i in order], batch_size)):
        indices = order[number * batch_size:(number + 1) * batch_size]
        attended = batch["attention_mask"].any(dim=0).nonzero()
        width = int(attended.max()) + 1 if len(attended) else batch["attention_mask"].shape[1]
        yield indices, {k: v[:, :width] if v.dim() == 2 else v for k, v in batch.items()}


def to_device(batch: dict, device: Any) -> dict:
    """Every tensor of `batch` on `device`."""
    return {k: v.to(device) for k, v in batch.items()}
