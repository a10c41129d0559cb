"""Language-independent sentence meanings and a probabilistic grammar that samples them.

A sentence is one clause or two joined by "and" / "because". A clause has an animate
subject, a verb (intransitive, or transitive with an object of a class the verb takes),
optional negation, past tense, an adverb and a prepositional phrase; a subject may carry
an adjective and a relative clause ("the dog that sees the ball"). Words are drawn with the
seeded frequencies and selectional preferences of `usage.py`. Each language renders these
trees with its own words and word order (see `languages.py`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from mmadapt.synth.lexicon import AND, BECAUSE, Meanings
from mmadapt.synth.usage import Usage, build_usage


@dataclass(frozen=True)
class NounPhrase:
    """A determiner, a noun and optional modifiers; `rel` is a relative clause."""

    noun: str
    plural: bool = False
    definite: bool = True
    adj: str | None = None
    rel: "RelativeClause | None" = None


@dataclass(frozen=True)
class RelativeClause:
    """'that VERB OBJ' (or 'that VERB' for an intransitive verb), the head is the subject."""

    verb: str
    obj: NounPhrase | None = None
    neg: bool = False  # "that does not VERB": only the clausal family (`clausal.py`) negates one


@dataclass(frozen=True)
class Clause:
    """A subject, a verb and what modifies the event."""

    subj: NounPhrase
    verb: str
    obj: NounPhrase | None = None
    neg: bool = False
    past: bool = False
    adv: str | None = None
    pp: tuple[str, NounPhrase] | None = None

    def with_subj(self, **changes) -> "Clause":
        """This clause with the subject's fields changed."""
        return replace(self, subj=replace(self.subj, **changes))

    def with_obj(self, **changes) -> "Clause":
        """This clause with the object's fields changed."""
        return replace(self, obj=replace(self.obj, **changes))


@dataclass(frozen=True)
class Sentence:
    """One clause, or two joined by a conjunction (AND or BECAUSE)."""

    clauses: tuple[Clause, ...]
    conj: str | None = None


@dataclass(frozen=True)
class GrammarWeights:
    """How often each optional construction appears."""

    two_clauses: float = 0.25
    because: float = 0.4  # share of two-clause sentences joined by "because"
    transitive: float = 0.7
    plural: float = 0.4
    definite: float = 0.6
    adjective: float = 0.3
    relative: float = 0.15
    negation: float = 0.15
    past: float = 0.3
    adverb: float = 0.25
    pp: float = 0.25
    hypernym: float = 0.2  # a class word ("animal") instead of a specific noun


class Grammar:
    """Samples sentence trees from `Meanings` with `GrammarWeights` and word statistics `Usage`.

    Words are drawn from their Zipfian, preference-shaped distributions (see `usage.py`):
    the verb first, then a subject and object it prefers, adjectives the noun prefers, an
    adverb the verb prefers, a preposition and an object class it prefers.
    """

    def __init__(self, meanings: Meanings, weights: GrammarWeights | None = None, usage: Usage | None = None):
        self.m = meanings
        self.w = weights or GrammarWeights()
        self.u = usage or build_usage(meanings, meanings.seed)

    def sentence(self, rng: random.Random) -> Sentence:
        """A random sentence of one or two clauses."""
        if rng.random() < self.w.two_clauses:
            conj = BECAUSE if rng.random() < self.w.because else AND
            return Sentence((self.clause(rng, simple=True), self.clause(rng, simple=True)), conj)
        return Sentence((self.clause(rng),))

    def clause(self, rng: random.Random, *, simple: bool = False) -> Clause:
        """A random clause; `simple` leaves out relative clauses (used inside two-clause sentences)."""
        w = self.w
        verb, obj = self.predicate(rng)
        subj = self.noun_phrase(rng, self.subject_noun(rng, verb), relative=not simple)
        return Clause(
            subj=subj,
            verb=verb,
            obj=obj,
            neg=rng.random() < w.negation,
            past=rng.random() < w.past,
            adv=self.adverb(rng, verb) if rng.random() < w.adverb else None,
            pp=self.pp(rng) if rng.random() < w.pp else None,
        )

    def predicate(self, rng: random.Random) -> tuple[str, NounPhrase | None]:
        """A verb and, for a transitive one, an object it takes."""
        if rng.random() < self.w.transitive:
            verb = self.u.transitive.sample(rng)
            return verb, self.noun_phrase(rng, self.object_noun(rng, verb))
        return self.u.intransitive.sample(rng), None

    def noun_phrase(self, rng: random.Random, noun: str, *, relative: bool = False) -> NounPhrase:
        """An NP headed by `noun` with random number, definiteness and modifiers."""
        w = self.w
        rel = None
        if relative and rng.random() < w.relative:
            verb = self.relative_verb(rng, noun)
            obj = self.noun_phrase(rng, self.object_noun(rng, verb)) if verb in self.m.verb_objects else None
            rel = RelativeClause(verb, obj)
        return NounPhrase(
            noun=noun,
            plural=rng.random() < w.plural,
            definite=rng.random() < w.definite,
            adj=self.adjective(rng, noun) if rng.random() < w.adjective else None,
            rel=rel,
        )

    def pp(self, rng: random.Random) -> tuple[str, NounPhrase]:
        """A preposition with a (thing) noun phrase of a class it prefers."""
        prep = self.u.preposition.sample(rng)
        hypernym = self.u.pp_class[prep].sample(rng)
        noun = hypernym if rng.random() < self.w.hypernym else self.u.pp_member[(prep, hypernym)].sample(rng)
        return prep, NounPhrase(noun, plural=rng.random() < 0.3)

    def subject_noun(self, rng: random.Random, verb: str) -> str:
        """A random animate noun from a class `verb` prefers as its subject (any class is possible)."""
        return self.pick(rng, self.u.subject_class[verb].sample(rng))

    def object_noun(self, rng: random.Random, verb: str) -> str:
        """A random noun from a class `verb` takes, members as `verb` prefers them."""
        hypernym = self.u.object_class[verb].sample(rng)
        return hypernym if rng.random() < self.w.hypernym else self.u.object_member[(verb, hypernym)].sample(rng)

    def relative_verb(self, rng: random.Random, noun: str) -> str:
        """A verb for a relative clause whose subject is `noun`, as likely as in a main clause."""
        return self.u.relative_verb[self.m.hypernym.get(noun, noun)].sample(rng)

    def member(self, rng: random.Random, hypernym: str) -> str:
        """A random hyponym of `hypernym`, with the class's Zipfian frequencies."""
        return self.u.members[hypernym].sample(rng)

    def adjective(self, rng: random.Random, noun: str) -> str:
        """A random adjective, as likely to modify `noun` as the usage says."""
        return self.u.adjective[noun].sample(rng)

    def adverb(self, rng: random.Random, verb: str) -> str:
        """A random adverb, as likely to modify `verb` as the usage says."""
        return self.u.adverb[verb].sample(rng)

    def pick(self, rng: random.Random, hypernym: str) -> str:
        """The class word `hypernym` (share `GrammarWeights.hypernym`) or one of its members."""
        return hypernym if rng.random() < self.w.hypernym else self.member(rng, hypernym)
