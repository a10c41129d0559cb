"""The `clausal` grammar family: a second, independent source grammar beside `basic` (`grammar.py`).

Where `basic` gives short sentences (one clause, a relative clause on the subject only now and
then), `clausal` builds long, clause-heavy ones: relative clauses on subjects and objects, nested
("the dog that sees the cat that eats the fish"), negated ("the dog that does not sleep"),
prepositional phrases, negation, past tense and subject-verb number agreement in every clause,
up to three clauses joined by "and"/"because", and questions (as in every corpus). Its lexicon,
word statistics and meanings come from a stream of their own (`family_seed`), so the same seed
gives other words than `basic`. It renders through the same `Language` trees, so every language
variant (`vo`, `na`, `nd`, `sov`, `pre`, `syn`, ...) applies with the same meaning.

`ClausalNliGenerator` adds NLI edits whose label hinges on the clause structure (what a
relative clause asserts, its negation, who does what); `hard_share` of the pairs use them, the
rest are the lexical edits of `nli.py`. `NLI_DIFFICULTIES` names two shares.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import replace

from mmadapt.synth.grammar import Clause, Grammar, GrammarWeights, NounPhrase, RelativeClause, Sentence
from mmadapt.synth.lexicon import AND, BECAUSE, Inventory
from mmadapt.synth.nli import CONTRADICTION, ENTAILMENT, LABELS, NEUTRAL, NliExample, NliGenerator

FAMILIES = ("basic", "clausal")
DEFAULT_FAMILY = "basic"
# More classes and verbs than `basic`, so the lexicon differs in size too.
CLAUSAL_INVENTORY = Inventory(animate_classes=7, thing_classes=5, hyponyms_per_class=5, transitive_pairs=14,
                              intransitive_pairs=5, adjective_pairs=10, adverbs=10, prepositions=9)
CLAUSAL_WEIGHTS = GrammarWeights(two_clauses=0.45, because=0.45, transitive=0.75, plural=0.45, definite=0.6,
                                 adjective=0.35, relative=0.45, negation=0.25, past=0.4, adverb=0.3, pp=0.45,
                                 hypernym=0.15)
THREE_CLAUSES = 0.3  # share of multi-clause sentences with a third clause
NESTED_RELATIVE = 0.35  # chance a relative clause's object has a relative clause of its own
NEGATED_RELATIVE = 0.3
NLI_DIFFICULTIES = {"easy": 0.0, "hard": 0.6}  # share of pairs made by structural edits


def family_seed(seed: int, family: str) -> int:
    """The seed the family's meanings, lexicon and streams derive from (`basic`: `seed` itself)."""
    if family == DEFAULT_FAMILY:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:family:{family}".encode()).digest()[:6], "big")


def hard_share(difficulty) -> float:
    """The structural-edit share for `nli_difficulty` ("easy", "hard" or a number in [0, 1])."""
    if isinstance(difficulty, str) and difficulty in NLI_DIFFICULTIES:
        return NLI_DIFFICULTIES[difficulty]
    if not isinstance(difficulty, bool) and isinstance(difficulty, (int, float)) and 0 <= difficulty <= 1:
        return float(difficulty)
    raise ValueError(f"nli_difficulty must be one of {', '.join(NLI_DIFFICULTIES)} or a share in [0, 1]; "
                     f"got {difficulty!r}")


class ClausalGrammar(Grammar):
    """`Grammar` with relative clauses on objects too, nested and negated ones, and up to three clauses."""

    def sentence(self, rng: random.Random) -> Sentence:
        """One clause, or two or three joined by one conjunction."""
        if rng.random() < self.w.two_clauses:
            conj = BECAUSE if rng.random() < self.w.because else AND
            n = 3 if conj == AND and rng.random() < THREE_CLAUSES else 2
            return Sentence(tuple(self.clause(rng, simple=True) for _ in range(n)), conj)
        return Sentence((self.clause(rng),))

    def predicate(self, rng: random.Random) -> tuple[str, NounPhrase | None]:
        """A verb and, for a transitive one, an object that may carry a relative clause."""
        if rng.random() < self.w.transitive:
            verb = self.u.transitive.sample(rng)
            return verb, self.noun_phrase(rng, self.object_noun(rng, verb), relative=True)
        return self.u.intransitive.sample(rng), None

    def noun_phrase(self, rng: random.Random, noun: str, *, relative: bool = False, depth: int = 0) -> NounPhrase:
        """An NP; its relative clause may be negated and its object carry a relative clause in turn."""
        np = NounPhrase(noun=noun, plural=rng.random() < self.w.plural, definite=rng.random() < self.w.definite,
                        adj=self.adjective(rng, noun) if rng.random() < self.w.adjective else None)
        if relative and noun in self.m.animate_nouns and rng.random() < self.w.relative:
            np = replace(np, rel=self.relative(rng, noun, nested=depth == 0 and rng.random() < NESTED_RELATIVE))
        return np

    def relative(self, rng: random.Random, noun: str, *, nested: bool = False) -> RelativeClause:
        """A relative clause whose subject is `noun`."""
        verb = self.relative_verb(rng, noun)
        obj = None
        if verb in self.m.verb_objects:
            obj = self.noun_phrase(rng, self.object_noun(rng, verb), relative=nested, depth=1)
        return RelativeClause(verb, obj, neg=rng.random() < NEGATED_RELATIVE)


class ClausalNliGenerator(NliGenerator):
    """`NliGenerator` whose `hard_share` of pairs hinge on a relative clause: its content, negation, roles."""

    HARD_EDITS = {ENTAILMENT: "rel_assert", CONTRADICTION: "rel_deny", NEUTRAL: "rel_shift"}

    def __init__(self, grammar: Grammar, hard: float = 0.0):
        super().__init__(grammar)
        self.hard = hard

    def example(self, rng: random.Random, label: str) -> NliExample:
        """One example with gold label `label`: a structural edit with chance `hard`, else a lexical one."""
        if self.hard and rng.random() < self.hard:
            premise, hypothesis = getattr(self, f"_{self.HARD_EDITS[label]}")(rng)
            return NliExample(Sentence((premise,)), Sentence((hypothesis,)), label, self.HARD_EDITS[label])
        return super().example(rng, label)

    def _with_relative(self, rng: random.Random) -> Clause:
        """A premise whose subject has a transitive relative clause with an animate object."""
        clause = self.g.clause(rng)
        subj = clause.subj.noun
        related = {subj, self.m.hypernym.get(subj)} | {n for n, h in self.m.hypernym.items() if h == subj}
        animate = dict(self.m.animate_classes)
        # (verb, another animate referent it takes), so "the cat runs" is never said of the subject
        options = [(v, n) for v in self.m.transitive for h in self.m.verb_objects[v] if h in animate
                   for n in (h, *animate[h]) if n not in related]
        verb, obj_noun = rng.choice(options)
        obj = replace(self.g.noun_phrase(rng, obj_noun), rel=None, definite=True)
        rel = RelativeClause(verb, obj, neg=rng.random() < 0.5)
        return clause.with_subj(rel=rel, definite=True)

    @staticmethod
    def _asserted(premise: Clause) -> Clause:
        """What the premise's subject relative clause asserts, as a main clause."""
        rel = premise.subj.rel
        return Clause(subj=replace(premise.subj, rel=None), verb=rel.verb, obj=rel.obj, neg=rel.neg, past=premise.past)

    def _rel_assert(self, rng):
        premise = self._with_relative(rng)
        return premise, self._asserted(premise)

    def _rel_deny(self, rng):
        premise = self._with_relative(rng)
        return premise, replace(self._asserted(premise), neg=not premise.subj.rel.neg)

    def _rel_shift(self, rng):
        # "the dog that sees the cat runs" -> "the cat runs": the relative clause's object is not said to.
        premise = self._with_relative(rng)
        return premise, replace(premise, subj=replace(premise.subj.rel.obj, plural=premise.subj.plural))


__all__ = ["CLAUSAL_INVENTORY", "CLAUSAL_WEIGHTS", "ClausalGrammar", "ClausalNliGenerator", "DEFAULT_FAMILY",
           "FAMILIES", "LABELS", "NLI_DIFFICULTIES", "family_seed", "hard_share"]
