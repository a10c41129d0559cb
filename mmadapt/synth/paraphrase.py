"""Paraphrase pairs in the manner of PAWS ("paraphrase adversaries from word scrambling").

The two sentences of a pair always hold the same words (the same multiset of word forms,
so in every language; a language with synonyms picks them from that multiset, so the same
ones in both), and only structure tells a paraphrase (1) from a non-paraphrase (0).
Sentences come in two frames, each with both labels:

- "and": two simple clauses joined by "and". Paraphrase: the conjuncts swapped. Not a
  paraphrase: the two clauses' subjects, objects, verbs, adverbs, prepositional phrases
  or negation exchanged, subject and object exchanged inside a clause, or an adjective
  moved to another noun; each also with the conjuncts swapped.
- relative: "the dog that sees the ball chases a cat". Paraphrase: the relative clause
  and the main predicate exchanged, "the dog that chases a cat sees the ball" (both say
  the dog sees the ball and chases a cat). Not a paraphrase: the two objects or the two
  verbs exchanged, the head noun exchanged with an object, or an adjective moved; each
  also with the predicates exchanged.

Sentences hold at most `MAX_SENTENCE_WORDS` words, so a pair with the model's four special
tokens fits a 32-token input whole: a truncated pair can lose the very words that decide
its label.

Labels are decided by meaning, not by the edit's name: a pair is a paraphrase when both
sentences state the same set of facts (`facts`), and every candidate is checked. The first
sentence is sampled before the label is drawn, keeping only sentences that admit edits of
both labels, so neither sentence's words say anything about the label.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

from mmadapt.synth.grammar import Clause, Grammar, NounPhrase, RelativeClause, Sentence
from mmadapt.synth.languages import Language
from mmadapt.synth.lexicon import AND

PARAPHRASE, NOT_PARAPHRASE = 1, 0
LABELS = (NOT_PARAPHRASE, PARAPHRASE)
FRAMES = ("and", "relative")
#: longest first sentence (in the source language; every language renders a meaning with the same
#: number of words); a pair plus <s> A </s></s> B </s> then fits 32 tokens
MAX_SENTENCE_WORDS = 14


@dataclass(frozen=True)
class ParaphrasePair:
    """Two sentences, the gold label (1: paraphrase) and the frame they come from."""

    sentence1: Sentence
    sentence2: Sentence
    label: int
    frame: str


Fact = tuple


def facts(sentence: Sentence) -> frozenset[Fact]:
    """What a sentence of "and"-joined clauses states: one fact per main and relative clause."""
    out = set()
    for c in sentence.clauses:
        pp = (c.pp[0], _core(c.pp[1])) if c.pp is not None else None
        out.add((_core(c.subj), c.verb, _core(c.obj), c.neg, c.past, c.adv, pp))
        if c.subj.rel is not None:
            out.add((_core(c.subj), c.subj.rel.verb, _core(c.subj.rel.obj), False, c.past, None, None))
    return frozenset(out)


def _core(np: NounPhrase | None) -> tuple | None:
    # A noun phrase without its relative clause: the relative clause is a fact of its own.
    return None if np is None else (np.noun, np.plural, np.definite, np.adj)


class ParaphraseGenerator:
    """Makes label-balanced PAWS-style pairs from a `Grammar`; `words` renders a sentence's word forms."""

    def __init__(self, grammar: Grammar, words: Callable[[Sentence], list[str]], frames: Sequence[str] = FRAMES):
        unknown = [f for f in frames if f not in FRAMES]
        if unknown or not frames:
            raise ValueError(f"paraphrase frames must be a non-empty selection of {', '.join(FRAMES)}; got {list(frames)}")
        self.g = grammar
        self.m = grammar.m
        self.words = words
        self.frames = tuple(frames)
        self.animate = frozenset(grammar.m.animate_nouns)

    def pairs(self, rng: random.Random, n: int) -> list[ParaphrasePair]:
        """`n` pairs, labels and frames as balanced as `n` allows, in random order."""
        plan = [(LABELS[i % 2], self.frames[(i // 2) % len(self.frames)]) for i in range(n)]
        rng.shuffle(plan)
        return [self.pair(rng, label, frame) for label, frame in plan]

    def pair(self, rng: random.Random, label: int, frame: str) -> ParaphrasePair:
        """One pair of `frame` with gold label `label`."""
        while True:
            first = self._and_frame(rng) if frame == "and" else self._relative_frame(rng)
            if len(self.words(first)) > MAX_SENTENCE_WORDS:
                continue
            by_label = self.candidates(first)
            if all(by_label[lab] for lab in LABELS):
                return ParaphrasePair(first, rng.choice(by_label[label]), label, frame)

    def candidates(self, first: Sentence) -> dict[int, list[Sentence]]:
        """Every well-formed edit of `first` with the same words, sorted by label (fixed order)."""
        groups = self._and_edits(first) if first.conj == AND else self._relative_edits(first.clauses[0])
        bag = Counter(self.words(first))
        meaning = facts(first)
        out: dict[int, list[Sentence]] = {lab: [] for lab in LABELS}
        seen = {first}
        # A group's sentences differ only by the paraphrase move (conjunct or predicate swap),
        # which keeps words, facts and well-formedness, so checking the first one decides them all.
        for group in groups:
            head = group[0]
            if not all(self._well_formed(c) for c in head.clauses) or Counter(self.words(head)) != bag:
                continue
            label = PARAPHRASE if facts(head) == meaning else NOT_PARAPHRASE
            for second in group:
                if second not in seen:
                    seen.add(second)
                    out[label].append(second)
        return out

    # Frames.

    def _and_frame(self, rng: random.Random) -> Sentence:
        return Sentence((self.g.clause(rng, simple=True), self.g.clause(rng, simple=True)), AND)

    def _relative_frame(self, rng: random.Random) -> Sentence:
        # No negation, adverb or PP: they belong to the main clause and could not follow its
        # predicate into the relative clause.
        rel_verb, rel_obj = self.g.predicate(rng)
        verb, obj = self.g.predicate(rng)
        subj = self.g.noun_phrase(rng, self.g.subject_noun(rng, verb))
        clause = Clause(replace(subj, rel=RelativeClause(rel_verb, rel_obj)), verb, obj,
                        past=rng.random() < self.g.w.past)
        return Sentence((clause,))

    # Edits: candidates only, filtered and labelled by `candidates`.

    def _and_edits(self, s: Sentence) -> Iterator[tuple[Sentence, ...]]:
        a, b = s.clauses
        yield (Sentence((b, a), AND),)
        scrambled = list(self._two_clause_swaps(a, b))
        scrambled += [(a2, b) for a2 in self._one_clause_swaps(a)]
        scrambled += [(a, b2) for b2 in self._one_clause_swaps(b)]
        for a2, b2 in scrambled:
            yield Sentence((a2, b2), AND), Sentence((b2, a2), AND)

    def _two_clause_swaps(self, a: Clause, b: Clause) -> Iterator[tuple[Clause, Clause]]:
        for field in ("subj", "obj", "verb", "adv", "pp", "neg"):
            x, y = getattr(a, field), getattr(b, field)
            if x != y:
                yield replace(a, **{field: y}), replace(b, **{field: x})
        for a2, b2 in self._adjective_moves([a.subj, a.obj, b.subj, b.obj]):
            yield replace(a, subj=a2[0], obj=a2[1]), replace(b, subj=b2[0], obj=b2[1])

    def _one_clause_swaps(self, c: Clause) -> Iterator[Clause]:
        if c.obj is not None and c.obj != c.subj:
            yield replace(c, subj=c.obj, obj=c.subj)

    def _relative_edits(self, c: Clause) -> Iterator[tuple[Sentence, ...]]:
        rel = c.subj.rel
        yield (Sentence((self._exchange_predicates(c),)),)
        scrambled = []
        if c.obj is not None and rel.obj is not None:
            scrambled.append(replace(c, obj=rel.obj, subj=replace(c.subj, rel=RelativeClause(rel.verb, c.obj))))
        scrambled.append(replace(c, verb=rel.verb, subj=replace(c.subj, rel=RelativeClause(c.verb, rel.obj))))
        head = replace(c.subj, rel=None)
        if c.obj is not None:
            scrambled.append(replace(c, subj=replace(c.obj, rel=rel), obj=head))
        if rel.obj is not None:
            scrambled.append(replace(c, subj=replace(rel.obj, rel=RelativeClause(rel.verb, head))))
        for nps in self._adjective_moves([head, rel.obj, c.obj]):
            new_head, new_rel_obj, new_obj = nps[0]
            scrambled.append(replace(c, subj=replace(new_head, rel=RelativeClause(rel.verb, new_rel_obj)),
                                     obj=new_obj))
        for e in scrambled:
            yield Sentence((e,)), Sentence((self._exchange_predicates(e),))

    @staticmethod
    def _exchange_predicates(c: Clause) -> Clause:
        rel = c.subj.rel
        return replace(c, verb=rel.verb, obj=rel.obj, subj=replace(c.subj, rel=RelativeClause(c.verb, c.obj)))

    @staticmethod
    def _adjective_moves(nps: list[NounPhrase | None]) -> Iterator[list]:
        """Every way of moving one adjective to another noun phrase (or exchanging two).

        Yields the noun phrases regrouped as the callers need them: for four phrases (two
        clauses) ``[(subj, obj), (subj, obj)]``, for three ``[(head, rel_obj, obj)]``.
        """
        for i, src in enumerate(nps):
            if src is None or src.adj is None:
                continue
            for j, dst in enumerate(nps):
                if j == i or dst is None or dst.adj == src.adj:
                    continue
                moved = list(nps)
                moved[i], moved[j] = replace(src, adj=dst.adj), replace(dst, adj=src.adj)
                if len(nps) == 4:
                    yield [(moved[0], moved[1]), (moved[2], moved[3])]
                else:
                    yield [tuple(moved)]

    def _well_formed(self, c: Clause) -> bool:
        """The grammar's selection rules: animate subjects, objects of a class the verb takes."""
        if c.subj.noun not in self.animate:
            return False
        if c.subj.rel is not None and not self._takes(c.subj.rel.verb, c.subj.rel.obj):
            return False
        return self._takes(c.verb, c.obj)

    def _takes(self, verb: str, obj: NounPhrase | None) -> bool:
        if verb not in self.m.verb_objects:
            return obj is None
        if obj is None:
            return False
        return self.m.hypernym.get(obj.noun, obj.noun) in self.m.verb_objects[verb]


def render_words(language: Language) -> Callable[[Sentence], list[str]]:
    """A sentence's word forms in `language` (the words `ParaphraseGenerator` compares)."""
    return lambda sentence: language.text(sentence).split()
