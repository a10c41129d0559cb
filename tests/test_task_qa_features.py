"""Extractive QA features: answer offsets, long contexts in strided spans, picking the answer from logits."""
from __future__ import annotations

import numpy as np
import pytest

from mmadapt.errors import MmadaptError
from mmadapt_plugins.tasks.extractive_qa import answer_token_span, best_answers, encode_spans, read_squad_json
from task_helpers import MLQA_DIR, SQUAD_DIR, tiny_tokenizer

FILLER = "The old town has narrow streets and a small market near the river. "
ANSWER = "the stone bridge of Saint Martin"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("task_tokenizer"))


@pytest.fixture(scope="module")
def long_example():
    context = FILLER * 6 + f"Travellers cross {ANSWER} to reach it. " + FILLER * 2
    return {"id": "long", "title": "", "context": context, "question": "What do travellers cross?",
            "answers": [{"text": ANSWER, "answer_start": context.index(ANSWER)}]}


def answer_text(example, offsets, start, end):
    return example["context"][offsets[start][0]:offsets[end][1]]


def test_the_tokenizer_gives_offsets_for_every_context_token(tokenizer):
    assert tokenizer.is_fast


@pytest.mark.parametrize("path", [SQUAD_DIR / "train-v1.1.json", MLQA_DIR / "test" / "test-context-de-question-de.json",
                                  MLQA_DIR / "test" / "test-context-zh-question-zh.json"])
def test_answer_positions_map_back_to_exactly_the_answer_text(tokenizer, path):
    examples = read_squad_json(path)
    spans = encode_spans(examples, tokenizer, max_length=128, doc_stride=32, max_query_length=32, with_answers=True)
    assert spans.example_index == list(range(len(examples)))  # short contexts: one span each
    for i, (start, end) in enumerate(spans.positions):
        assert 0 < start <= end
        assert answer_text(examples[i], spans.offsets[i], start, end) == examples[i]["answers"][0]["text"]
    assert all(t["input_ids"].shape == (128,) and t["attention_mask"].shape == (128,) for t in spans.tensors)


def test_a_long_context_is_split_into_overlapping_spans(tokenizer, long_example):
    spans = encode_spans([long_example], tokenizer, max_length=64, doc_stride=16, max_query_length=16,
                         with_answers=True)
    assert len(spans.tensors) >= 4 and set(spans.example_index) == {0}
    windows = [[o for o in offsets if o is not None] for offsets in spans.offsets]
    for before, after in zip(windows, windows[1:]):
        assert before[-16:] == after[:16]  # consecutive windows share doc_stride context tokens
    assert windows[0][0][0] == 0 and windows[-1][-1][1] == len(long_example["context"].rstrip())
    holding = [i for i, (s, e) in enumerate(spans.positions) if (s, e) != (0, 0)]
    assert holding  # the answer lies wholly inside at least one span ...
    for i in holding:
        assert answer_text(long_example, spans.offsets[i], *spans.positions[i]) == ANSWER
    for i in set(range(len(spans.tensors))) - set(holding):  # ... and every other span points at <s>
        lo, hi = windows[i][0][0], windows[i][-1][1]
        start = long_example["answers"][0]["answer_start"]
        assert not (lo <= start and start + len(ANSWER) <= hi)


def test_the_prediction_is_the_best_valid_span_over_all_spans(tokenizer, long_example):
    spans = encode_spans([long_example], tokenizer, max_length=64, doc_stride=16, max_query_length=16,
                         with_answers=True)
    starts = np.full((len(spans.tensors), 64), -100.0)
    ends = np.full((len(spans.tensors), 64), -100.0)
    right = next(i for i, p in enumerate(spans.positions) if p != (0, 0))
    s, e = spans.positions[right]
    starts[right, s], ends[right, e] = 5.0, 5.0  # the answer: score 10
    other = (right + 1) % len(spans.tensors)
    starts[other, 1], ends[other, 2] = 50.0, 50.0  # question tokens: not in the context
    context_tokens = [i for i, o in enumerate(spans.offsets[other]) if o is not None]
    starts[other, context_tokens[5]], ends[other, context_tokens[2]] = 40.0, 40.0  # end before start
    starts[other, 0], ends[other, 0] = 60.0, 60.0  # <s>: no answer is not an option in SQuAD v1.1
    assert best_answers([long_example], spans, starts, ends) == {"long": ANSWER}
    # a longer span with a higher score loses to max_answer_length
    first, last = context_tokens[0], context_tokens[-1]
    starts[other], ends[other] = -100.0, -100.0
    starts[other, first], ends[other, last] = 8.0, 8.0  # score 16 > 10
    assert last - first + 1 > 30
    assert best_answers([long_example], spans, starts, ends, max_answer_length=30) == {"long": ANSWER}
    wide = best_answers([long_example], spans, starts, ends, max_answer_length=64)["long"]
    assert wide == long_example["context"][spans.offsets[other][first][0]:spans.offsets[other][last][1]]


def test_an_example_with_no_valid_span_gets_an_empty_answer(tokenizer):
    example = {"id": "q", "context": "Mars is red.", "question": "What colour is Mars?",
               "answers": [{"text": "red", "answer_start": 8}]}
    spans = encode_spans([example], tokenizer, max_length=64, doc_stride=8, max_query_length=16)
    starts = np.zeros((1, 64))
    ends = np.zeros((1, 64))
    assert best_answers([example], spans, starts, ends, max_answer_length=0) == {"q": ""}


def test_answer_token_span_is_cls_when_the_answer_is_cut():
    offsets = [None, None, (0, 3), (4, 6), (7, 10), None]
    assert answer_token_span(offsets, 4, 10) == (3, 4)
    assert answer_token_span(offsets, 8, 14) == (0, 0)  # ends after the window
    assert answer_token_span([None, None], 0, 1) == (0, 0)


def test_a_window_too_small_for_the_stride_is_a_clear_error(tokenizer, long_example):
    with pytest.raises(MmadaptError, match="must exceed doc_stride 32: raise max_length"):
        encode_spans([long_example], tokenizer, max_length=48, doc_stride=32, max_query_length=16)


def test_long_questions_are_cut_to_max_query_length(tokenizer, long_example):
    example = dict(long_example, question="What do travellers cross " * 20)
    spans = encode_spans([example], tokenizer, max_length=64, doc_stride=16, max_query_length=16)
    question_tokens = [i for i, o in enumerate(spans.offsets[0]) if o is None and i > 0]
    first_context = next(i for i, o in enumerate(spans.offsets[0]) if o is not None)
    assert first_context <= 16 + 3  # <s> + at most 16 question tokens + </s></s>
    assert question_tokens


def test_a_tokenizer_without_offsets_is_refused():
    class SlowTokenizer:
        is_fast = False

    with pytest.raises(MmadaptError, match="only fast .* tokenizers give, and SlowTokenizer is not one"):
        encode_spans([], SlowTokenizer(), max_length=384, doc_stride=128)
