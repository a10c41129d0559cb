"""Corpus preparation: streamed, chunked, multi-process packing gives the blocks the in-memory
implementation gave; the cache is reused and invalidated by content; `mmadapt data prepare`."""
from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import RECIPES, clean_env, mmadapt_command, run_in_process, tiny_overrides, write_corpus
from mmadapt.data.mlm import MaskedBlocks, MaskingSpec, blocks_dir, build_blocks
from mmadapt.data.packing import pack_to_file
from mmadapt.data.sources import TextSource
from mmadapt.errors import MmadaptError
from mmadapt.training.distributed import free_port
from mmadapt.training.progress import WorkProgress
from test_data import CharTokenizer

TINY = RECIPES / "tiny_full.yaml"


def old_pack_documents(documents, tokenizer, block_size):
    """The implementation before streaming (every id in one Python list), kept as the reference."""
    ids: list[int] = []
    batch: list[str] = []

    def flush():
        for row in tokenizer(batch, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]:
            ids.extend(row)
        batch.clear()

    for doc in documents:
        batch.append(doc)
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()
    n_blocks = len(ids) // block_size
    return np.asarray(ids[: n_blocks * block_size], dtype=np.int32).reshape(n_blocks, block_size)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """About 360 kB: several documents per 1000-document batch, blank lines, a line without a newline."""
    path = write_corpus(tmp_path_factory.mktemp("prep") / "c.txt", lines=6000, seed=4)
    path.write_text("\ufeff" + path.read_text().replace("\n", "\n\n", 50) + "last line without newline")
    return path


@pytest.fixture(scope="module")
def tokenizer(corpus, tmp_path_factory):
    """A fast SentencePiece tokenizer, trained as the tokenizer stage trains one."""
    from transformers import AutoTokenizer

    from mmadapt.pipeline.building_blocks import train_tokenizer_on

    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer_on([TextSource(str(corpus))], out, {"vocab_size": 80}, seed=0)
    return AutoTokenizer.from_pretrained(out)


def test_streamed_blocks_equal_the_old_in_memory_blocks(corpus, tokenizer, tmp_path):
    old = old_pack_documents(TextSource(str(corpus)).documents(), tokenizer, 32)
    new = build_blocks([TextSource(str(corpus))], tokenizer, 32, tmp_path / "cache")
    assert new.dtype == np.uint16 and new.shape == old.shape and len(old) > 300
    assert np.array_equal(np.asarray(new, dtype=np.int32), old)


@pytest.mark.parametrize("chunk_bytes,processes", [(1 << 20, 1), (4096, 1), (777, 1), (50_000, 2)])
def test_chunk_size_and_process_count_leave_the_blocks_as_they_are(corpus, tokenizer, tmp_path, chunk_bytes, processes):
    expected = old_pack_documents(TextSource(str(corpus)).documents(), tokenizer, 16)
    out = tmp_path / "blocks.bin"
    result = pack_to_file([TextSource(str(corpus))], tokenizer, 16, out, processes, chunk_bytes=chunk_bytes)
    assert result.blocks == len(expected) and result.documents_bytes == corpus.stat().st_size
    assert np.array_equal(np.fromfile(out, dtype=result.dtype).reshape(-1, 16), expected)


def test_a_slow_tokenizer_and_several_sources_pack_as_one_stream(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.jsonl"
    a.write_text("abc\nde\n\nfghij\n")
    b.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["klm", " ", "nopqrs", "t"]))
    sources = [TextSource(str(a)), TextSource(str(b))]
    docs = [d for s in sources for d in s.documents()]
    assert docs == ["abc", "de", "fghij", "klm", "nopqrs", "t"]
    for chunk_bytes in (3, 1 << 20):
        pack_to_file(sources, CharTokenizer(), 5, tmp_path / "out.bin", 1, chunk_bytes=chunk_bytes)
        got = np.fromfile(tmp_path / "out.bin", dtype=np.uint16).reshape(-1, 5)
        assert np.array_equal(got, old_pack_documents(docs, CharTokenizer(), 5))


def test_the_memory_mapped_blocks_give_the_same_batches_as_the_in_memory_ones(corpus, tokenizer, tmp_path):
    old = old_pack_documents(TextSource(str(corpus)).documents(), tokenizer, 32)
    mapped = build_blocks([TextSource(str(corpus))], tokenizer, 32, tmp_path / "cache")
    assert isinstance(mapped, np.memmap)
    spec = MaskingSpec.from_tokenizer(tokenizer, 0.15)
    keys = [(0, 5), (1, 0), (3, len(old) - 1), (0, 17)]
    before, after = MaskedBlocks(old, spec, seed=9).__getitems__(keys), MaskedBlocks(mapped, spec, seed=9).__getitems__(keys)
    for name in ("input_ids", "labels", "attention_mask"):
        assert before[name].dtype == after[name].dtype == torch.int64
        assert torch.equal(before[name], after[name])


def test_the_cache_is_reused_and_rebuilt_when_tokenizer_or_block_size_change(corpus, tokenizer, tmp_path, monkeypatch):
    import mmadapt.data.mlm as mlm

    source = [TextSource(str(corpus))]
    first = build_blocks(source, tokenizer, 32, tmp_path / "cache")
    monkeypatch.setattr(mlm, "pack_to_file", lambda *a, **k: pytest.fail("re-tokenised a cached corpus"))
    again = build_blocks(source, tokenizer, 32, tmp_path / "cache")
    assert Path(again.filename) == Path(first.filename) and np.array_equal(again, first)
    monkeypatch.undo()
    other_size = build_blocks(source, tokenizer, 16, tmp_path / "cache")
    other_tokenizer = build_blocks(source, CharTokenizer(), 32, tmp_path / "cache")
    dirs = {Path(b.filename).parent for b in (first, other_size, other_tokenizer)}
    assert len(dirs) == 3 and Path(first.filename).parent == blocks_dir(source, tokenizer, 32, tmp_path / "cache")
    info = json.loads((Path(first.filename).parent / "info.json").read_text())
    assert info["version"] == mlm.CACHE_VERSION and info["blocks"] == len(first) and info["dtype"] == "uint16"


def test_a_long_preparation_prints_progress_lines_when_not_in_a_terminal():
    stream = io.StringIO()
    progress = WorkProgress("data.train", 4_000_000, stream=stream, every_s=0)
    progress.update(1_000_000, 250_000)
    line = stream.getvalue().strip()
    assert line.startswith("data.train: 1.0 MB of 4.0 MB (25%), 250,000 tokens, ")
    assert "tokens/s, elapsed 0:00:00 remaining" in line


def _prepare_cli(*args):
    return subprocess.run(mmadapt_command() + ["data", "prepare", str(TINY), *map(str, args)], capture_output=True,
                          text=True, env=clean_env())


@pytest.mark.slow  # a whole run in a child process
def test_data_prepare_builds_every_corpus_once_and_train_reuses_them(tiny_corpus, tmp_path, monkeypatch):
    # a cache of its own: other tests of the session prepare the same tiny corpus with the same tokenizer
    monkeypatch.setenv("MMADAPT_CACHE", str(tmp_path / "cache"))
    new = write_corpus(tmp_path / "new.txt", lines=1500, seed=2)
    out = tmp_path / "run"
    overrides = tiny_overrides(tiny_corpus, out, "stages=[pretrain,tokenizer,adapt]", f"data.eval=[{new}]",
                               f"languages={{xx: {{corpus: [{new}]}}}}", "tokenizer.vocab_size=50",
                               "adapt.train={max_steps: 2}", "train.max_steps=2")
    first = _prepare_cli(*overrides)
    assert first.returncode == 0, first.stderr[-3000:]
    listed = [line for line in first.stdout.splitlines() if " blocks of 32 tokens (" in line]
    assert [line.split(":")[0] for line in listed] == ["data.train", "data.eval", "languages.xx.corpus"]
    assert all("(built)" in line for line in listed)
    assert (out / "tokenizers" / "xx" / "stage_complete.json").is_file()

    import mmadapt.data.mlm as mlm
    import mmadapt.pipeline.stages.tokenizer as tokenizer_stage
    import mmadapt.pipeline.building_blocks as pretraining

    monkeypatch.setattr(mlm, "pack_to_file", lambda *a, **k: pytest.fail("train re-tokenised a prepared corpus"))
    for module in (pretraining, tokenizer_stage):
        monkeypatch.setattr(module, "train_tokenizer_on", lambda *a, **k: pytest.fail("trained a tokenizer again"))
    _, result = run_in_process(TINY, overrides)
    assert set(result.outputs) == {"pretrain", "adapt/xx"} and not result.skipped
    again = _prepare_cli(*overrides)
    assert again.stdout.count("(already prepared)") == 3 and "(built)" not in again.stdout


def test_data_prepare_names_a_missing_corpus_in_one_line(tiny_corpus, tmp_path):
    missing = tmp_path / "no_such_corpus.txt"
    proc = _prepare_cli(*tiny_overrides(tiny_corpus, tmp_path / "run", "stages=[pretrain,tokenizer,adapt]",
                                        f"languages={{xx: {{corpus: [{missing}]}}}}"))
    assert proc.returncode == 2
    assert f"languages.xx.corpus[0]: {missing}: no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr and "data.train:" not in proc.stdout  # refused before any work
    assert not (tmp_path / "run" / "tokenizers").exists()


def test_an_unreadable_line_in_a_worker_is_named_by_file_and_line(tmp_path, tokenizer):
    path = tmp_path / "bad.txt"
    good = "a fine line of text here\n" * 4000
    path.write_bytes(good.encode() + "caf\u00e9\n".encode("latin-1") + good.encode())
    with pytest.raises(MmadaptError, match=r"bad.txt:4001: not valid UTF-8"):
        pack_to_file([TextSource(str(path))], tokenizer, 16, tmp_path / "o.bin", 2, chunk_bytes=20_000)


@pytest.mark.slow
def test_two_ranks_prepare_a_corpus_once_and_both_stop_with_rank_0s_problem(tiny_corpus, tmp_path):
    cache = tmp_path / "cache"

    def torchrun(*extra):
        command = ["torchrun", "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "mmadapt", "data", "prepare",
                   str(TINY), *tiny_overrides(tiny_corpus, tmp_path / "run", *extra)]
        return subprocess.run(command, capture_output=True, text=True, env=clean_env(MMADAPT_CACHE=str(cache)),
                              timeout=300, cwd=RECIPES.parent)

    proc = torchrun()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("data.train: ") == 2  # rank 0's build line and its listing; rank 1 built nothing
    assert len(list((cache / "mlm").iterdir())) == 1
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    proc = torchrun(f"data.eval=[{empty}]")  # rank 0 finds it empty: rank 1 stops too, instead of waiting
    assert proc.returncode != 0 and proc.stderr.count("holds too little text") >= 2, proc.stderr[-3000:]
