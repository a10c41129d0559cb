"""Where task data comes from: the benchmarks' own files on disk, or `datasets` copies.

Every reader reports a bad row with the file and its place in it (``file:line`` for TSV and
JSON lines, article/paragraph/question for SQuAD-style JSON), so a user can open the file
at the right spot. Nothing here downloads: `datasets` is used offline only.
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from mmadapt.api import DataError, MmadaptError, fill_language, hf_offline, text_lines

#: how our split names are called in Hugging Face datasets
HF_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
SPLITS = ("dev", "test")

logger = logging.getLogger(__name__)


def check_split(split: str) -> None:
    """`split` must be one of the evaluation splits."""
    if split not in SPLITS:
        raise MmadaptError(f"unknown split {split!r}; evaluation splits are {', '.join(SPLITS)}")


def require_path(path: str | Path, what: str, hint: str = "") -> Path:
    """`path` as a Path; a missing file or directory is a DataError saying what it should hold."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found: {path}" + (f". {hint}" if hint else ""))
    return path


def read_tsv(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row by column name) for a tab-separated file with a header line.

    Read with `csv.QUOTE_NONE`, as the benchmarks' own loaders do: their text holds quotes
    that are part of the sentence. A missing column or a row with the wrong number of fields
    is a DataError naming the file and line.
    """
    lines = text_lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError(f"{path}: the file is empty; expected a header line with columns {', '.join(required)}")
    header = next(csv.reader([first[1]], delimiter="\t", quoting=csv.QUOTE_NONE))
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}:1: header lacks column(s) {', '.join(missing)} (header: {', '.join(header)})")
    for lineno, line in lines:
        if not line.strip():
            continue
        fields = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
        if len(fields) != len(header):
            raise DataError(f"{path}:{lineno}: {len(fields)} tab-separated fields, but the header has "
                            f"{len(header)} ({', '.join(header)})")
        yield lineno, dict(zip(header, fields))


def read_json(path: Path) -> Any:
    """A whole JSON file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def require_keys(row: dict, keys: Sequence[str], where: str) -> None:
    """Every key of `keys` must be in `row`; `where` is "file:line" or similar."""
    missing = [k for k in keys if k not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)} (has: {', '.join(map(str, row))})")


def check_unique_ids(examples: Sequence[dict], source: str) -> None:
    """Evaluation ids must be unique: predictions are keyed by them."""
    seen: set[str] = set()
    for ex in examples:
        if ex["id"] in seen:
            raise DataError(f"{source}: id {ex['id']!r} occurs more than once; predictions could not be told apart")
        seen.add(ex["id"])


def take(examples: list[dict], limit: Any) -> list[dict]:
    """The first `limit` examples (all of them when `limit` is None): `max_train_examples`."""
    if limit is None:
        return examples
    if limit < 1:
        raise MmadaptError(f"max_train_examples must be at least 1 or null, got {limit}")
    return examples[:limit]


def warn_unmatched(predictions: dict, gold_ids: Iterable[str]) -> None:
    """Log prediction ids the gold data lacks (ignored when scoring, as the official scripts do)."""
    extra = set(predictions).difference(gold_ids)
    if extra:
        logger.warning("%d prediction id(s) are not in the gold data and are ignored (e.g. %r)",
                       len(extra), sorted(extra)[0])


def is_dataset_dir(path: str | Path) -> bool:
    """Whether `path` is a directory written by `datasets` `save_to_disk`."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in
                                 ("dataset_info.json", "dataset_dict.json", "state.json"))


def load_dataset_split(spec: str, config: str | None, split: str, language: str, hint: str) -> tuple[Any, str]:
    """A `datasets.Dataset` for one split and a description of where it came from.

    `spec` is a hub name already in the local Hugging Face cache (loaded with
    `datasets.load_dataset(spec, config, split=...)`, offline), or a directory written by
    `save_to_disk`: the directory itself, `spec/<language>`, `spec/<config>`, or `spec` with
    `{language}` filled in. A saved `DatasetDict` gives its `split` ("validation" for dev); a
    saved single `Dataset` is used as it is. `hint` says what to download when nothing is there.
    """
    hf_split = HF_SPLITS[split]
    path = Path(fill_language(spec, language)).expanduser()
    looks_like_path = "{language}" in spec or spec.startswith(("/", ".", "~")) or path.exists()
    if looks_like_path:
        return _load_from_disk(_pick_dir(path, language, config), hf_split, hint)
    return _load_from_cache(spec, config, hf_split, hint), f"{spec} ({config or 'default'}, {hf_split})"


def _pick_dir(path: Path, language: str, config: str | None) -> Path:
    for candidate in (path, path / language, path / (config or language)):
        if is_dataset_dir(candidate):
            return candidate
    return path


def _load_from_disk(path: Path, hf_split: str, hint: str) -> tuple[Any, str]:
    import datasets

    if not is_dataset_dir(path):
        raise DataError(f"{path} is not a directory written by datasets' save_to_disk. {hint}")
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if hf_split not in loaded:
            raise DataError(f"{path} holds splits {', '.join(loaded)}; no {hf_split!r} split. {hint}")
        return loaded[hf_split], f"{path} ({hf_split})"
    return loaded, str(path)


def _load_from_cache(name: str, config: str | None, hf_split: str, hint: str) -> Any:
    import datasets

    with hf_offline():
        try:
            return datasets.load_dataset(name, config, split=hf_split)
        except Exception as exc:  # datasets raises ConnectionError, FileNotFoundError, ValueError, ...
            raise DataError(
                f"dataset {name!r} (config {config!r}, split {hf_split!r}) is not in the local Hugging Face "
                f"cache ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); mmadapt never "
                f"downloads. {hint}"
            ) from exc


def hf_download_hint(name: str, config: str | None, option_name: str) -> str:
    """How to make a `datasets` copy available offline, for error messages."""
    if config is None:
        return (f"On a machine with internet run `python -c \"import datasets; datasets.load_dataset({name!r})"
                f".save_to_disk('DIR')\"` and set task.{option_name}: DIR, or copy a populated Hugging Face cache "
                "into HF_DATASETS_CACHE")
    return (f"On a machine with internet run `python -c \"import datasets; datasets.load_dataset({name!r}, "
            f"{config!r}).save_to_disk('DIR/{config}')\"` for each language and set task.{option_name}: DIR, or "
            "copy a populated Hugging Face cache into HF_DATASETS_CACHE")
