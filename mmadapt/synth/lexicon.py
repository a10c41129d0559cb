"""The synthetic languages' shared meanings (lemmas) and each language's word forms.

Meanings are language-independent lemma ids with the relations the tasks rely on:
noun classes with a hypernym ("animal") over hyponyms, antonym pairs of verbs and
adjectives, and which object classes a transitive verb takes. Every language gives each
(lemma, inflection) its own invented surface string drawn from that language's script,
so the map from source forms to a new language's forms is a bijection and two scripts
share no characters.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

# Sizes of the inventory. Counted in word forms: 84 nouns x 2 + 36 verbs x 3 + 24 + 12 + 8
# + 8 function words + 2 question words = 330 forms per language.
ANIMATE_CLASSES = 6
THING_CLASSES = 6
HYPONYMS_PER_CLASS = 6
TRANSITIVE_PAIRS = 12
INTRANSITIVE_PAIRS = 6
ADJECTIVE_PAIRS = 12
ADVERBS = 12
PREPOSITIONS = 8
OBJECT_CLASSES_PER_VERB = 3

# Function words, by the feature they express.
DET_DEF_SG, DET_DEF_PL, DET_INDEF_SG, DET_INDEF_PL = "DEF_SG", "DEF_PL", "INDEF_SG", "INDEF_PL"
NEG, REL, AND, BECAUSE = "NEG", "REL", "AND", "BECAUSE"
FUNCTION_WORDS = (DET_DEF_SG, DET_DEF_PL, DET_INDEF_SG, DET_INDEF_PL, NEG, REL, AND, BECAUSE)
# Question words stand in for a whole noun phrase: "who" for animate nouns, "what" for things.
WHO, WHAT = "WHO", "WHAT"
QUESTION_WORDS = (WHO, WHAT)

# Verb inflections: present agrees with subject number, past does not.
PRES_SG, PRES_PL, PAST = "pres_sg", "pres_pl", "past"
NOUN_SG, NOUN_PL = "sg", "pl"


@dataclass(frozen=True)
class Script:
    """The letters a language's words are made of."""

    name: str
    consonants: str
    vowels: str


SCRIPTS = {
    "latin": Script("latin", "bdfgklmnprstvz", "aeiou"),
    "greek": Script("greek", "βγδζθκλμνξπρστφχ", "αεηιουω"),
    "cyrillic": Script("cyrillic", "бвгджзклмнпрстфхцчш", "аеиоуыэюя"),
    "georgian": Script("georgian", "ბგდვზთკლმნპჟრსტფქღყშჩცძწჭხ", "აეიოუ"),
    "armenian": Script("armenian", "բգդզթժլխծկհձղճմյնշչպջռսվտրցփք", "աեէըիոու"),
}


@dataclass(frozen=True)
class Meanings:
    """The language-independent lemma inventory and its semantic relations."""

    animate_classes: tuple[tuple[str, tuple[str, ...]], ...]  # (hypernym, hyponyms)
    thing_classes: tuple[tuple[str, tuple[str, ...]], ...]
    transitive: tuple[str, ...]
    intransitive: tuple[str, ...]
    adjectives: tuple[str, ...]
    adverbs: tuple[str, ...]
    prepositions: tuple[str, ...]
    antonym: dict[str, str]
    hypernym: dict[str, str]  # hyponym -> its class's hypernym
    verb_objects: dict[str, tuple[str, ...]]  # transitive verb -> object class hypernyms
    seed: int = 0  # the seed these were built from; word statistics (`usage.py`) derive from it too

    @property
    def animate_nouns(self) -> tuple[str, ...]:
        return tuple(n for h, hypos in self.animate_classes for n in (h, *hypos))

    @property
    def nouns(self) -> tuple[str, ...]:
        return self.animate_nouns + tuple(n for h, hypos in self.thing_classes for n in (h, *hypos))

    def class_members(self, hypernym: str) -> tuple[str, ...]:
        """The hyponyms under `hypernym`."""
        for h, hypos in self.animate_classes + self.thing_classes:
            if h == hypernym:
                return hypos
        raise KeyError(hypernym)


def build_meanings(seed: int) -> Meanings:
    """The lemma inventory; only which object classes each verb takes depends on `seed`."""
    rng = random.Random(f"{seed}:meanings")

    def classes(prefix: str, count: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple(
            (f"{prefix}{c}", tuple(f"{prefix}{c}.{i}" for i in range(HYPONYMS_PER_CLASS))) for c in range(count)
        )

    def pairs(prefix: str, count: int) -> tuple[str, ...]:
        return tuple(f"{prefix}{k}{side}" for k in range(count) for side in "ab")

    animate, things = classes("n_an", ANIMATE_CLASSES), classes("n_th", THING_CLASSES)
    transitive, intransitive = pairs("vt", TRANSITIVE_PAIRS), pairs("vi", INTRANSITIVE_PAIRS)
    adjectives = pairs("adj", ADJECTIVE_PAIRS)
    antonym = {}
    for group in (transitive, intransitive, adjectives):
        for a, b in zip(group[::2], group[1::2]):
            antonym[a], antonym[b] = b, a
    hypernym = {hypo: h for h, hypos in animate + things for hypo in hypos}
    object_classes = [h for h, _ in animate + things]
    verb_objects = {}
    for a, b in zip(transitive[::2], transitive[1::2]):
        # Antonyms share their objects, so swapping a verb for its antonym stays grammatical.
        verb_objects[a] = verb_objects[b] = tuple(sorted(rng.sample(object_classes, OBJECT_CLASSES_PER_VERB)))
    return Meanings(
        animate_classes=animate,
        thing_classes=things,
        transitive=transitive,
        intransitive=intransitive,
        adjectives=adjectives,
        adverbs=tuple(f"adv{k}" for k in range(ADVERBS)),
        prepositions=tuple(f"p{k}" for k in range(PREPOSITIONS)),
        antonym=antonym,
        hypernym=hypernym,
        verb_objects=verb_objects,
        seed=seed,
    )


@dataclass
class Lexicon:
    """One language's surface form for every (lemma, inflection)."""

    language: str
    script: Script
    forms: dict[tuple[str, str], str] = field(default_factory=dict)

    def form(self, lemma: str, inflection: str = "") -> str:
        """The word for `lemma` with `inflection` ("" for uninflected words)."""
        return self.forms[(lemma, inflection)]

    def words(self) -> list[str]:
        """Every word form of the language, sorted."""
        return sorted(set(self.forms.values()))

    def analyse(self) -> dict[str, tuple[str, str]]:
        """Word form -> (lemma, inflection); forms are unique, so this is the inverse."""
        return {word: key for key, word in self.forms.items()}


def build_lexicon(language: str, script: Script, meanings: Meanings, seed: int) -> Lexicon:
    """Invent the words of `language`: random syllables of `script`, unique per form.

    Inflection is an affix per language (plural noun suffix, agreement and past suffixes
    on verbs), so the languages have regular morphology a tokenizer can discover.
    """
    rng = random.Random(f"{seed}:lexicon:{language}")
    taken: set[str] = set()

    def syllable() -> str:
        coda = rng.choice(script.consonants) if rng.random() < 0.3 else ""
        return rng.choice(script.consonants) + rng.choice(script.vowels) + coda

    def fresh(min_syllables: int, max_syllables: int, suffixes: tuple[str, ...] = ("",)) -> str:
        # A stem whose every inflected form is still unused.
        while True:
            stem = "".join(syllable() for _ in range(rng.randint(min_syllables, max_syllables)))
            if all(stem + s not in taken for s in suffixes) and len({stem + s for s in suffixes}) == len(suffixes):
                taken.update(stem + s for s in suffixes)
                return stem

    def affix() -> str:
        return rng.choice(script.vowels) + rng.choice(script.consonants)

    plural = affix()
    verb_affixes = (affix(), affix(), affix())
    while len(set(verb_affixes)) < 3:
        verb_affixes = (affix(), affix(), affix())
    lex = Lexicon(language, script)
    for lemma in FUNCTION_WORDS:
        lex.forms[(lemma, "")] = fresh(1, 1)
    for lemma in meanings.prepositions:
        lex.forms[(lemma, "")] = fresh(1, 2)
    for lemma in meanings.nouns:
        stem = fresh(2, 3, ("", plural))
        lex.forms[(lemma, NOUN_SG)], lex.forms[(lemma, NOUN_PL)] = stem, stem + plural
    for lemma in meanings.transitive + meanings.intransitive:
        stem = fresh(2, 2, verb_affixes)
        for inflection, suffix in zip((PRES_SG, PRES_PL, PAST), verb_affixes):
            lex.forms[(lemma, inflection)] = stem + suffix
    for lemma in meanings.adjectives + meanings.adverbs:
        lex.forms[(lemma, "")] = fresh(2, 3)
    # Drawn last, so adding them left every older form (and the NLI files) unchanged.
    for lemma in QUESTION_WORDS:
        lex.forms[(lemma, "")] = fresh(1, 1)
    return lex
