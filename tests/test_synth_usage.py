"""Tests for mmadapt.synth.usage: Zipfian frequencies, selectional preferences, identifiable words."""
from __future__ import annotations

import collections
import inspect
import random

import numpy as np
import pytest

from mmadapt.synth import BUILTIN_LANGUAGES, generate_benchmark
from mmadapt.synth.grammar import Grammar
from mmadapt.synth.languages import Language
from mmadapt.synth.lexicon import SCRIPTS, build_lexicon, build_meanings
from mmadapt.synth.usage import PREFERRED_SHARE, build_usage, zipf_weights

SEED = 0
# The corpus size `generate_benchmark` writes by default: identifiability must hold at that size.
CORPUS_SENTENCES = inspect.signature(generate_benchmark).parameters["corpus_sentences"].default
WINDOW, MIN_COUNT = 2, 20


def _context_vectors(grammar, code, lexicons, rng):
    """Per source word, counts of its neighbours (window ±WINDOW) in a fresh `code` corpus, in source words."""
    to_src = {lexicons[code].forms[k]: lexicons["src"].forms[k] for k in lexicons[code].forms}
    words = lexicons["src"].words()
    index = {w: i for i, w in enumerate(words)}
    lang = Language(BUILTIN_LANGUAGES[code], lexicons[code])
    counts, freq = np.zeros((len(words), len(words))), np.zeros(len(words))
    for _ in range(CORPUS_SENTENCES):
        ids = [index[to_src[w]] for w in lang.text(grammar.sentence(rng)).split()]
        for i, a in enumerate(ids):
            freq[a] += 1
            for b in ids[max(0, i - WINDOW):i] + ids[i + 1:i + 1 + WINDOW]:
                counts[a, b] += 1
    return counts, freq


def translation_accuracy(usage_kwargs: dict) -> tuple[int, int]:
    """(hits, words): how many `vo` words of frequency >= MIN_COUNT have their true translation as the
    nearest `src` word by cosine of context vectors taken from independent corpora."""
    meanings = build_meanings(SEED)
    grammar = Grammar(meanings, usage=build_usage(meanings, SEED, **usage_kwargs))
    lexicons = {code: build_lexicon(code, SCRIPTS[BUILTIN_LANGUAGES[code].script], meanings, SEED)
                for code in ("src", "vo")}
    src, _ = _context_vectors(grammar, "src", lexicons, random.Random("src corpus"))
    vo, vo_freq = _context_vectors(grammar, "vo", lexicons, random.Random("vo corpus"))

    def unit(m):
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

    nearest = (unit(vo) @ unit(src).T).argmax(axis=1)
    frequent = np.flatnonzero(vo_freq >= MIN_COUNT)
    return int((nearest[frequent] == frequent).sum()), len(frequent)


def test_new_language_words_are_identifiable_from_their_contexts():
    hits, words = translation_accuracy({})
    assert words > 300
    assert hits / words >= 0.8, f"{hits}/{words} vo words have their translation as nearest src word"


def test_uniform_exchangeable_words_would_not_be_identifiable():
    # The control: the same measurement with every pool uniform and no preferences (generator
    # version 2's statistics) finds few translations, so the test above measures the usage.
    hits, words = translation_accuracy({"exponent": 0.0, "preferred_share": 0.0})
    assert hits / words < 0.3, f"{hits}/{words}"


def test_zipf_weights_fall_as_one_over_rank_under_a_seeded_ranking():
    items = [f"w{i}" for i in range(12)]
    weights = zipf_weights(items, random.Random(3))
    ranked = sorted(weights.values(), reverse=True)
    assert sum(ranked) == pytest.approx(1.0)
    assert [ranked[0] / w for w in ranked] == pytest.approx(list(range(1, 13)))
    assert weights == zipf_weights(items, random.Random(3))
    assert list(weights.values()) != ranked  # the ranking is shuffled, not the listing order


def test_corpus_frequencies_are_zipfian_within_a_pool():
    meanings = build_meanings(SEED)
    grammar, rng = Grammar(meanings), random.Random(1)
    adjectives = collections.Counter()
    for _ in range(5000):
        for clause in grammar.sentence(rng).clauses:
            adjectives.update(p.adj for p in (clause.subj, clause.obj) if p is not None and p.adj)
    counts = sorted(adjectives.values(), reverse=True)
    assert len(counts) == len(meanings.adjectives)  # every adjective still occurs
    assert counts[0] > 5 * counts[-1]


def test_preferences_favour_few_partners_but_allow_every_combination():
    meanings = build_meanings(SEED)
    usage = build_usage(meanings, SEED)
    for verb, dist in usage.subject_class.items():
        probs = sorted(dist.probabilities().values(), reverse=True)
        assert len(probs) == len(meanings.animate_classes) and min(probs) > 0
        assert sum(probs[:2]) >= PREFERRED_SHARE
    for noun, dist in usage.adjective.items():
        assert set(dist.items) == set(meanings.adjectives) and min(dist.probabilities().values()) > 0
    # A verb's objects stay within the classes it takes (the tasks' well-formedness rule).
    for verb, dist in usage.object_class.items():
        assert set(dist.items) == set(meanings.verb_objects[verb])
    # Different verbs prefer different subjects, so verbs are told apart by their contexts.
    favourites = {tuple(sorted(d.items, key=d.probabilities().get)[-2:]) for d in usage.subject_class.values()}
    assert len(favourites) > 10


def test_usage_depends_only_on_the_seed():
    assert build_usage(build_meanings(4), 4) == build_usage(build_meanings(4), 4)
    assert build_usage(build_meanings(4), 4) != build_usage(build_meanings(5), 5)
