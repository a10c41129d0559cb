"""Train a SentencePiece tokenizer and save it as a `transformers` tokenizer directory.

The saved directory uses the XLM-R / RoBERTa id layout that the rest of mmadapt relies
on: ``<s>=0, <pad>=1, </s>=2, <unk>=3``, the learned pieces next, and ``<mask>`` as the
last id. SentencePiece is told to put its own special pieces at exactly those ids, so
SentencePiece ids and tokenizer ids agree (no fairseq offset of one as in real XLM-R).

How each ``model_type`` is saved:

- ``unigram`` and ``char``: as ``XLMRobertaTokenizer`` (a Unigram model with the
  SentencePiece scores and normalizer), which reproduces SentencePiece's segmentation.
- ``bpe``: XLMRobertaTokenizer can only hold a Unigram model, and scoring BPE pieces as
  a Unigram lattice segments differently, so it is saved as a generic ``tokenizers``
  BPE tokenizer with the same special tokens, normalizer and templates.
- ``word``: a generic word-level tokenizer. Known words segment as in SentencePiece;
  each unknown word becomes one ``<unk>`` (SentencePiece fuses a run of unknown words
  into a single ``<unk>``, which would misalign words and tokens).

Scale: SentencePiece is given at most ``input_sentence_size`` lines (default 2,000,000, as
XLM-R sampled a few million sentences per language) and at most ``input_bytes`` bytes of them
(default 50 MB, so that a corpus of long lines, a paragraph or a document each, cannot make the
sample hundreds of MB: SentencePiece's time and memory grow with the bytes it reads), drawn
uniformly in one pass over the corpus by `sample_lines` with the seed (mmadapt samples itself: SentencePiece's own sampling
draws differently in every process, seed or not), and runs on ``num_threads`` threads (default:
every core). Time and memory are then those of the sample, whatever the corpus's size, and the
vocabulary is the same for the same corpus, seed and thread count.

Vocabulary size: with ``SentencePieceConfig.hard_vocab_limit=False`` (the default)
``vocab_size`` is an upper bound: small or synthetic corpora often cannot fill the
requested vocabulary, and failing there helps nobody, so when SentencePiece reports the
largest size it can build, training is repeated at exactly that size and a warning is
logged. (SentencePiece's own soft limit is not used: it prunes to well below what the
corpus supports, even when the requested size was reachable.) With
``hard_vocab_limit=True`` an unreachable size raises `VocabularyTooLargeError` naming the
files and the largest size that works.
"""
from __future__ import annotations

import collections
import itertools
import logging
import math
import os
import random
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from mmadapt.errors import MmadaptError
from mmadapt.files.atomic import write_dir_atomic

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

MODEL_TYPES = ("unigram", "bpe", "char", "word")
SPECIAL_TOKENS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>"}
MASK_TOKEN = "<mask>"
SPM_FILE = "spm.model"  # kept for reference; not a name transformers looks for

#: XLM-R-style sampling: a few million lines per language bound time and memory on any corpus
DEFAULT_INPUT_SENTENCE_SIZE = 2_000_000
#: ... and at most this many bytes of them, so that long lines (a paragraph or a document per line) do
#: not make the sample hundreds of MB: SentencePiece's time and memory grow with the bytes it reads
DEFAULT_INPUT_BYTES = 50_000_000

_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform says, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class VocabularyTooLargeError(MmadaptError, ValueError):
    """The requested vocabulary is larger than the corpus can fill (hard_vocab_limit=True)."""


@dataclass
class SentencePieceConfig:
    """Settings for `train_sentencepiece_tokenizer`.

    vocab_size counts the special tokens except ``<mask>`` (which adds one more id).
    hard_vocab_limit=False (the default) falls back to the largest vocabulary the corpus
    supports when vocab_size is out of reach; True raises VocabularyTooLargeError.
    For model_type="char" the vocabulary is the corpus's characters, at most vocab_size of
    them (the rarest are dropped and become <unk>).
    """

    vocab_size: int = 8000
    model_type: str = "unigram"  # unigram | bpe | char | word
    character_coverage: float = 1.0
    hard_vocab_limit: bool = False
    #: lines sampled, shuffled, from the inputs (SentencePiece's reservoir sampling, seeded by `seed`)
    input_sentence_size: int = DEFAULT_INPUT_SENTENCE_SIZE
    #: at most this many bytes of those lines (UTF-8, one per line): bounds time and memory when lines are long
    input_bytes: int = DEFAULT_INPUT_BYTES
    #: SentencePiece's threads; 0: every core this process may use
    num_threads: int = 0

    def threads(self) -> int:
        """The thread count SentencePiece gets: `num_threads`, or this process's cores when 0."""
        return self.num_threads or available_cores()

    def validate(self) -> None:
        """Raise ValueError if a field is out of range."""
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        if self.vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must exceed {len(SPECIAL_TOKENS)} (the special tokens), got {self.vocab_size}")
        if not 0.0 < self.character_coverage <= 1.0:
            raise ValueError(f"character_coverage must be in (0, 1], got {self.character_coverage}")
        if self.input_sentence_size <= 0:
            raise ValueError(f"input_sentence_size must be positive, got {self.input_sentence_size}")
        if self.input_bytes <= 0:
            raise ValueError(f"input_bytes must be positive, got {self.input_bytes}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be 0 (every core) or positive, got {self.num_threads}")


def train_sentencepiece_tokenizer(
    text_files: list[Path], out_dir: Path, cfg: SentencePieceConfig, *, seed: int = 0
) -> "PreTrainedTokenizerBase":
    """Train SentencePiece on `text_files` (one sentence per line) and save a tokenizer in `out_dir`.

    The directory loads with ``transformers.AutoTokenizer.from_pretrained(out_dir)``; the
    id layout is <s>=0, <pad>=1, </s>=2, <unk>=3, pieces, <mask>=last. It also holds the
    raw SentencePiece model as ``spm.model``. The directory is built beside `out_dir` and
    renamed into place, replacing any previous one, so a half-written tokenizer never
    exists. At most `cfg.input_sentence_size` lines, sampled with `seed`, are trained on.
    Same files, config, seed and thread count give the same vocabulary, in any process.
    Returns the tokenizer loaded back from `out_dir`.
    """
    files = [Path(f) for f in text_files]
    _check_inputs(files)
    return train_sentencepiece_on_lines(_read_lines(files), out_dir, cfg, seed=seed,
                                        described=", ".join(str(f) for f in files))


def train_sentencepiece_on_lines(
    lines: Iterable[str], out_dir: Path, cfg: SentencePieceConfig, *, seed: int = 0, described: str = "the corpus"
) -> "PreTrainedTokenizerBase":
    """`train_sentencepiece_tokenizer` over an iterable of lines (documents) read once, in one pass.

    Only the sample (`cfg.input_sentence_size` lines at most) is held in memory and written to disk,
    so a corpus of any size costs the sample's memory. `described` names the input in errors.
    """
    from transformers import AutoTokenizer

    cfg.validate()
    out_dir = Path(out_dir)

    def write(staged: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.sample-", dir=out_dir.parent) as work:
            sample = Path(work) / "sample.txt"
            kept, seen = write_sample(lines, sample, cfg.input_sentence_size, seed, cfg.input_bytes)
            logger.info("training SentencePiece on %d of %d lines (%d bytes) with %d threads", kept, seen,
                        sample.stat().st_size, cfg.threads())
            model_file = _train_spm(sample, described, staged, cfg, seed)
        _build_hf_tokenizer(model_file, cfg.model_type).save_pretrained(staged)

    write_dir_atomic(out_dir, write)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    logger.info("trained %s tokenizer with %d ids in %s", cfg.model_type, len(tokenizer), out_dir)
    return tokenizer


def sample_lines(lines: Iterable[str], size: int, seed: int, max_bytes: int | None = None) -> tuple[list[str], int]:
    """A uniform sample of at most `size` of `lines` that takes at most `max_bytes` written one per line
    (all of them, in order, when they fit both bounds), and how many lines there were.

    Reservoir sampling (Li's algorithm L: it jumps over the lines it will not keep, so the cost per
    skipped line is that of reading it) with Python's own generator: the same lines and seed give the
    same sample in every process. (SentencePiece's own `input_sentence_size` sampling does not: it
    draws differently in each process even with `set_random_generator_seed`.) The byte bound only
    acts when the reservoir outgrows it (lines are counted in UTF-8 bytes plus the newline): then
    `_shrink` drops lines at random to a size that fits, so a sample within the bound is drawn exactly
    as without one, and one beyond it is still uniform. A single line larger than `max_bytes` is kept.
    """
    rng = random.Random(seed)
    budget = max_bytes if max_bytes is not None else math.inf
    numbered = zip(itertools.count(1), lines)  # positions counted in C, skipped lines never reach Python
    reservoir, sizes, held, seen = _fill(numbered, size, budget)
    if seen < size and held <= budget:
        return reservoir, seen
    size = len(reservoir)
    if held > budget:
        size, held = _shrink(reservoir, sizes, held, budget, rng)
        weight = rng.betavariate(size, seen - size + 1)  # algorithm L's state: the size-th smallest of seen keys
    else:
        weight = math.exp(math.log(1.0 - rng.random()) / size)
    while True:
        skip = int(math.log(1.0 - rng.random()) / math.log(1.0 - weight)) if weight < 1.0 else 0
        last = collections.deque(itertools.islice(numbered, min(skip, sys.maxsize - 1)), maxlen=1)
        if last:
            seen = last[0][0]
        picked = next(numbered, None)
        if picked is None:
            return reservoir, seen
        seen, line = picked
        slot = rng.randrange(size)
        reservoir[slot] = line
        held += _line_bytes(line) - sizes[slot]
        sizes[slot] = _line_bytes(line)
        if held > budget and size > 1:
            size, held = _shrink(reservoir, sizes, held, budget, rng)
            weight = rng.betavariate(size, seen - size + 1)
            continue
        weight *= math.exp(math.log(1.0 - rng.random()) / size)


def _line_bytes(line: str) -> int:
    return len(line.encode("utf-8", "surrogateescape")) + 1


def _fill(numbered: Iterator[tuple[int, str]], size: int, budget: float) -> tuple[list[str], list[int], int, int]:
    """The first `size` lines, or fewer when they outgrow `budget` bytes first: (lines, their bytes, bytes, lines read)."""
    reservoir: list[str] = []
    sizes: list[int] = []
    held = 0
    for _, line in itertools.islice(numbered, size):
        reservoir.append(line)
        sizes.append(_line_bytes(line))
        held += sizes[-1]
        if held > budget:
            break
    return reservoir, sizes, held, len(reservoir)


def _shrink(reservoir: list[str], sizes: list[int], held: int, budget: float, rng: random.Random) -> tuple[int, int]:
    """Drop lines of the reservoir at random until it holds at most `budget` bytes (or one line): a uniform
    sample stays uniform. The new size (at most the old size scaled by budget / held) and bytes held."""
    keep = max(1, min(len(reservoir) - 1, int(len(reservoir) * budget / held)))
    while len(reservoir) > 1 and (len(reservoir) > keep or held > budget):
        slot = rng.randrange(len(reservoir))
        held -= sizes[slot]
        reservoir[slot], sizes[slot] = reservoir[-1], sizes[-1]
        reservoir.pop()
        sizes.pop()
    return len(reservoir), held


def write_sample(lines: Iterable[str], path: Path, size: int, seed: int, max_bytes: int | None = None) -> tuple[int, int]:
    """`sample_lines` written to `path`, one per line; (lines kept, lines read)."""
    sample, seen = sample_lines(lines, size, seed, max_bytes)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        for line in sample:
            f.write(line + "\n")
    return len(sample), seen


def _read_lines(files: list[Path]) -> Iterator[str]:
    for path in files:
        # surrogateescape: bytes that are not UTF-8 pass through to SentencePiece unchanged
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                yield line.rstrip("\n")


def _check_inputs(files: list[Path]) -> None:
    if not files:
        raise ValueError("train_sentencepiece_tokenizer needs at least one text file")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"tokenizer training files not found: {', '.join(missing)}")


def _train_spm(sample: Path, described: str, work_dir: Path, cfg: SentencePieceConfig, seed: int) -> Path:
    prefix = work_dir / Path(SPM_FILE).stem
    try:
        _run_spm_trainer(sample, prefix, cfg.vocab_size, cfg, seed)
    except RuntimeError as err:
        match = _TOO_HIGH.search(str(err))
        if match is None and "sentences_.empty()" in str(err):
            raise MmadaptError(f"SentencePiece found no sentence to train on in {described}: the text is empty, or "
                               "every line is longer than it accepts (4192 bytes); add text, or split long lines "
                               "into sentences") from None
        if match is None:
            raise
        largest = int(match.group(2))
        if cfg.hard_vocab_limit:
            raise VocabularyTooLargeError(
                f"vocab_size={cfg.vocab_size} is more than SentencePiece ({cfg.model_type}) can build from "
                f"{described}: the largest possible is {largest}. "
                "Lower vocab_size, add text, or set hard_vocab_limit=False to accept a smaller vocabulary."
            ) from None
        # SentencePiece's own soft limit prunes well below what the corpus supports, so
        # retrain at exactly the largest size it reported instead.
        logger.warning(
            "vocab_size=%d is more than the corpus supports; training with %d pieces instead",
            cfg.vocab_size,
            largest,
        )
        _run_spm_trainer(sample, prefix, largest, cfg, seed)
    prefix.with_suffix(".vocab").unlink(missing_ok=True)
    model_file = prefix.with_suffix(".model")
    _drop_paths_from_model(model_file)
    return model_file


def _drop_paths_from_model(model_file: Path) -> None:
    """Remove the input and output paths SentencePiece records in its model file.

    They make the file depend on where it was trained, so two identical trainings in
    different directories would not give byte-identical files.
    """
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    del proto.trainer_spec.input[:]
    proto.trainer_spec.ClearField("model_prefix")
    model_file.write_bytes(proto.SerializeToString())


def _run_spm_trainer(sample: Path, prefix: Path, vocab_size: int, cfg: SentencePieceConfig, seed: int) -> None:
    import sentencepiece as spm

    # The sample is drawn already (sample_lines); SentencePiece trains on all of it. Its random
    # generator is seeded anyway, for whatever else in it may draw.
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        input=str(sample),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=cfg.model_type,
        character_coverage=cfg.character_coverage,
        # Always exact: the soft fallback is handled by the caller (see module docstring).
        hard_vocab_limit=True,
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        bos_piece=SPECIAL_TOKENS["bos"],
        pad_piece=SPECIAL_TOKENS["pad"],
        eos_piece=SPECIAL_TOKENS["eos"],
        unk_piece=SPECIAL_TOKENS["unk"],
        input_sentence_size=0,
        shuffle_input_sentence=False,
        # The same sample and thread count give the same model in any process (measured: it can
        # differ across thread counts, as the threads' partial sums are added in another grouping).
        num_threads=cfg.threads(),
        minloglevel=2,  # SentencePiece logs every EM step to stderr otherwise
    )


def _build_hf_tokenizer(model_file: Path, model_type: str):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    charsmap = proto.normalizer_spec.precompiled_charsmap or None
    if model_type in ("unigram", "char"):
        from transformers import XLMRobertaTokenizer

        vocab = [(p.piece, p.score) for p in proto.pieces] + [(MASK_TOKEN, 0.0)]
        return XLMRobertaTokenizer(vocab=vocab, _spm_precompiled_charsmap=charsmap)
    return _generic_tokenizer(proto, model_type, charsmap)


def _generic_tokenizer(proto, model_type: str, charsmap):
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE, WordLevel
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import generate_merges

    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    if model_type == "bpe":
        merges = generate_merges(vocab)
        vocab[MASK_TOKEN] = len(vocab)
        model = BPE(vocab=vocab, merges=merges, unk_token=SPECIAL_TOKENS["unk"], fuse_unk=True, byte_fallback=False)
    else:
        vocab[MASK_TOKEN] = len(vocab)
        model = WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk"])
    backend = Tokenizer(model)
    if charsmap:
        backend.normalizer = normalizers.Precompiled(charsmap)
    # The same pre-tokenizer, decoder and templates XLMRobertaTokenizer uses.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["eos"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=SPECIAL_TOKENS["unk"],
        pad_token=SPECIAL_TOKENS["pad"],
        mask_token=MASK_TOKEN,
    )


