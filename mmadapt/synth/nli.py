"""Natural-language-inference pairs whose label follows from the sentences' meaning.

A premise is sampled from the grammar and the hypothesis made from it by one edit whose
label is fixed by simple semantics:

- dropping a modifier (adjective, adverb, prepositional phrase, relative clause) or a
  conjunct, or replacing a noun by its class word ("dog" -> "animal"): entailment;
- adding a modifier, replacing a class word by a member, or a noun by an unrelated noun:
  neutral;
- negating, or replacing a verb or adjective by its antonym: contradiction.

A share of premises is negated, and negation reverses the direction of the monotone
edits ("no dog runs" entails "no big dog runs"), so entailment hypotheses are sometimes
longer than the premise and neutral ones shorter: hypothesis length alone does not give
the label. Swapping the clauses of an "and" sentence is entailment, of a "because"
sentence neutral, so word order inside the hypothesis matters too. As in SNLI and
MultiNLI annotation, premise and hypothesis are read as describing the same scene, so
"a dog sleeps" / "a dog does not sleep" is a contradiction.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable

from mmadapt.synth.grammar import Clause, Grammar, RelativeClause, Sentence
from mmadapt.synth.lexicon import AND, BECAUSE

ENTAILMENT, NEUTRAL, CONTRADICTION = "entailment", "neutral", "contradiction"
LABELS = (ENTAILMENT, NEUTRAL, CONTRADICTION)
NEGATED_PREMISE_RATE = 0.3
SLOTS = ("subj_adj", "obj_adj", "adv", "pp", "rel")


@dataclass(frozen=True)
class NliExample:
    """A premise, a hypothesis, the gold label and the edit that made the pair."""

    premise: Sentence
    hypothesis: Sentence
    label: str
    edit: str


Pair = tuple[Clause | Sentence, Clause | Sentence]


class NliGenerator:
    """Makes label-balanced NLI examples from a `Grammar`."""

    def __init__(self, grammar: Grammar):
        self.g = grammar
        self.m = grammar.m
        # (label, premise negated) -> [(edit name, weight)]; weights favour the basic edits.
        self.edits: dict[tuple[str, bool], list[tuple[str, int]]] = {
            (ENTAILMENT, False): [("drop", 3), ("generalize", 2), ("drop_generalize", 1), ("drop_conjunct", 2),
                                  ("swap_and", 1)],
            (NEUTRAL, False): [("add", 3), ("specialize", 2), ("substitute", 2), ("drop_substitute", 2),
                               ("swap_because", 1), ("substitute_conjunct", 1)],
            (CONTRADICTION, False): [("negate", 2), ("negate_drop", 1), ("antonym_verb", 2), ("antonym_adj", 1),
                                     ("negate_conjunct", 2)],
            (ENTAILMENT, True): [("add", 1), ("specialize", 1)],
            (NEUTRAL, True): [("drop", 1), ("generalize", 1), ("substitute", 1)],
            (CONTRADICTION, True): [("negate", 1)],
        }

    def examples(self, rng: random.Random, n: int) -> list[NliExample]:
        """`n` examples, labels as balanced as `n` allows, in random order."""
        labels = [LABELS[i % len(LABELS)] for i in range(n)]
        rng.shuffle(labels)
        return [self.example(rng, label) for label in labels]

    def example(self, rng: random.Random, label: str) -> NliExample:
        """One example with gold label `label`."""
        negated = rng.random() < NEGATED_PREMISE_RATE
        names, weights = zip(*self.edits[(label, negated)])
        edit = rng.choices(names, weights)[0]
        make: Callable[[random.Random, bool], Pair] = getattr(self, f"_{edit}")
        premise, hypothesis = make(rng, negated)
        return NliExample(_as_sentence(premise), _as_sentence(hypothesis), label, edit)

    # Single-clause edits. `neg` says whether the premise is negated.

    def _base(self, rng: random.Random, neg: bool) -> Clause:
        return replace(self.g.clause(rng), neg=neg)

    def _drop(self, rng, neg) -> Pair:
        premise = self._base(rng, neg)
        present = self._present(premise) or [None]
        if present == [None]:
            slot = rng.choice(self._absent(premise))
            premise, present = self._fill(rng, premise, slot), [slot]
        return premise, self._empty(premise, rng.choice(present))

    def _add(self, rng, neg) -> Pair:
        premise = self._base(rng, neg)
        absent = self._absent(premise)
        if not absent:
            premise = self._empty(premise, "adv")
            absent = ["adv"]
        return premise, self._fill(rng, premise, rng.choice(absent))

    def _generalize(self, rng, neg) -> Pair:
        premise, role = self._with_hyponym(rng, self._base(rng, neg))
        return premise, self._set_noun(premise, role, self.m.hypernym[self._noun(premise, role)])

    def _specialize(self, rng, neg) -> Pair:
        premise, hypothesis = self._generalize(rng, neg)
        return hypothesis, premise

    def _substitute(self, rng, neg) -> Pair:
        premise = self._base(rng, neg)
        role = "obj" if premise.obj is not None and rng.random() < 0.4 else "subj"
        return premise, self._set_noun(premise, role, self._unrelated_noun(rng, premise, role))

    def _drop_generalize(self, rng, neg) -> Pair:
        premise, hypothesis = self._generalize(rng, neg)
        present = self._present(hypothesis)
        return premise, self._empty(hypothesis, rng.choice(present)) if present else hypothesis

    def _drop_substitute(self, rng, neg) -> Pair:
        premise, hypothesis = self._drop(rng, neg)
        role = "obj" if hypothesis.obj is not None and rng.random() < 0.4 else "subj"
        return premise, self._set_noun(hypothesis, role, self._unrelated_noun(rng, hypothesis, role))

    def _negate(self, rng, neg) -> Pair:
        premise = self._base(rng, neg)
        return premise, replace(premise, neg=not neg)

    def _negate_drop(self, rng, neg) -> Pair:
        premise, hypothesis = self._drop(rng, neg)
        return premise, replace(hypothesis, neg=not neg)

    def _antonym_verb(self, rng, neg) -> Pair:
        premise = self._base(rng, neg)
        return premise, replace(premise, verb=self.m.antonym[premise.verb])

    def _antonym_adj(self, rng, neg) -> Pair:
        premise = self._base(rng, neg)
        if premise.subj.adj is None:
            premise = premise.with_subj(adj=self.g.adjective(rng, premise.subj.noun))
        return premise, premise.with_subj(adj=self.m.antonym[premise.subj.adj])

    # Two-clause edits (premises are never negated here).

    def _two(self, rng: random.Random, conj: str | None = None) -> Sentence:
        conj = conj or rng.choice((AND, BECAUSE))
        return Sentence((replace(self.g.clause(rng, simple=True), neg=False),
                         replace(self.g.clause(rng, simple=True), neg=False)), conj)

    def _drop_conjunct(self, rng, neg) -> Pair:
        premise = self._two(rng)
        return premise, rng.choice(premise.clauses)

    def _swap_and(self, rng, neg) -> Pair:
        premise = self._two(rng, AND)
        return premise, replace(premise, clauses=premise.clauses[::-1])

    def _swap_because(self, rng, neg) -> Pair:
        premise = self._two(rng, BECAUSE)
        return premise, replace(premise, clauses=premise.clauses[::-1])

    def _negate_conjunct(self, rng, neg) -> Pair:
        premise = self._two(rng)
        return premise, replace(rng.choice(premise.clauses), neg=True)

    def _substitute_conjunct(self, rng, neg) -> Pair:
        premise = self._two(rng)
        clause = rng.choice(premise.clauses)
        return premise, self._set_noun(clause, "subj", self._unrelated_noun(rng, clause, "subj"))

    # Helpers on clauses.

    def _present(self, c: Clause) -> list[str]:
        return [slot for slot in SLOTS if self._get(c, slot) is not None]

    def _absent(self, c: Clause) -> list[str]:
        return [slot for slot in SLOTS if self._get(c, slot) is None and not (slot == "obj_adj" and c.obj is None)]

    @staticmethod
    def _get(c: Clause, slot: str):
        if slot == "subj_adj":
            return c.subj.adj
        if slot == "obj_adj":
            return c.obj.adj if c.obj is not None else None
        if slot == "rel":
            return c.subj.rel
        return getattr(c, slot)

    @staticmethod
    def _empty(c: Clause, slot: str) -> Clause:
        if slot == "subj_adj":
            return c.with_subj(adj=None)
        if slot == "obj_adj":
            return c.with_obj(adj=None)
        if slot == "rel":
            return c.with_subj(rel=None)
        return replace(c, **{slot: None})

    def _fill(self, rng: random.Random, c: Clause, slot: str) -> Clause:
        if slot == "subj_adj":
            return c.with_subj(adj=self.g.adjective(rng, c.subj.noun))
        if slot == "obj_adj":
            return c.with_obj(adj=self.g.adjective(rng, c.obj.noun))
        if slot == "rel":
            verb = self.g.relative_verb(rng, c.subj.noun)
            obj = self.g.noun_phrase(rng, self.g.object_noun(rng, verb)) if verb in self.m.verb_objects else None
            return c.with_subj(rel=RelativeClause(verb, obj))
        if slot == "adv":
            return replace(c, adv=self.g.adverb(rng, c.verb))
        return replace(c, pp=self.g.pp(rng))

    @staticmethod
    def _noun(c: Clause, role: str) -> str:
        return c.subj.noun if role == "subj" else c.obj.noun

    @staticmethod
    def _set_noun(c: Clause, role: str, noun: str) -> Clause:
        return c.with_subj(noun=noun) if role == "subj" else c.with_obj(noun=noun)

    def _with_hyponym(self, rng: random.Random, c: Clause) -> tuple[Clause, str]:
        """`c` with a class member (not a class word) as subject or object noun, and which."""
        role = "obj" if c.obj is not None and rng.random() < 0.4 else "subj"
        noun = self._noun(c, role)
        if noun not in self.m.hypernym:
            noun = self.g.member(rng, noun)
        return self._set_noun(c, role, noun), role

    def _unrelated_noun(self, rng: random.Random, c: Clause, role: str) -> str:
        """A noun that fits `role` and is neither the noun there, its class word nor a member."""
        noun = self._noun(c, role)
        if role == "subj":
            candidates = self.m.animate_nouns
        else:
            candidates = tuple(n for h in self.m.verb_objects[c.verb] for n in (h, *self.m.class_members(h)))
        related = {noun, self.m.hypernym.get(noun)}
        related |= {n for n, h in self.m.hypernym.items() if h == noun}
        return rng.choice([n for n in candidates if n not in related])


def _as_sentence(x: Clause | Sentence) -> Sentence:
    return x if isinstance(x, Sentence) else Sentence((x,))

