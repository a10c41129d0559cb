"""MLM data: sources, content-keyed caching, masking, sharding and resumable order."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from mmadapt.data.mlm import MaskedBlocks, MaskingSpec, ShardedEpochSampler, build_blocks, mask_blocks
from mmadapt.data.packing import pack_documents
from mmadapt.data.sources import TextSource
from mmadapt.errors import MmadaptError


class CharTokenizer:
    """A stand-in tokenizer: one id per character, XLM-R style special ids."""

    bos, pad, eos, unk, mask = 0, 1, 2, 3, 4
    all_special_ids = [0, 1, 2, 3, 4]
    mask_token_id = 4
    special_tokens_map = {"mask_token": "<mask>"}

    def get_vocab(self):
        return {chr(97 + i): 5 + i for i in range(26)}

    def __len__(self):
        return 31

    def __call__(self, texts, **_):
        return {"input_ids": [[0] + [5 + (ord(c) - 97) % 26 for c in t if c.isalpha()] + [2] for t in texts]}


def test_documents_are_packed_into_full_blocks_with_their_special_tokens():
    blocks = pack_documents(iter(["abc", "d"]), CharTokenizer(), block_size=3)
    assert blocks.tolist() == [[0, 5, 6], [7, 2, 0]]  # [<s> a b] [c </s> <s>]; the remainder is dropped


def test_the_cache_is_keyed_on_content_not_path(tmp_path):
    tok = CharTokenizer()
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("abcdefgh\n" * 10)
    b.write_text("abcdefgh\n" * 10)
    blocks_a = build_blocks([TextSource(str(a))], tok, 4, tmp_path / "cache")
    blocks_b = build_blocks([TextSource(str(b))], tok, 4, tmp_path / "cache")
    assert Path(blocks_a.filename) == Path(blocks_b.filename)  # same content, one cache entry
    a.write_text("zzzzzzzz\n" * 10)  # same path, new content: a new entry, new blocks
    blocks_c = build_blocks([TextSource(str(a))], tok, 4, tmp_path / "cache")
    assert Path(blocks_c.filename) != Path(blocks_a.filename)
    assert blocks_c[0].tolist() == [0, 30, 30, 30]


def test_masking_follows_the_80_10_10_rule_and_never_masks_special_tokens():
    spec = MaskingSpec(mask_id=4, vocab_size=31, special_ids=[0, 1, 2, 3, 4], probability=0.15)
    ids = torch.randint(5, 31, (200_000,))
    ids[::10] = 0
    inputs, labels = mask_blocks(ids.reshape(1000, 200).numpy(), np.arange(1000, dtype=np.uint64), spec)
    inputs, labels = inputs.reshape(-1), labels.reshape(-1)
    chosen = labels != -100
    assert not chosen[::10].any()
    eligible = (ids != 0).sum().item()
    assert abs(chosen.sum().item() / eligible - 0.15) < 0.005
    assert torch.equal(labels[chosen], ids[chosen])
    as_mask = (inputs[chosen] == 4).float().mean().item()
    unchanged = (inputs[chosen] == ids[chosen]).float().mean().item()
    assert abs(as_mask - 0.8) < 0.01
    assert abs(unchanged - (0.1 + 0.1 / 31)) < 0.01  # kept, plus random draws of the same id
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_masks_are_a_function_of_seed_epoch_and_block():
    blocks = np.arange(5, 5 + 64 * 4).reshape(4, 64) % 31 + 5
    spec = MaskingSpec(4, 31, [0, 1, 2, 3, 4])
    one, two = MaskedBlocks(blocks, spec, seed=1), MaskedBlocks(blocks, spec, seed=1)
    assert torch.equal(one[(0, 2)]["input_ids"], two[(0, 2)]["input_ids"])
    assert not torch.equal(one[(0, 2)]["labels"], one[(1, 2)]["labels"])
    assert not torch.equal(one[(0, 2)]["labels"], MaskedBlocks(blocks, spec, seed=2)[(0, 2)]["labels"])


def test_a_block_is_masked_the_same_alone_and_inside_any_batch():
    blocks = np.arange(5, 5 + 64 * 6).reshape(6, 64) % 31 + 5
    data = MaskedBlocks(blocks, MaskingSpec(4, 31, [0, 1, 2, 3, 4]), seed=3)
    batch = data.__getitems__([(1, 4), (0, 2), (1, 0)])
    for row, key in enumerate([(1, 4), (0, 2), (1, 0)]):
        for name in ("input_ids", "labels", "attention_mask"):
            assert torch.equal(batch[name][row], data[key][name])
    assert (batch["labels"] != -100).any()


def test_ranks_get_disjoint_equal_shards_each_epoch():
    shards = [list(itertools.islice(ShardedEpochSampler(10, 0, r, 3), 3)) for r in range(3)]
    indices = [i for shard in shards for _, i in shard]
    assert len(set(indices)) == 9 and all(len(s) == 3 for s in shards)
    assert all(epoch == 0 for shard in shards for epoch, _ in shard)


def test_a_sampler_started_at_n_continues_exactly_where_an_unbroken_one_is():
    unbroken = list(itertools.islice(ShardedEpochSampler(7, 5, 1, 2), 20))
    resumed = list(itertools.islice(ShardedEpochSampler(7, 5, 1, 2, start=8), 12))
    assert resumed == unbroken[8:]
    assert unbroken[0][0] == 0 and unbroken[-1][0] > 0  # it crossed epochs, reshuffling


def test_a_malformed_jsonl_row_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "fine"}\n{"txt": "wrong field"}\n')
    with pytest.raises(MmadaptError, match=r"c.jsonl:2: row has no 'text' field"):
        list(TextSource(str(path)).documents())
    path.write_text('{"text": "fine"}\n{broken\n')
    with pytest.raises(MmadaptError, match=r"c.jsonl:2: not valid JSON"):
        list(TextSource(str(path)).documents())


def test_a_corpus_in_the_wrong_encoding_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("ok line\nna\u00efve caf\u00e9\n".encode("latin-1"))
    with pytest.raises(MmadaptError, match=r"latin1.txt:2: not valid UTF-8"):
        list(TextSource(str(path)).documents())


def test_an_empty_corpus_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n\n")
    with pytest.raises(MmadaptError, match=r"data.train: .*empty.txt holds too little text"):
        build_blocks([TextSource(str(path))], CharTokenizer(), 8, tmp_path / "cache")


def test_a_dataset_saved_to_disk_is_a_source(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["abc", "", "de"]}).save_to_disk(str(tmp_path / "ds"))
    source = TextSource(str(tmp_path / "ds"))
    assert list(source.documents()) == ["abc", "de"]
    assert source.fingerprint().startswith("dataset_dir:")


def test_a_hub_dataset_missing_from_the_local_cache_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(MmadaptError, match="not in the local Hugging Face cache.*save_to_disk"):
        list(TextSource("hf:some_user/no_such_corpus").documents())


def test_a_file_digest_is_read_once_until_the_file_changes(tmp_path, monkeypatch):
    import builtins

    from mmadapt.files.digests import file_digest

    path = tmp_path / "corpus.txt"
    path.write_text("one line\n", encoding="utf-8")
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1])
    first = file_digest(path)
    assert file_digest(path) == first and opened.count(str(path)) == 1
    path.write_text("two lines\nnow\n", encoding="utf-8")
    assert file_digest(path) != first and opened.count(str(path)) == 2
