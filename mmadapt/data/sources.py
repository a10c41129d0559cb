"""Where MLM text comes from: local files, `datasets` on disk or in the local cache, synth.

Every source yields documents (strings) and has a content fingerprint, so caches built
from it are keyed on what it holds, never on its path alone.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mmadapt.data.textfiles import READ_BLOCK, block_lines, jsonl_rows, line_blocks
from mmadapt.errors import MmadaptError
from mmadapt.files.digests import file_digest, json_digest

HF_PREFIX = "hf:"
SYNTH_PREFIX = "synth:"


def default_cache_dir() -> Path:
    """`$MMADAPT_CACHE`, else ~/.cache/mmadapt."""
    return Path(os.environ.get("MMADAPT_CACHE", Path.home() / ".cache" / "mmadapt"))


def fill_language(template: str, language: str) -> str:
    """`template` with `{language}` replaced (paths of per-language files)."""
    return template.replace("{language}", language)


def synth_benchmark_dir(settings: dict, cache_dir: Path | None = None) -> Path:
    """The synthetic benchmark for `settings` (generated once, then reused from the cache)."""
    from mmadapt.synth import GENERATOR_VERSION, generate_benchmark

    key = json_digest([GENERATOR_VERSION, settings], 16)
    out = (cache_dir or default_cache_dir()) / "synth" / key
    if not (out / "manifest.json").is_file():
        kwargs = dict(settings)
        if "languages" in kwargs:
            kwargs["languages"] = tuple(kwargs["languages"])
        generate_benchmark(out, **kwargs)
    return out


def synth_file(spec: str, settings: dict, cache_dir: Path | None = None) -> Path:
    """`synth:LANG` -> that language's corpus; `synth:DIR/FILE` -> a file of the benchmark."""
    root = synth_benchmark_dir(settings, cache_dir)
    name = spec[len(SYNTH_PREFIX):]
    path = root / name if "/" in name else root / "corpus" / f"{name}.txt"
    if not path.exists() and "{" not in name:  # `{language}` templates are filled in by the task
        have = sorted(p.stem for p in (root / "corpus").glob("*.txt"))
        raise MmadaptError(f"{spec}: no such file in the synthetic benchmark ({path}); its languages are "
                           f"{', '.join(have)} (set data.synth.languages) and its files are listed in "
                           f"{root / 'manifest.json'}")
    return path


def resolve_synth_paths(value: Any, settings: dict, cache_dir: Path | None = None) -> Any:
    """`value` (nested dicts/lists) with every `synth:...` string that names a file made real."""
    if isinstance(value, dict):
        return {k: resolve_synth_paths(v, settings, cache_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_synth_paths(v, settings, cache_dir) for v in value]
    if isinstance(value, str) and value.startswith(SYNTH_PREFIX) and "/" in value:
        return str(synth_file(value, settings, cache_dir))
    return value


@dataclass
class TextSource:
    """One MLM text source as named in a recipe."""

    spec: str
    text_field: str = "text"
    synth_settings: dict | None = None
    cache_dir: Path | None = None

    @property
    def kind(self) -> str:
        if self.spec.startswith(HF_PREFIX):
            return "hf"
        if self.spec.startswith(SYNTH_PREFIX):
            return "synth"
        path = Path(self.spec)
        if path.is_dir():
            return "dataset_dir"
        if path.suffix == ".jsonl":
            return "jsonl"
        return "text"

    def local_path(self) -> Path:
        """The file or directory the documents are read from (synth data is generated)."""
        if self.kind == "synth":
            return synth_file(self.spec, self.synth_settings or {}, self.cache_dir)
        path = Path(self.spec)
        if not path.exists():
            raise MmadaptError(f"data file not found: {self.spec} (set data.train / data.eval to existing files)")
        return path

    def fingerprint(self) -> str:
        """A digest of the content (files) or the `datasets` fingerprint."""
        if self.kind in ("hf", "dataset_dir"):
            return f"{self.kind}:{self._load_dataset()._fingerprint}"
        return f"file:{file_digest(self.local_path())}:{self.text_field}"

    def documents(self) -> Iterator[str]:
        """Every non-empty document, in order."""
        for chunk in self.chunks():
            yield from chunk.documents()

    def chunks(self, size: int = READ_BLOCK) -> Iterator["DocumentChunk"]:
        """The documents in consecutive chunks of about `size` bytes of text, each one a picklable piece of
        work: a file's chunks hold raw lines, decoded and parsed by `DocumentChunk.documents` wherever it runs."""
        kind = self.kind
        if kind in ("hf", "dataset_dir"):
            dataset = self._load_dataset()
            if self.text_field not in dataset.column_names:
                raise MmadaptError(f"{self.spec}: no column {self.text_field!r} (columns: "
                                   f"{', '.join(dataset.column_names)}); set data.text_field")
            batch: list[str] = []
            held = 0
            for text in dataset[self.text_field]:
                if text and text.strip():
                    batch.append(text)
                    held += len(text)
                    if held >= size:
                        yield DocumentChunk(kind, self.spec, self.text_field, size=held, texts=batch)
                        batch, held = [], 0
            if batch:
                yield DocumentChunk(kind, self.spec, self.text_field, size=held, texts=batch)
            return
        path = self.local_path()
        for first_lineno, data in line_blocks(path, size):
            yield DocumentChunk(kind, str(path), self.text_field, size=len(data), first_lineno=first_lineno, raw=data)

    def size(self) -> int:
        """About how many bytes of text the source holds (for progress: its chunks' sizes add up to it)."""
        if self.kind in ("hf", "dataset_dir"):
            dataset = self._load_dataset()
            if self.text_field not in dataset.column_names:
                return 0
            return int(dataset.data.column(self.text_field).nbytes)
        return self.local_path().stat().st_size

    def _load_dataset(self) -> Any:
        import datasets

        if self.kind == "dataset_dir":
            loaded = datasets.load_from_disk(self.spec)
            if isinstance(loaded, datasets.DatasetDict):
                if "train" not in loaded:
                    raise MmadaptError(f"{self.spec} holds splits {list(loaded)}; no 'train' split to read")
                loaded = loaded["train"]
            return loaded
        parts = self.spec[len(HF_PREFIX):].split(":")
        name, config, split = (parts + [None, None])[:3]
        try:
            with hf_offline():
                return datasets.load_dataset(name, config or None, split=split or "train")
        except Exception as exc:
            raise MmadaptError(
                f"dataset {name!r} (config {config!r}, split {split or 'train'!r}) is not in the local "
                f"Hugging Face cache ({exc.__class__.__name__}). mmadapt never downloads: on a machine "
                "with internet run datasets.load_dataset(...).save_to_disk(DIR) and point data.train at DIR, "
                "or copy the cache into HF_DATASETS_CACHE"
            ) from exc


@contextlib.contextmanager
def hf_offline() -> Iterator[None]:
    """`datasets` and the hub client in offline mode (reads the cache, never the network)."""
    import datasets
    import huggingface_hub.constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE, os.environ.get("HF_DATASETS_OFFLINE"))
    # The module-level flags are read at import time; setting the environment alone is too late.
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved[0], saved[1]
        if saved[2] is None:
            os.environ.pop("HF_DATASETS_OFFLINE", None)
        else:
            os.environ["HF_DATASETS_OFFLINE"] = saved[2]


@dataclass
class DocumentChunk:
    """Consecutive documents of one source: raw lines of a file (`raw`, from line `first_lineno`) or the texts
    of a dataset's rows (`texts`). `size` is about how many bytes of text it holds."""

    kind: str
    where: str
    text_field: str
    size: int
    first_lineno: int = 1
    raw: bytes | None = None
    texts: list[str] | None = None

    def documents(self) -> Iterator[str]:
        """Every non-empty document of the chunk, in order; a malformed line raises a DataError naming it."""
        if self.texts is not None:
            yield from self.texts
            return
        lines = block_lines(Path(self.where), self.first_lineno, self.raw or b"")
        if self.kind == "jsonl":
            for lineno, row in jsonl_rows(Path(self.where), lines):
                text = row.get(self.text_field)
                if not isinstance(text, str):
                    problem = "has no" if self.text_field not in row else f"has a {type(text).__name__} in its"
                    raise MmadaptError(f"{self.where}:{lineno}: row {problem} {self.text_field!r} field; "
                                       "set data.text_field")
                if text.strip():
                    yield text
            return
        for _, line in lines:
            if line.strip():
                yield line
