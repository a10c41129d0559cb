"""Tokenising corpora into MLM blocks on disk: streaming, in bounded memory, on every core.

The block layout is that of concatenating every document's ids (with its special tokens) and
cutting the stream into blocks of `block_size`, the remainder dropped. Sources are read in
chunks of whole documents (`TextSource.chunks`); worker processes decode and tokenise chunks
while the main process appends their ids, in order, to one raw file of whole blocks. Only a
few chunks are in flight at a time, so memory does not grow with the corpus, and the blocks
are the same whatever the chunk size or process count.
"""
from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

import numpy as np

from mmadapt.errors import MmadaptError

#: documents tokenised per call of the tokenizer
TOKENIZE_BATCH = 1000
#: bytes of text per chunk of work
CHUNK_BYTES = 8 << 20
#: chunks in flight per worker process (bounds memory; two keep every worker busy)
IN_FLIGHT_PER_PROCESS = 2


def ids_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type holding every id of a vocabulary."""
    for dtype in (np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.int64)


class TokenEncoder:
    """A tokenizer's `input_ids` (special tokens added, never truncated) for batches of documents.

    A fast tokenizer is called through its Rust backend (what its `__call__` does, less building the
    attention masks and offsets nobody reads here); any other is called as it is. Picklable, so
    worker processes get their own copy.
    """

    def __init__(self, tokenizer: Any):
        self.dtype = ids_dtype(len(tokenizer))
        backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        if backend is not None:
            from tokenizers import Tokenizer

            backend = Tokenizer.from_str(backend.to_str())  # a copy: the caller's tokenizer is left as it was
            backend.no_truncation()
            backend.no_padding()
            backend.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
            self.backend, self.tokenizer = backend, None
        else:
            self.backend, self.tokenizer = None, tokenizer

    def rows(self, documents: list[str]) -> list[list[int]]:
        """Each document's ids."""
        if self.backend is not None:
            encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
            return [encoding.ids for encoding in encode(documents, add_special_tokens=True)]
        return self.tokenizer(documents, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]

    def encode(self, documents: Iterable[str]) -> np.ndarray:
        """The ids of all `documents`, concatenated."""
        parts = []
        documents = iter(documents)
        while batch := list(itertools.islice(documents, TOKENIZE_BATCH)):
            rows = self.rows(batch)
            count = sum(map(len, rows))
            try:
                parts.append(np.fromiter(itertools.chain.from_iterable(rows), dtype=self.dtype, count=count))
            except (OverflowError, ValueError) as exc:  # an id past the vocabulary's size
                raise MmadaptError(f"the tokenizer produced an id that does not fit {self.dtype} "
                                   f"(its size says it has fewer ids): {exc}") from None
        return np.concatenate(parts) if parts else np.zeros(0, dtype=self.dtype)


class BlockWriter:
    """Appends ids to `out` as whole blocks of `block_size`, carrying the remainder to the next call."""

    def __init__(self, out: BinaryIO | list, block_size: int, dtype: np.dtype):
        self.out, self.block_size, self.dtype = out, block_size, dtype
        self.carry = np.zeros(0, dtype=dtype)
        self.blocks = 0
        self.tokens = 0

    def add(self, ids: np.ndarray) -> None:
        """Write the whole blocks `ids` completes."""
        self.tokens += len(ids)
        stream = np.concatenate([self.carry, ids]) if len(self.carry) else ids
        whole = len(stream) // self.block_size * self.block_size
        if whole:
            if isinstance(self.out, list):
                self.out.append(stream[:whole].copy())
            else:
                self.out.write(stream[:whole].tobytes())
            self.blocks += whole // self.block_size
        self.carry = stream[whole:].copy()


def pack_documents(documents: Iterator[str], tokenizer: Any, block_size: int) -> np.ndarray:
    """Tokenise documents (each with its special tokens), concatenate, cut into blocks (in memory)."""
    encoder = TokenEncoder(tokenizer)
    parts: list[np.ndarray] = []
    writer = BlockWriter(parts, block_size, encoder.dtype)
    writer.add(encoder.encode(documents))
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=encoder.dtype)
    return flat.reshape(-1, block_size)


@dataclass
class PackResult:
    """What `pack_to_file` wrote."""

    blocks: int
    tokens: int
    documents_bytes: int
    dtype: str


def pack_to_file(sources: Sequence[Any], tokenizer: Any, block_size: int, out: Path, processes: int = 0,
                 progress: Callable[[int, int], None] | None = None, chunk_bytes: int = CHUNK_BYTES) -> PackResult:
    """Tokenise `sources` (TextSources) and write their blocks to `out` (raw ids, row after row).

    `processes` worker processes tokenise (0: one per core); a corpus of one chunk is tokenised in
    this process. `progress(bytes_done, tokens_done)` is called after every chunk.
    """
    from mmadapt.model.tokenizer_training import available_cores

    encoder = TokenEncoder(tokenizer)
    chunks = (chunk for source in sources for chunk in source.chunks(chunk_bytes))
    done_bytes = 0
    with open(out, "wb") as f:
        writer = BlockWriter(f, block_size, encoder.dtype)
        for ids, size in _encoded(chunks, encoder, processes or available_cores()):
            writer.add(ids)
            done_bytes += size
            if progress is not None:
                progress(done_bytes, writer.tokens)
    return PackResult(writer.blocks, writer.tokens, done_bytes, encoder.dtype.name)


def _encoded(chunks: Iterator[Any], encoder: TokenEncoder, processes: int) -> Iterator[tuple[np.ndarray, int]]:
    """(ids, bytes) of each chunk, in order: in worker processes when there is more than one chunk."""
    first = next(chunks, None)
    second = next(chunks, None) if first is not None else None
    if second is None or processes <= 1:
        for chunk in itertools.chain([first] if first is not None else [], [second] if second else [], chunks):
            yield encoder.encode(chunk.documents()), chunk.size
        return
    # spawn, not fork: the parent may hold threads (torch, gloo, the tokenizer's own pool)
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(processes, initializer=_init_worker, initargs=(encoder,))
    try:
        pending: collections.deque = collections.deque()
        for chunk in itertools.chain([first, second], chunks):
            pending.append((pool.apply_async(_encode_chunk, (chunk,)), chunk.size))
            if len(pending) >= processes * IN_FLIGHT_PER_PROCESS:
                result, size = pending.popleft()
                yield result.get(), size
        while pending:
            result, size = pending.popleft()
            yield result.get(), size
        pool.close()
        pool.join()
    finally:
        pool.terminate()


_WORKER_ENCODER: TokenEncoder | None = None


def _init_worker(encoder: TokenEncoder) -> None:
    global _WORKER_ENCODER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the processes are the parallelism: one thread each
    _WORKER_ENCODER = encoder


def _encode_chunk(chunk: Any) -> np.ndarray:
    assert _WORKER_ENCODER is not None
    return _WORKER_ENCODER.encode(chunk.documents())
