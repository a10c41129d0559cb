"""Exact match and F1 for extractive QA, as the official SQuAD v1.1 and MLQA scripts compute them.

Both scripts normalise an answer by: lowercase, drop punctuation, drop articles, split into
tokens, re-join with single spaces; EM compares the normalised strings, F1 is the token
overlap F1 (multiset intersection) and is 0 when nothing overlaps; a question scores the
maximum over its gold answers, and a question with no prediction scores 0.

They differ in the rules (`AnswerRules`):

- SQuAD v1.1 (`evaluate-v1.1.py`): ASCII punctuation (`string.punctuation`), English
  articles, whitespace tokens.
- MLQA (`mlqa_evaluation_v1.py`): punctuation is `string.punctuation` plus every Unicode
  character whose category starts with "P"; articles per answer language; whitespace
  tokens except for Chinese, which uses "mixed segmentation" (each character in
  U+4E00..U+9FA5 and each punctuation character is a token of its own, the runs in between
  are split on whitespace). MLQA defines rules for ar, de, en, es, hi, vi and zh only.
"""
from __future__ import annotations

import logging
import re
import string
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Mapping, Optional, Sequence

from mmadapt.api import MmadaptError

log = logging.getLogger(__name__)

#: MLQA's article patterns, copied from the official script. Arabic's '\sال^' can never match
#: ('^' after text without MULTILINE), so in effect every 'ال' is removed, inside words too;
#: we keep it as the script has it so scores agree.
MLQA_ARTICLES: dict[str, Optional[str]] = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "hi": None,  # Hindi has no formal articles
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": "\\sال^|ال",
    "zh": None,  # Chinese has no formal articles
}
MLQA_MIXED_SEGMENTATION = frozenset({"zh"})
_CJK = re.compile("[\u4e00-\u9fa5]")  # the script's range, narrower than the whole CJK block


@dataclass(frozen=True)
class AnswerRules:
    """How answers are normalised before comparison."""

    name: str
    punctuation: frozenset
    articles: Optional[re.Pattern]
    mixed_segmentation: bool = False


@lru_cache(maxsize=None)
def unicode_punctuation() -> frozenset:
    """`string.punctuation` plus every character whose Unicode category starts with "P"."""
    # range(sys.maxunicode), not maxunicode + 1, as the script; U+10FFFF is unassigned anyway.
    chars = {chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")}
    return frozenset(chars.union(string.punctuation))


@lru_cache(maxsize=None)
def mlqa_rules(language: str) -> AnswerRules:
    """MLQA's rules for answers in `language` (ar, de, en, es, hi, vi, zh).

    Any other language (a new language you adapted to, the synthetic ones) is scored with
    MLQA's language-neutral steps only: Unicode punctuation and whitespace, no articles. A
    warning says so, since a language with articles would then score lower than MLQA would.
    """
    if language not in MLQA_ARTICLES:
        log.warning("MLQA's evaluation defines answer normalisation only for %s, not %r: scoring %r with "
                    "punctuation and whitespace normalisation and no article removal",
                    ", ".join(sorted(MLQA_ARTICLES)), language, language)
        return AnswerRules(f"mlqa-neutral-{language}", unicode_punctuation(), None, False)
    pattern = MLQA_ARTICLES[language]
    return AnswerRules(f"mlqa-{language}", unicode_punctuation(), re.compile(pattern) if pattern else None,
                       language in MLQA_MIXED_SEGMENTATION)


SQUAD_RULES = AnswerRules("squad-v1.1", frozenset(string.punctuation), re.compile(r"\b(a|an|the)\b"))


def mixed_segmentation(text: str, punctuation: frozenset) -> list[str]:
    """MLQA's Chinese tokenisation: CJK characters and punctuation alone, other runs split on spaces."""
    tokens: list[str] = []
    run = ""
    for char in text:
        if _CJK.search(char) or char in punctuation:
            tokens.extend(run.split())
            run = ""
            tokens.append(char)
        else:
            run += char
    tokens.extend(run.split())
    return tokens


def normalize_answer(text: str, rules: AnswerRules) -> str:
    """Lowercase, drop punctuation, drop articles, then tokens joined by single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in rules.punctuation)
    if rules.articles is not None:
        text = rules.articles.sub(" ", text)
    tokens = mixed_segmentation(text, rules.punctuation) if rules.mixed_segmentation else text.split()
    return " ".join(t for t in tokens if t.strip() != "")


def exact_match(prediction: str, gold: str, rules: AnswerRules) -> float:
    """1.0 if the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction, rules) == normalize_answer(gold, rules))


def f1_score(prediction: str, gold: str, rules: AnswerRules) -> float:
    """Token-overlap F1 of the normalised answers (0 when no token is shared)."""
    pred_tokens = normalize_answer(prediction, rules).split()
    gold_tokens = normalize_answer(gold, rules).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric, prediction: str, golds: Iterable[str], rules: AnswerRules) -> float:
    """The metric against the closest gold answer."""
    return max(metric(prediction, gold, rules) for gold in golds)


def qa_scores(golds: Mapping[str, Sequence[str]], predictions: Mapping[str, str], rules: AnswerRules) -> dict[str, float]:
    """{"exact_match", "f1"} as fractions over every gold question; an unanswered one scores 0."""
    if not golds:
        raise MmadaptError("no gold questions to score")
    em = f1 = 0.0
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        prediction = predictions[qid]
        em += best_over_golds(exact_match, prediction, answers, rules)
        f1 += best_over_golds(f1_score, prediction, answers, rules)
    return {"exact_match": em / len(golds), "f1": f1 / len(golds)}
