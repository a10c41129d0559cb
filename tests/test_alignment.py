"""The alignment diagnostic: `alignment_at_1` of new-language embeddings against their translations'."""
from __future__ import annotations

import pytest
import torch

from mmadapt.errors import MmadaptError
from mmadapt.pipeline.diagnostics.alignment import alignment_at_1, read_dictionary, token_pairs


class WordTokenizer:
    """A whitespace word-level tokenizer: enough of the transformers interface for the diagnostic."""

    unk_token_id = 3

    def __init__(self, words):
        self.vocab = {w: i + 4 for i, w in enumerate(words)}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab.get(w, self.unk_token_id) for w in text.split()]}


def test_an_oracle_permuting_source_rows_through_the_dictionary_scores_one():
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(40, 16, generator=generator)
    permutation = torch.randperm(40, generator=generator)
    oracle = source[permutation]  # new row i is source row permutation[i]
    pairs = [(i, int(permutation[i])) for i in range(40)]
    assert alignment_at_1(oracle, source, pairs) == 1.0
    # random embeddings find their translation about as often as chance
    assert alignment_at_1(torch.randn(40, 16, generator=generator), source, pairs) <= 0.2


def test_alignment_counts_the_share_of_pairs_whose_nearest_source_row_is_the_translation():
    source = torch.eye(4)
    new = torch.tensor([[1.0, 0.1, 0, 0], [0.9, 0.2, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 0.5]])
    # rows 0, 2 and 3 are nearest their gold rows; row 1 is nearest source row 0, not 1
    assert alignment_at_1(new, source, [(0, 0), (1, 1), (2, 2), (3, 3)]) == 0.75
    assert alignment_at_1(new, source, []) is None


def test_only_dictionary_pairs_whose_words_are_single_known_tokens_are_counted():
    source, target = WordTokenizer(["dog", "cat", "sun"]), WordTokenizer(["kal", "mor"])
    pairs = [("dog", "kal"), ("cat", "mor"), ("sun", "unknown"), ("moon", "kal"), ("cat", "mor")]
    assert token_pairs(pairs, source, target) == [(4, 4), (5, 5)]


def test_a_dictionary_is_read_in_the_muse_layout_and_a_bad_line_is_named(tmp_path):
    good = tmp_path / "src-vo.txt"
    good.write_text("dog kal\ncat mor\n\n", encoding="utf-8")
    assert read_dictionary(good) == [("dog", "kal"), ("cat", "mor")]
    bad = tmp_path / "bad.txt"
    bad.write_text("dog kal\ncat\n", encoding="utf-8")
    with pytest.raises(MmadaptError, match=r"bad.txt:2: expected 'source_word target_word'"):
        read_dictionary(bad)
