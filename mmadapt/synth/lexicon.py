"""The synthetic languages' shared meanings (lemmas) and each language's word forms.

Meanings are language-independent lemma ids with the relations the tasks rely on:
noun classes with a hypernym ("animal") over hyponyms, antonym pairs of verbs and
adjectives, and which object classes a transitive verb takes. Every language gives each
(lemma, inflection) its own invented surface string drawn from that language's script,
so the map from source forms to a new language's forms is a bijection (one-to-many where a
language has synonyms) and two scripts share no characters. Inflections are affixes glued to
the stem: suffixes by default, prefixes in a language with prefixing morphology.
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
MORPHOLOGIES = ("suffix", "prefix")

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
    # Added later, for more new languages. Every letter is one code point, a letter (no combining
    # mark: niqqud, fili or vowel signs are left out), and unchanged by NFKC, NFD and lower-casing,
    # so tokenizer normalisation (SentencePiece's nmt_nfkc, accent stripping) keeps the words whole.
    # Abjads and syllabaries have no vowel letters: some letters stand in for the vowels.
    "hebrew": Script("hebrew", "בגדזחטכלמנספצקרשת", "אהויע"),  # no final forms
    "tifinagh": Script("tifinagh", "ⴱⴳⴷⴹⴼⴽⵀⵃⵄⵅⵇⵊⵍⵎⵏⵔⵕⵖⵙⵚⵛⵜⵟⵡⵢⵣⵥ", "ⴰⴻⵉⵓ"),
    "runic": Script("runic", "ᚠᚦᚱᚲᚷᚹᚺᚾᛃᛇᛈᛉᛊᛏᛒᛗᛚᛜᛞ", "ᚨᛖᛁᛟᚢ"),
    "ethiopic": Script("ethiopic", "ለሐመረሰሸቀበተቸነኘከወዘዠየደጀገጠጨፈ", "አኡኢኤእኦ"),
    "devanagari": Script("devanagari", "कगजटडतदनपबमयरलवसह", "अइउएओ"),
    "ol_chiki": Script("ol_chiki", "ᱛᱜᱝᱞᱠᱡᱢᱣᱥᱦᱧᱨᱪᱫᱬᱭᱯᱰᱱᱲᱴᱵᱶᱷ", "ᱚᱟᱤᱩᱮᱳ"),
    "nko": Script("nko", "ߓߔߕߖߗߘߙߚߛߜߝߞߟߡߢߣߤߥߦ", "ߊߋߌߍߎߏߐ"),
    "ogham": Script("ogham", "ᚁᚂᚃᚄᚅᚆᚇᚈᚉᚊᚋᚌᚍᚎᚏ", "ᚐᚑᚒᚓᚔ"),
    "arabic": Script("arabic", "بتثجحخدذرزسشصضطظعغفقكلمنه", "اوي"),
}


@dataclass(frozen=True)
class Inventory:
    """How many lemmas of each kind the meanings hold; the defaults are the source grammar's."""

    animate_classes: int = ANIMATE_CLASSES
    thing_classes: int = THING_CLASSES
    hyponyms_per_class: int = HYPONYMS_PER_CLASS
    transitive_pairs: int = TRANSITIVE_PAIRS
    intransitive_pairs: int = INTRANSITIVE_PAIRS
    adjective_pairs: int = ADJECTIVE_PAIRS
    adverbs: int = ADVERBS
    prepositions: int = PREPOSITIONS


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
    variant: int = 0  # the grammar variant (`variants.py`); 0 is the source grammar

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


def build_meanings(seed: int, inventory: Inventory | None = None, variant: int = 0) -> Meanings:
    """The lemma inventory; only which object classes each verb takes depends on `seed`.

    `inventory` sets the counts (default: the source grammar's); `variant` (see `variants.py`)
    names the grammar variant they come from and gives the draws their own random stream.
    """
    inv = inventory or Inventory()
    rng = random.Random(f"{seed}:meanings" if not variant else f"{seed}:meanings:{variant}")

    def classes(prefix: str, count: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple(
            (f"{prefix}{c}", tuple(f"{prefix}{c}.{i}" for i in range(inv.hyponyms_per_class))) for c in range(count)
        )

    def pairs(prefix: str, count: int) -> tuple[str, ...]:
        return tuple(f"{prefix}{k}{side}" for k in range(count) for side in "ab")

    animate, things = classes("n_an", inv.animate_classes), classes("n_th", inv.thing_classes)
    transitive, intransitive = pairs("vt", inv.transitive_pairs), pairs("vi", inv.intransitive_pairs)
    adjectives = pairs("adj", inv.adjective_pairs)
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
        adverbs=tuple(f"adv{k}" for k in range(inv.adverbs)),
        prepositions=tuple(f"p{k}" for k in range(inv.prepositions)),
        antonym=antonym,
        hypernym=hypernym,
        verb_objects=verb_objects,
        seed=seed,
        variant=variant,
    )


@dataclass
class Lexicon:
    """One language's surface form for every (lemma, inflection), and any synonyms of it."""

    language: str
    script: Script
    forms: dict[tuple[str, str], str] = field(default_factory=dict)
    # (lemma, inflection) -> its other forms, for the lemmas that have a synonym
    synonyms: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    def form(self, lemma: str, inflection: str = "") -> str:
        """The word for `lemma` with `inflection` ("" for uninflected words); the first one if it has synonyms."""
        return self.forms[(lemma, inflection)]

    def variants(self, lemma: str, inflection: str = "") -> tuple[str, ...]:
        """Every word for `lemma` with `inflection`: `form` first, then its synonyms."""
        return (self.forms[(lemma, inflection)], *self.synonyms.get((lemma, inflection), ()))

    def words(self) -> list[str]:
        """Every word form of the language (synonyms included), sorted."""
        return sorted({w for key in self.forms for w in self.variants(*key)})

    def analyse(self) -> dict[str, tuple[str, str]]:
        """Word form -> (lemma, inflection); forms (synonyms too) are unique, so this is the inverse."""
        return {word: key for key in self.forms for word in self.variants(*key)}


def build_lexicon(language: str, script: Script, meanings: Meanings, seed: int, *,
                  morphology: str = "suffix", synonyms: float = 0.0) -> Lexicon:
    """Invent the words of `language`: random syllables of `script`, unique per form.

    Inflection is an affix per language (plural noun affix, agreement and past affixes on
    verbs) glued to the stem, after it (`morphology="suffix"`) or before it ("prefix"), so
    the languages have regular morphology a tokenizer can discover. A `synonyms` share of
    the content lemmas (nouns, verbs, adjectives, adverbs) gets a second stem with the same
    affixes; every other form is the same as without synonyms.
    """
    if morphology not in MORPHOLOGIES:
        raise ValueError(f"morphology must be one of {', '.join(MORPHOLOGIES)}; got {morphology!r}")
    rng = random.Random(f"{seed}:lexicon:{language}")
    taken: set[str] = set()

    def glue(stem: str, affix: str) -> str:
        return affix + stem if morphology == "prefix" else stem + affix

    def syllable() -> str:
        coda = rng.choice(script.consonants) if rng.random() < 0.3 else ""
        return rng.choice(script.consonants) + rng.choice(script.vowels) + coda

    def fresh(syllables: tuple[int, int], affixes: dict[str, str]) -> dict[str, str]:
        # A stem whose every inflected form is still unused: inflection -> form.
        while True:
            stem = "".join(syllable() for _ in range(rng.randint(*syllables)))
            forms = {inflection: glue(stem, a) for inflection, a in affixes.items()}
            if all(f not in taken for f in forms.values()) and len(set(forms.values())) == len(forms):
                taken.update(forms.values())
                return forms

    def affix() -> str:
        return rng.choice(script.vowels) + rng.choice(script.consonants)

    plural = affix()
    verb_affixes = (affix(), affix(), affix())
    while len(set(verb_affixes)) < 3:
        verb_affixes = (affix(), affix(), affix())
    bare = {"": ""}
    groups = (  # lemmas, syllables per stem, inflection -> affix; synonyms only for content words
        (FUNCTION_WORDS, (1, 1), bare, False),
        (meanings.prepositions, (1, 2), bare, False),
        (meanings.nouns, (2, 3), {NOUN_SG: "", NOUN_PL: plural}, True),
        (meanings.transitive + meanings.intransitive, (2, 2), dict(zip((PRES_SG, PRES_PL, PAST), verb_affixes)), True),
        (meanings.adjectives + meanings.adverbs, (2, 3), bare, True),
        # Drawn last, so adding them left every older form (and the NLI files) unchanged.
        (QUESTION_WORDS, (1, 1), bare, False),
    )
    lex = Lexicon(language, script)
    for lemmas, syllables, affixes, _ in groups:
        for lemma in lemmas:
            lex.forms.update(((lemma, i), f) for i, f in fresh(syllables, affixes).items())
    # Drawn after every first form (from the same stream), so those stay as without synonyms.
    chosen = _synonym_lemmas([lemma for lemmas, *_, content in groups if content for lemma in lemmas],
                             synonyms, f"{seed}:synonyms:{language}")
    for lemmas, syllables, affixes, _ in groups:
        for lemma in (lemma for lemma in lemmas if lemma in chosen):
            lex.synonyms.update(((lemma, i), (f,)) for i, f in fresh(syllables, affixes).items())
    return lex


def _synonym_lemmas(content: list[str], share: float, stream: str) -> set[str]:
    """`share` of the `content` lemmas (rounded), drawn from the random stream `stream`."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"synonyms must be a share between 0 and 1; got {share!r}")
    return set(random.Random(stream).sample(content, round(share * len(content)))) if share else set()


def dictionary_pairs(source: Lexicon, target: Lexicon) -> list[tuple[str, str]]:
    """(source word, target word) for every form of every (lemma, inflection), synonyms included, sorted."""
    return sorted({(s, t) for key in source.forms for s in source.variants(*key) for t in target.variants(*key)})


def shared_lemmas(meanings: "Meanings", share: float, seed: int) -> list[str]:
    """`share` of the noun lemmas (rounded), drawn from the seed: the ones every new language writes as the
    source does, as real language pairs share names and loanwords."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"shared_words must be a share between 0 and 1; got {share!r}")
    return sorted(random.Random(f"{seed}:shared_words").sample(list(meanings.nouns), round(share * len(meanings.nouns))))


def with_shared_forms(target: Lexicon, source: Lexicon, lemmas: list[str]) -> Lexicon:
    """`target` with the source's forms (and no synonyms) for every inflection of `lemmas`.

    A lemma whose source form `target` already uses for another meaning (two languages of one
    script) keeps its own forms, so forms stay unique.
    """
    lex = Lexicon(target.language, target.script, dict(target.forms), dict(target.synonyms))
    chosen = set(lemmas)
    for lemma in sorted(chosen):
        keys = [key for key in source.forms if key[0] == lemma]
        others = {w for key in target.forms if key[0] != lemma for w in target.variants(*key)}
        if any(source.forms[key] in others for key in keys):
            continue
        for key in keys:
            lex.forms[key] = source.forms[key]
            lex.synonyms.pop(key, None)
    return lex
