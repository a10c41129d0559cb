"""Extractive question answering over short generated paragraphs (the SQuAD v1.1 / MLQA task).

A context is a few clauses from the grammar, one per line. A question restates one clause
with one noun phrase replaced by a question word ("who" for animate nouns, "what" for
things), left where the noun phrase stood, so the word-order language asks "the dog what
near sleeps" where the source asks "the dog sleeps near what". It asks for the subject,
the object, or the noun phrase of the prepositional phrase (a modifier of the event); the
answer is that whole noun phrase, modifiers and relative clause included.

Two rules keep every question answerable by exactly one span, in every language:

- no verb occurs twice in a context (main or relative clause), so the verb a question
  restates names one clause;
- the answer's noun, in its number, occurs once in the context, so its words, which hold
  that noun form, occur once (forms are unique, and a language's forms, synonyms included,
  belong to one (lemma, inflection) each).

The corpora carry the same kind of questions (`ask`), so the question words are words of
each language that a tokenizer and embeddings can learn from text, like any other.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Sequence

from mmadapt.synth.grammar import Clause, Grammar, NounPhrase, Sentence
from mmadapt.synth.languages import Language, leaves
from mmadapt.synth.lexicon import WHAT, WHO

TARGETS = ("subj", "obj", "pp")
CONTEXT_CLAUSES = (3, 5)  # inclusive range of clauses per context
QUESTIONS_PER_CONTEXT = (1, 3)
# Contexts are several lines: the corpora hold one sentence per line, so a line break is the
# sentence boundary every language already has (and it adds no shared punctuation word).
SEPARATOR = "\n"
# Chance that a question leaves out the clause's adverb / prepositional phrase (when not asked for).
DROP_MODIFIER = 0.5


@dataclass(frozen=True)
class QaQuestion:
    """A question about clause `clause` of its paragraph, asking for `target`'s noun phrase."""

    clause: int
    target: str
    question: Clause


@dataclass(frozen=True)
class QaParagraph:
    """A context of clauses and the questions asked about it."""

    clauses: tuple[Clause, ...]
    questions: tuple[QaQuestion, ...]


@dataclass(frozen=True)
class RenderedQa:
    """A paragraph in one language: the context and, per question, (question, answer, answer_start)."""

    context: str
    qas: tuple[tuple[str, str, int], ...]


def target_np(clause: Clause, target: str) -> NounPhrase | None:
    """The noun phrase a question about `target` asks for (None if the clause has none there)."""
    if target == "subj":
        return clause.subj
    if target == "obj":
        return clause.obj
    return clause.pp[1] if clause.pp is not None else None


def question_clause(clause: Clause, target: str, wh: str) -> Clause:
    """`clause` with `target`'s noun phrase replaced by the question word `wh` (keeping its number)."""
    np = NounPhrase(wh, plural=target_np(clause, target).plural)
    if target == "subj":
        return replace(clause, subj=np)
    if target == "obj":
        return replace(clause, obj=np)
    return replace(clause, pp=(clause.pp[0], np))


class QaGenerator:
    """Makes paragraphs with questions from a `Grammar`."""

    def __init__(self, grammar: Grammar):
        self.g = grammar
        self.animate = frozenset(grammar.m.animate_nouns)

    def paragraphs(self, rng: random.Random, n_questions: int) -> list[QaParagraph]:
        """Paragraphs holding `n_questions` questions in all."""
        out: list[QaParagraph] = []
        left = n_questions
        while left > 0:
            paragraph = self.paragraph(rng, min(left, rng.randint(*QUESTIONS_PER_CONTEXT)))
            out.append(paragraph)
            left -= len(paragraph.questions)
        return out

    def paragraph(self, rng: random.Random, n_questions: int) -> QaParagraph:
        """A context with up to `n_questions` questions on different (clause, target) pairs."""
        while True:
            clauses = self._context(rng)
            nouns = [key for c in clauses for key in _noun_keys(c)]
            answerable = [(i, t) for i, c in enumerate(clauses) for t in TARGETS
                          if (np := target_np(c, t)) is not None and nouns.count((np.noun, np.plural)) == 1]
            if answerable:
                break
        picked = rng.sample(answerable, min(n_questions, len(answerable)))
        return QaParagraph(clauses, tuple(QaQuestion(i, t, self.question(rng, clauses[i], t)) for i, t in picked))

    def question(self, rng: random.Random, clause: Clause, target: str) -> Clause:
        """The question asking for `target` of `clause`, maybe without its other modifiers."""
        wh = WHO if target_np(clause, target).noun in self.animate else WHAT
        q = question_clause(clause, target, wh)
        if q.adv is not None and rng.random() < DROP_MODIFIER:
            q = replace(q, adv=None)
        if target != "pp" and q.pp is not None and rng.random() < DROP_MODIFIER:
            q = replace(q, pp=None)
        return q

    def ask(self, rng: random.Random) -> Sentence:
        """A random question, as the corpora hold them."""
        clause = self.g.clause(rng)
        target = rng.choice([t for t in TARGETS if target_np(clause, t) is not None])
        return Sentence((self.question(rng, clause, target),))

    def _context(self, rng: random.Random) -> tuple[Clause, ...]:
        clauses: list[Clause] = []
        used: set[str] = set()
        size = rng.randint(*CONTEXT_CLAUSES)
        while len(clauses) < size:
            clause = self.g.clause(rng)
            verbs = _verbs(clause)
            if verbs & used or len(verbs) < len(_verb_list(clause)):
                continue
            used |= verbs
            clauses.append(clause)
        return tuple(clauses)


def render_paragraph(language: Language, paragraph: QaParagraph) -> RenderedQa:
    """The paragraph in `language`; each answer_start indexes its answer in the context exactly."""
    # Answers are found among the clauses' first forms (`answer_words`), then read off the text as written,
    # which may hold synonyms: both are the same length, word for word.
    firsts = [leaves(language.sentence_node(Sentence((c,)))) for c in paragraph.clauses]
    sentences = [language.surface(words) for words in firsts]
    starts = [0]
    for words in sentences:
        starts.append(starts[-1] + len(" ".join(words)) + len(SEPARATOR))
    context = SEPARATOR.join(" ".join(words) for words in sentences)
    qas = []
    for q in paragraph.questions:
        clause = paragraph.clauses[q.clause]
        answer = answer_words(language, clause, q.target)
        first, words = firsts[q.clause], sentences[q.clause]
        hits = [j for j in range(len(first) - len(answer) + 1) if first[j:j + len(answer)] == answer]
        if len(hits) != 1:  # guarded by the noun-uniqueness rule; a failure here is a generator bug
            raise AssertionError(f"answer {answer} found {len(hits)} times in {first}")
        start = starts[q.clause] + len(" ".join(words[:hits[0]])) + (1 if hits[0] else 0)
        qas.append((language.text(Sentence((q.question,))), " ".join(words[hits[0]:hits[0] + len(answer)]), start))
    return RenderedQa(context, tuple(qas))


def answer_words(language: Language, clause: Clause, target: str) -> list[str]:
    """The words of the answer noun phrase, rendered as inside the clause (first forms: synonyms unpicked)."""
    np = target_np(clause, target)
    # Subjects and objects carry the clause's tense into their relative clause; PP objects have none.
    node = language.np_node(np) if target == "pp" else language.np_node(np, past=clause.past)
    return leaves(node)


def _noun_phrases(clause: Clause) -> list[NounPhrase]:
    """Every noun phrase of the clause, those inside relative clauses (nested ones too) included."""
    found: list[NounPhrase] = []
    todo: list[NounPhrase | None] = [clause.subj, clause.obj, clause.pp[1] if clause.pp else None]
    while todo:
        np = todo.pop(0)
        if np is None:
            continue
        found.append(np)
        if np.rel is not None:
            todo.append(np.rel.obj)
    return found


def _noun_keys(clause: Clause) -> list[tuple[str, bool]]:
    return [(np.noun, np.plural) for np in _noun_phrases(clause)]


def _verb_list(clause: Clause) -> Sequence[str]:
    """The main verb, then every relative clause's (the clausal family puts them on objects and nests them)."""
    return [clause.verb] + [np.rel.verb for np in _noun_phrases(clause) if np.rel is not None]


def _verbs(clause: Clause) -> set[str]:
    return set(_verb_list(clause))
