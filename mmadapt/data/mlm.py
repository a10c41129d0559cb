"""Tokenised, packed and masked MLM blocks, cached on a content fingerprint.

Masking is a pure function of (seed, epoch, block index), so the batches a rank sees do not
depend on worker counts, prefetching or whether the run was resumed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from mmadapt.data.packing import pack_to_file
from mmadapt.data.sources import TextSource, default_cache_dir
from mmadapt.errors import MmadaptError
from mmadapt.files.atomic import write_dir_atomic
from mmadapt.files.digests import json_digest
from mmadapt.training.distributed import DistInfo, barrier, broadcast_object
from mmadapt.training.progress import WorkProgress, format_bytes, format_duration

#: bump when the block layout changes, so stale caches are never reused
#: (2: raw unsigned ids, the narrowest type the vocabulary fits, beside info.json)
CACHE_VERSION = 2
BLOCKS_FILE = "blocks.bin"
INFO_FILE = "info.json"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A digest of the vocabulary, special tokens and class of a tokenizer."""
    payload = {
        "class": type(tokenizer).__name__,
        "vocab": sorted(tokenizer.get_vocab().items()),
        "special": {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
    }
    return json_digest(payload)


def blocks_key(sources: Sequence[TextSource], tokenizer: Any, block_size: int) -> dict:
    """What a cache entry of blocks is keyed on: the sources' contents, the tokenizer, the settings, the layout."""
    return {
        "version": CACHE_VERSION,
        "sources": [s.fingerprint() for s in sources],
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "block_size": block_size,
    }


def blocks_dir(sources: Sequence[TextSource], tokenizer: Any, block_size: int, cache_dir: Path | None) -> Path:
    """The cache entry that holds (or will hold) the blocks of `sources`."""
    return _entry_dir(blocks_key(sources, tokenizer, block_size), cache_dir)


def _entry_dir(key: dict, cache_dir: Path | None) -> Path:
    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "mlm" / json_digest(key, 24)


def build_blocks(sources: Sequence[TextSource], tokenizer: Any, block_size: int, cache_dir: Path | None,
                 dist: DistInfo | None = None, what: str = "data.train", processes: int = 0) -> np.ndarray:
    """The packed blocks of `sources`, memory-mapped: built once (rank 0, on `processes` processes, 0: every
    core) into the cache, reused by every later run over the same data, tokenizer and settings.

    The other ranks wait at a barrier meanwhile (at most `distributed.timeout_minutes`: a corpus that takes
    longer is prepared ahead with `mmadapt data prepare`)."""
    target, problem = None, None
    if dist is None or dist.is_main:
        try:
            target = str(prepare_blocks(sources, tokenizer, block_size, cache_dir, what, processes))
        except MmadaptError as exc:
            problem = str(exc)
            if dist is None or dist.world_size == 1:
                raise
    target, problem = broadcast_object((target, problem))
    if problem:  # every rank stops with rank 0's reason, instead of waiting for it
        raise MmadaptError(problem)
    barrier()
    return load_blocks(Path(target))


def prepare_blocks(sources: Sequence[TextSource], tokenizer: Any, block_size: int, cache_dir: Path | None,
                   what: str = "data.train", processes: int = 0) -> Path:
    """The cache entry of `sources`' blocks (one process: no ranks involved), built unless it exists."""
    key = blocks_key(sources, tokenizer, block_size)
    target = _entry_dir(key, cache_dir)
    if not (target / INFO_FILE).is_file():
        names = ", ".join(s.spec for s in sources)

        def write(staged: Path) -> None:
            progress = WorkProgress(what, sum(s.size() for s in sources))
            packed = pack_to_file(sources, tokenizer, block_size, staged / BLOCKS_FILE, processes, progress.update)
            seconds = progress.close()
            if packed.blocks == 0:
                raise MmadaptError(f"{what}: {names} holds too little text for one block of {block_size} "
                                   "tokens (is it empty?); add text or lower data.block_size")
            info = {**key, "blocks": packed.blocks, "dtype": packed.dtype, "tokens": packed.tokens}
            (staged / INFO_FILE).write_text(json.dumps(info, indent=1))
            print(f"{what}: {packed.blocks:,} blocks of {block_size} tokens from {format_bytes(packed.documents_bytes)} "
                  f"of text in {format_duration(seconds)} ({packed.tokens / max(seconds, 1e-9):,.0f} tokens/s), "
                  f"cached in {target}", flush=True)

        write_dir_atomic(target, write, replace=False)  # another process may have won the race: its copy is identical
    return target


def load_blocks(target: Path) -> np.ndarray:
    """The blocks of a cache entry, memory-mapped read-only."""
    info = json.loads((target / INFO_FILE).read_text())
    return np.memmap(target / BLOCKS_FILE, dtype=np.dtype(info["dtype"]), mode="r",
                     shape=(info["blocks"], info["block_size"]))


def _seed_for(*parts: int) -> int:
    digest = hashlib.blake2b(",".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@dataclass
class MaskingSpec:
    """What standard BERT masking needs from a tokenizer."""

    mask_id: int
    vocab_size: int
    special_ids: list[int]
    probability: float = 0.15

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, probability: float) -> "MaskingSpec":
        return cls(tokenizer.mask_token_id, len(tokenizer), list(tokenizer.all_special_ids), probability)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _uniforms(block_keys: np.ndarray, length: int, stream: int) -> np.ndarray:
    """Uniform [0, 1) draws, one per (block, position), a pure function of the block's key.

    A counter-based generator: every draw hashes (key, stream, position), so a batch is
    masked in a few vectorised operations and a block's mask never depends on which
    other blocks share its batch.
    """
    with np.errstate(over="ignore"):
        base = _splitmix64(block_keys.astype(np.uint64) ^ np.uint64(stream * 0x5851F42D4C957F2D % 2**64))
        counters = base[:, None] + np.arange(length, dtype=np.uint64)[None, :]
    return (_splitmix64(counters) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def mask_blocks(ids: np.ndarray, block_keys: np.ndarray, spec: MaskingSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of a (batch, length) array of ids; block i's draws come from `block_keys[i]`.

    `spec.probability` of the non-special tokens become targets: 80% <mask>, 10% a random id,
    10% unchanged.
    """
    ids = np.asarray(ids, dtype=np.int64)
    length = ids.shape[1]
    chosen = (_uniforms(block_keys, length, 0) < spec.probability) & ~np.isin(ids, spec.special_ids)
    roll = _uniforms(block_keys, length, 1)
    random_ids = (_uniforms(block_keys, length, 2) * spec.vocab_size).astype(np.int64)
    inputs = np.where(chosen & (roll < 0.8), spec.mask_id, ids)
    inputs = np.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, inputs)
    labels = np.where(chosen, ids, -100)
    return torch.from_numpy(inputs), torch.from_numpy(labels)


class MaskedBlocks(Dataset):
    """Blocks indexed by (epoch, index), masked deterministically from the seed.

    The loader fetches whole batches through `__getitems__` (masked in one vectorised
    pass); `dataset[(epoch, index)]` gives the same block exactly as it appears in a batch.
    """

    def __init__(self, blocks: np.ndarray, spec: MaskingSpec, seed: int):
        self.blocks, self.spec, self.seed = blocks, spec, seed

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        return {name: value[0] for name, value in self.__getitems__([key]).items()}

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> dict[str, torch.Tensor]:
        indices = np.fromiter((index for _, index in keys), dtype=np.int64, count=len(keys))
        block_keys = np.fromiter((_seed_for(self.seed, epoch, index) for epoch, index in keys), dtype=np.uint64,
                                 count=len(keys))
        ids = np.asarray(self.blocks[indices])
        inputs, labels = mask_blocks(ids, block_keys, self.spec)
        return {"input_ids": inputs, "attention_mask": torch.ones_like(inputs), "labels": labels}


def collate(batch: Any) -> Any:
    """Batches a dataset built whole (`__getitems__`) pass through; lists of samples are stacked."""
    return batch if isinstance(batch, dict) else default_collate(batch)


class ShardedEpochSampler(Sampler):
    """Endless (epoch, index) pairs: a fresh shuffle each epoch, an equal shard per rank.

    `start` skips the samples this rank already consumed, which is how a resumed run
    continues at the exact data position it stopped at.
    """

    def __init__(self, num_blocks: int, seed: int, rank: int, world_size: int, start: int = 0, shuffle: bool = True):
        self.per_rank = num_blocks // world_size
        if self.per_rank == 0:
            raise MmadaptError(f"only {num_blocks} blocks for {world_size} ranks; add data or lower data.block_size")
        self.num_blocks, self.seed, self.rank, self.world = num_blocks, seed, rank, world_size
        self.start, self.shuffle = start, shuffle

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            if self.shuffle:
                order = torch.randperm(self.num_blocks, generator=torch.Generator().manual_seed(_seed_for(self.seed, epoch)))
            else:
                order = torch.arange(self.num_blocks)
            shard = order[self.rank :: self.world][: self.per_rank].tolist()
            for index in shard[offset:]:
                yield epoch, index
            epoch, offset = epoch + 1, 0

    def __len__(self) -> int:  # DataLoader wants it; the stream is endless
        return 2**62


def _worker_init(worker_id: int) -> None:
    # Masking is seeded per block, but user code in collate/transforms may use the RNGs.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def train_loader(dataset: MaskedBlocks, micro_batch_size: int, dist: DistInfo, start: int, num_workers: int) -> DataLoader:
    """An endless loader over this rank's shard, starting after `start` samples."""
    sampler = ShardedEpochSampler(len(dataset), dataset.seed, dist.rank, dist.world_size, start=start)
    generator = torch.Generator().manual_seed(_seed_for(dataset.seed, dist.rank, 7))  # per-rank worker seeds
    return DataLoader(dataset, batch_size=micro_batch_size, sampler=sampler, num_workers=num_workers, collate_fn=collate,
                      worker_init_fn=_worker_init if num_workers else None, generator=generator,
                      pin_memory=dist.device.type == "cuda", persistent_workers=num_workers > 0,
                      prefetch_factor=4 if num_workers else None)


def eval_batches(dataset: MaskedBlocks, micro_batch_size: int, dist: DistInfo, max_batches: int) -> list[dict]:
    """A fixed list of this rank's evaluation batches (same masks every time)."""
    per_rank = max(1, len(dataset) // dist.world_size)
    indices = list(range(dist.rank, len(dataset), dist.world_size))[:per_rank][: max_batches * micro_batch_size]
    return [dataset.__getitems__([(0, i) for i in indices[start : start + micro_batch_size]])
            for start in range(0, len(indices), micro_batch_size)]
