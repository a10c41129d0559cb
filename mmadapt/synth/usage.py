"""How often each word is used and with which others: Zipfian frequencies and selectional preferences.

Without this, the words of a part-of-speech class would be exchangeable (drawn uniformly,
with the same contexts), so any permutation of, say, the nouns of a class would fit a
language's text equally well and no distributional method could tell which new-language
word translates which source word. Real languages are not like that, and neither are these:

- every sampling pool (a class's members, the verbs, adjectives, adverbs, prepositions) has
  Zipfian frequencies, probability proportional to 1 / rank^`ZIPF_EXPONENT` under a seeded
  random ranking;
- words prefer partners: a verb its subject classes, the object classes it takes and members
  of those ("eat" an "apple"), a noun its adjectives, a verb its adverbs, a preposition its
  object classes and their members. A preferred partner
  takes `PREFERRED_SHARE` of the draws; the rest follow the pool's Zipfian weights, so every
  combination the grammar allows stays possible (the tasks substitute words freely).

All of it depends only on the seed, so the same seed gives the same language statistics.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Sequence

from mmadapt.synth.lexicon import Meanings

ZIPF_EXPONENT = 1.0
PREFERRED_SHARE = 0.8
PREFERRED_SUBJECT_CLASSES = 2
PREFERRED_ADJECTIVES = 2  # per noun
PREFERRED_ADVERBS = 2  # per verb
PREFERRED_PP_CLASSES = 2  # per preposition
PREFERRED_MEMBERS = 2  # per (verb or preposition, class of its objects)


@dataclass(frozen=True)
class Distribution:
    """A fixed categorical distribution, sampled with one `rng.random()` call per draw."""

    items: tuple[str, ...]
    cum_weights: tuple[float, ...]

    @classmethod
    def of(cls, weights: dict[str, float]) -> "Distribution":
        items = tuple(weights)
        return cls(items, tuple(itertools.accumulate(weights[i] for i in items)))

    def sample(self, rng: random.Random) -> str:
        """One item, with probability proportional to its weight."""
        return rng.choices(self.items, cum_weights=self.cum_weights)[0]

    def probabilities(self) -> dict[str, float]:
        """Item -> probability."""
        total, previous, out = self.cum_weights[-1], 0.0, {}
        for item, cum in zip(self.items, self.cum_weights):
            out[item], previous = (cum - previous) / total, cum
        return out


@dataclass(frozen=True)
class Usage:
    """The seeded word statistics `Grammar` samples from."""

    transitive: Distribution
    intransitive: Distribution
    members: dict[str, Distribution]  # class hypernym -> its hyponyms
    subject_class: dict[str, Distribution]  # verb -> animate class hypernyms
    object_class: dict[str, Distribution]  # transitive verb -> the classes it takes
    object_member: dict[tuple[str, str], Distribution]  # (transitive verb, class) -> hyponyms
    relative_verb: dict[str, Distribution]  # animate class -> verbs it is the subject of
    adjective: dict[str, Distribution]  # noun -> adjectives
    adverb: dict[str, Distribution]  # verb -> adverbs
    preposition: Distribution
    pp_class: dict[str, Distribution]  # preposition -> thing class hypernyms
    pp_member: dict[tuple[str, str], Distribution]  # (preposition, thing class) -> hyponyms


def zipf_weights(items: Sequence[str], rng: random.Random, exponent: float = ZIPF_EXPONENT) -> dict[str, float]:
    """`items` (in their order) with weight 1 / rank^exponent under a random ranking, summing to 1."""
    ranks = list(range(1, len(items) + 1))
    rng.shuffle(ranks)
    raw = [r ** -exponent for r in ranks]
    total = sum(raw)
    return {item: w / total for item, w in zip(items, raw)}


def preferring(base: dict[str, float], preferred: Sequence[str], share: float = PREFERRED_SHARE) -> dict[str, float]:
    """`base` with `share` of the mass moved onto `preferred` (split by their base weights); no zeros."""
    pref_total = sum(base[i] for i in preferred)
    return {i: (1 - share) * w + (share * w / pref_total if i in preferred else 0.0) for i, w in base.items()}


def build_usage(meanings: Meanings, seed: int, *, exponent: float = ZIPF_EXPONENT,
                preferred_share: float = PREFERRED_SHARE) -> Usage:
    """The word statistics of the meanings built from `seed` (the same for every language).

    ``exponent=0, preferred_share=0`` gives uniform, exchangeable words (generator version 2's
    statistics, up to the draw order), which the tests use as the unidentifiable baseline.
    """
    # A grammar variant (`variants.py`) draws its statistics from a stream of its own.
    rng = random.Random(f"{seed}:usage" if not meanings.variant else f"{seed}:usage:{meanings.variant}")

    def zipf_w(items: Sequence[str]) -> dict[str, float]:
        return zipf_weights(items, rng, exponent)

    def prefer(base: dict[str, float], preferred: Sequence[str]) -> dict[str, float]:
        return preferring(base, preferred, preferred_share)

    m = meanings
    animate = [h for h, _ in m.animate_classes]
    things = [h for h, _ in m.thing_classes]
    verbs = m.transitive + m.intransitive
    trans_w, intrans_w = zipf_w(m.transitive), zipf_w(m.intransitive)
    member_w = {h: zipf_w(hypos) for h, hypos in m.animate_classes + m.thing_classes}

    def preferred_members(heads: Sequence[str], classes: dict[str, Sequence[str]]) -> dict:
        return {(head, c): Distribution.of(prefer(member_w[c], rng.sample(m.class_members(c), PREFERRED_MEMBERS)))
                for head in heads for c in classes[head]}

    animate_w = zipf_w(animate)
    subject_w = {v: prefer(animate_w, rng.sample(animate, PREFERRED_SUBJECT_CLASSES)) for v in verbs}
    # The classes a verb takes are fixed by the meanings; the verb only weights them (each verb its own order).
    object_class = {v: Distribution.of(zipf_w(m.verb_objects[v])) for v in m.transitive}
    # A relative clause's verb is drawn given its (already chosen) subject: P(verb | class) by Bayes' rule,
    # so relative clauses show the same subject preferences as main clauses.
    verb_w = {**trans_w, **intrans_w}
    relative_verb = {c: Distribution.of({v: verb_w[v] * subject_w[v][c] for v in verbs}) for c in animate}
    adjective_w = zipf_w(m.adjectives)
    adjective = {n: Distribution.of(prefer(adjective_w, rng.sample(m.adjectives, PREFERRED_ADJECTIVES)))
                 for n in m.nouns}
    adverb_w = zipf_w(m.adverbs)
    adverb = {v: Distribution.of(prefer(adverb_w, rng.sample(m.adverbs, PREFERRED_ADVERBS))) for v in verbs}
    prep_w = zipf_w(m.prepositions)
    things_w = zipf_w(things)
    pp_class = {p: Distribution.of(prefer(things_w, rng.sample(things, PREFERRED_PP_CLASSES)))
                for p in m.prepositions}
    return Usage(
        transitive=Distribution.of(trans_w),
        intransitive=Distribution.of(intrans_w),
        members={h: Distribution.of(w) for h, w in member_w.items()},
        subject_class={v: Distribution.of(w) for v, w in subject_w.items()},
        object_class=object_class,
        object_member=preferred_members(m.transitive, m.verb_objects),
        relative_verb=relative_verb,
        adjective=adjective,
        adverb=adverb,
        preposition=Distribution.of(prep_w),
        pp_class=pp_class,
        pp_member=preferred_members(m.prepositions, {p: things for p in m.prepositions}),
    )
