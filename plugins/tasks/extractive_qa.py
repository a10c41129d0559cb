"""Extractive span QA (SQuAD v1.1, MLQA): SQuAD-layout JSON, span features with a stride, n-best decoding.

Examples are ``{"id", "title", "context", "question", "answers": [{"text", "answer_start"}]}``
as in the SQuAD JSON (``answer_start`` is a character offset into ``context``).

A long context is cut into several spans of at most `max_length` tokens (question first,
then a window of the context), consecutive windows overlapping by `doc_stride` tokens
(`truncation="only_second"`, `return_overflowing_tokens`). For training, each span's
`start_positions`/`end_positions` are the tokens holding the answer's first and last
characters, or 0 (the `<s>`/CLS token) when the answer is not wholly inside the span. For
prediction, every span of an example is scored and the best valid (start, end) pair among
the `n_best_size` highest start and end logits wins (inside the context, end >= start, at
most `max_answer_length` tokens); the answer is the context text between the two tokens'
character offsets, "" if no pair is valid. Offsets need a fast (tokenizers-backed) tokenizer.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from mmadapt.api import DataError, MmadaptError, Task

from mmadapt_plugins.tasks.heads import batches, load_task_model, to_device
from mmadapt_plugins.tasks.qa_metrics import AnswerRules, qa_scores
from mmadapt_plugins.tasks.sources import read_json, require_path, warn_unmatched

logger = logging.getLogger(__name__)

_ENCODE_CHUNK = 256
Offset = Optional[tuple[int, int]]


@dataclass
class SpanFeatures:
    """The token spans of a list of examples, in order."""

    #: per span: `input_ids`, `attention_mask` (and `token_type_ids` if the tokenizer makes them), [max_length]
    tensors: list[dict] = field(default_factory=list)
    #: per span: the index of its example
    example_index: list[int] = field(default_factory=list)
    #: per span and token: the token's (start, end) characters in the context; None outside the context
    offsets: list[list[Offset]] = field(default_factory=list)
    #: per span: the answer's first and last token, (0, 0) when it is not inside the span
    positions: list[tuple[int, int]] = field(default_factory=list)


def check_offsets_tokenizer(tokenizer: Any) -> None:
    """QA maps tokens back to characters; only fast tokenizers give offsets."""
    if not getattr(tokenizer, "is_fast", False):
        raise MmadaptError(
            f"extractive QA needs character offsets for tokens, which only fast (tokenizers-backed) tokenizers "
            f"give, and {type(tokenizer).__name__} is not one; save the tokenizer with a tokenizer.json "
            "(AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained(DIR)) and use that directory")


def answer_token_span(offsets: Sequence[Offset], start_char: int, end_char: int) -> tuple[int, int]:
    """The first and last token covering characters [start_char, end_char) of the context, or (0, 0)."""
    context = [i for i, o in enumerate(offsets) if o is not None]
    if not context:
        return 0, 0
    first, last = context[0], context[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return 0, 0  # not (wholly) inside this span: point at <s>, as in SQuAD fine-tuning
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def _cut_questions(questions: list[str], tokenizer: Any, max_query_length: int) -> list[str]:
    """Questions longer than `max_query_length` tokens cut after that many (as XTREME's MLQA setup)."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for question, offsets in zip(questions, enc["offset_mapping"]):
        out.append(question[:offsets[max_query_length - 1][1]] if len(offsets) > max_query_length else question)
    return out


def encode_spans(examples: Sequence[dict], tokenizer: Any, max_length: int, doc_stride: int,
                 max_query_length: int = 64, with_answers: bool = False) -> SpanFeatures:
    """Tokenise (question, context) pairs into overlapping fixed-length spans (see the module docstring)."""
    import torch

    check_offsets_tokenizer(tokenizer)
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    if max_length - max_query_length - specials <= doc_stride:
        raise MmadaptError(
            f"max_length {max_length} leaves {max_length - max_query_length - specials} context tokens per span "
            f"after a question of up to max_query_length {max_query_length} tokens and {specials} special tokens; "
            f"that must exceed doc_stride {doc_stride}: raise max_length or lower doc_stride / max_query_length")
    out = SpanFeatures()
    for begin in range(0, len(examples), _ENCODE_CHUNK):
        chunk = examples[begin:begin + _ENCODE_CHUNK]
        questions = _cut_questions([ex["question"].lstrip() for ex in chunk], tokenizer, max_query_length)
        enc = tokenizer(questions, [ex["context"] for ex in chunk], truncation="only_second", max_length=max_length,
                        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                        padding="max_length")
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        for i, sample in enumerate(enc["overflow_to_sample_mapping"]):
            offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], enc.sequence_ids(i))]
            out.tensors.append({k: torch.tensor(enc[k][i], dtype=torch.long) for k in keys})
            out.example_index.append(begin + sample)
            out.offsets.append(offsets)
            if with_answers:
                answer = chunk[sample]["answers"][0]
                start = answer["answer_start"]
                out.positions.append(answer_token_span(offsets, start, start + len(answer["text"])))
    return out


def best_answers(examples: Sequence[dict], spans: SpanFeatures, start_logits: Any, end_logits: Any,
                 n_best_size: int = 20, max_answer_length: int = 30) -> dict[str, str]:
    """{id: answer text}: the best valid span over all of an example's spans (module docstring)."""
    import numpy as np

    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    by_example: dict[int, list[int]] = {}
    for span, example in enumerate(spans.example_index):
        by_example.setdefault(example, []).append(span)
    answers = {}
    for index, example in enumerate(examples):
        best_score, best_text = -np.inf, ""
        for span in by_example.get(index, []):
            offsets = spans.offsets[span]
            starts = np.argsort(start_logits[span])[::-1][:n_best_size]
            ends = np.argsort(end_logits[span])[::-1][:n_best_size]
            for s in starts:
                for e in ends:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = start_logits[span][s] + end_logits[span][e]
                    if score > best_score:
                        best_score, best_text = score, example["context"][offsets[s][0]:offsets[e][1]]
        answers[example["id"]] = best_text
    return answers


class ExtractiveQATask(Task):
    """The parts SQuAD and MLQA share; a subclass gives the answer rules and finds the files."""

    metric_names = ("f1", "exact_match")
    predictions_suffix = "json"  # SQuAD's and MLQA's evaluation scripts read one JSON object
    official_scale = 100.0
    sequence_length_option = "max_length"

    def rules(self, language: str) -> AnswerRules:
        """The answer-normalisation rules of this benchmark for `language`."""
        raise NotImplementedError

    # -- model and features ---------------------------------------------------------------

    def build_model(self, family: Any, pretrained_dir: str) -> Any:
        """`AutoModelForQuestionAnswering` (start/end logits per token) on the MLM's body."""
        return load_task_model("AutoModelForQuestionAnswering", family, pretrained_dir)

    def train_features(self, examples: list[dict], tokenizer: Any, options: Any) -> list[dict]:
        """Per span: `input_ids`, `attention_mask` (LongTensor [max_length]), `start_positions`,
        `end_positions` (LongTensor []); an example gives one or more spans."""
        import torch

        spans = self._encode(examples, tokenizer, options, with_answers=True)
        for tensors, (start, end) in zip(spans.tensors, spans.positions):
            tensors["start_positions"] = torch.tensor(start, dtype=torch.long)
            tensors["end_positions"] = torch.tensor(end, dtype=torch.long)
        return spans.tensors

    def predict(self, model: Any, examples: list[dict], tokenizer: Any, options: Any, device: Any) -> dict[str, str]:
        """{question id: answer text}, the official SQuAD/MLQA predictions layout."""
        import torch

        spans = self._encode(examples, tokenizer, options, with_answers=False)
        was_training = model.training
        model.eval()
        starts, ends = [], []
        try:
            with torch.no_grad():
                for batch in batches(spans.tensors, options.eval_batch_size):
                    output = model(**to_device(batch, device))
                    starts.append(output.start_logits.float().cpu())
                    ends.append(output.end_logits.float().cpu())
        finally:
            model.train(was_training)
        if not starts:
            return {}
        return best_answers(examples, spans, torch.cat(starts).numpy(), torch.cat(ends).numpy(),
                            options.n_best_size, options.max_answer_length)

    def _encode(self, examples: list[dict], tokenizer: Any, options: Any, with_answers: bool) -> SpanFeatures:
        return encode_spans(examples, tokenizer, options.max_length, options.doc_stride,
                            options.max_query_length, with_answers=with_answers)

    # -- metric and files ----------------------------------------------------------------------

    def score(self, examples: list[dict], predictions: dict[str, Any], language: str) -> dict[str, float]:
        """{"exact_match", "f1"} as fractions: max over gold answers, unanswered questions score 0."""
        rules = self.rules(language)
        golds = {ex["id"]: [a["text"] for a in ex["answers"]] for ex in examples}
        warn_unmatched(predictions, golds)
        return qa_scores(golds, predictions, rules)

    def read_gold(self, path: Path, language: str) -> list[dict]:
        """Every question of a SQuAD-layout JSON file (SQuAD v1.1, MLQA)."""
        return read_squad_json(require_path(path, "gold file"))

    def read_predictions(self, path: Path) -> dict[str, str]:
        """The official layout: one JSON object ``{"question id": "answer text", ...}``."""
        path = require_path(path, "predictions file")
        data = read_json(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object mapping question ids to answer text, "
                            f"got {type(data).__name__}")
        for key, value in data.items():
            if not isinstance(value, str):
                raise DataError(f"{path}: the prediction for question {key!r} is {type(value).__name__} "
                                f"{value!r}, not answer text")
        return data

    def write_predictions(self, predictions: dict[str, Any], path: Path) -> None:
        """One JSON object ``{"question id": "answer text"}`` (UTF-8, not ASCII-escaped)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(predictions, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def read_squad_json(path: Path) -> list[dict]:
    """Every question of a SQuAD v1.1 / MLQA JSON file, checked (see `check_answers`)."""
    data = read_json(path)
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise DataError(f'{path}: expected SQuAD layout {{"version": ..., "data": [articles]}}')
    examples = []
    for a, article in enumerate(articles):
        title = article.get("title", "") if isinstance(article, dict) else ""
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}: article {a} ({title!r}) has no list of paragraphs")
        for p, paragraph in enumerate(paragraphs):
            where = f"{path}: article {a} ({title!r}), paragraph {p}"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str) \
                    or not isinstance(paragraph.get("qas"), list):
                raise DataError(f"{where}: expected a paragraph with 'context' (text) and 'qas' (a list)")
            for q, qa in enumerate(paragraph["qas"]):
                qid = qa.get("id") if isinstance(qa, dict) else None
                at = f"{where}, question {qid!r}" if qid is not None else f"{where}, question {q}"
                missing = [k for k in ("id", "question", "answers") if not isinstance(qa, dict) or k not in qa]
                if missing:
                    raise DataError(f"{at}: missing field(s) {', '.join(missing)}")
                examples.append(qa_example(str(qid), title, paragraph["context"], qa["question"], qa["answers"], at))
    return examples


def qa_example(qid: str, title: str, context: str, question: str, answers: Any, where: str) -> dict:
    """One checked example (used for both JSON files and `datasets` rows)."""
    if not isinstance(answers, list) or not answers:
        raise DataError(f"{where}: no gold answers (SQuAD 2.0-style unanswerable questions are not supported)")
    checked = []
    for answer in answers:
        if not isinstance(answer, dict) or "text" not in answer or "answer_start" not in answer:
            raise DataError(f"{where}: an answer must have 'text' and 'answer_start', got {answer!r}")
        text, start = answer["text"], answer["answer_start"]
        if not isinstance(text, str) or not isinstance(start, int) or isinstance(start, bool):
            raise DataError(f"{where}: answer text must be a string and answer_start an integer, got {answer!r}")
        if start < 0 or start + len(text) > len(context):
            raise DataError(f"{where}: answer {text!r} at answer_start {start} ends at {start + len(text)}, "
                            f"outside the context ({len(context)} characters)")
        if context[start:start + len(text)] != text:
            logger.warning("%s: answer %r does not match the context at answer_start %d (%r)", where, text, start,
                           context[start:start + len(text)])
        checked.append({"text": text, "answer_start": start})
    return {"id": qid, "title": title, "context": context, "question": question, "answers": checked}


def dataset_qa_examples(dataset: Any, source: str) -> list[dict]:
    """Examples from a `datasets` table in the `squad` layout (answers: {text: [...], answer_start: [...]})."""
    needed = ("id", "context", "question", "answers")
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} (has {', '.join(dataset.column_names)})")
    examples = []
    for i, row in enumerate(dataset):
        answers = row["answers"] or {}
        texts, starts = list(answers.get("text", [])), list(answers.get("answer_start", []))
        if len(texts) != len(starts):
            raise DataError(f"{source} row {i} (id {row['id']!r}): {len(texts)} answer texts but "
                            f"{len(starts)} answer_start values")
        pairs = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
        examples.append(qa_example(str(row["id"]), row.get("title", ""), row["context"], row["question"], pairs,
                                   f"{source} row {i} (id {row['id']!r})"))
    return examples
