"""The synthetic languages: a script, a word order, and how a sentence tree becomes words.

`src` is the source language. Every other language renders the same meanings with its
own words (another script, so no word or character is shared with `src`) and, where its
`WordOrder` says so, in another order; its `LanguageSpec` also says whether inflections
are suffixes or prefixes and what share of its content words have a synonym. Rendering
goes through labelled constituents so the MultiNLI parse columns can be written for free.
"""
from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field
from typing import Union

from mmadapt.synth import lexicon as lx
from mmadapt.synth.grammar import Clause, NounPhrase, RelativeClause, Sentence


CLAUSE_ORDERS = ("SVO", "SOV", "VSO")


@dataclass(frozen=True)
class WordOrder:
    """Where a language puts each part; the defaults are the source language's order."""

    clause: str = "SVO"  # SVO | SOV | VSO
    adjective_after_noun: bool = False
    postpositions: bool = False
    negation_after_verb: bool = False
    relative_before_noun: bool = False
    cause_first: bool = False  # "[cause] because [effect]" instead of "[effect] because [cause]"
    # "dog the" / "big dog the": the determiner follows the noun and its adjective (relative clauses stay
    # where `relative_before_noun` puts them, outside that group)
    determiner_after_noun: bool = False

    def __post_init__(self):
        if self.clause not in CLAUSE_ORDERS:
            raise ValueError(f"word order clause must be one of {', '.join(CLAUSE_ORDERS)}; got {self.clause!r}")


@dataclass(frozen=True)
class LanguageSpec:
    """A named language: its code, a one-line description, script, word order and morphology.

    `morphology` is "suffix" (inflections glued after the stem, as in the source) or "prefix";
    `synonyms` is the share of content lemmas (nouns, verbs, adjectives, adverbs) with a second,
    synonymous stem, either used at random wherever the lemma occurs.
    """

    code: str
    description: str
    script: str
    order: WordOrder = field(default_factory=WordOrder)
    morphology: str = "suffix"
    synonyms: float = 0.0

    def __post_init__(self):
        if self.morphology not in lx.MORPHOLOGIES:
            raise ValueError(f"language {self.code!r}: morphology must be one of {', '.join(lx.MORPHOLOGIES)}; "
                             f"got {self.morphology!r}")
        if isinstance(self.synonyms, bool) or not isinstance(self.synonyms, (int, float)) \
                or not 0 <= self.synonyms <= 1:
            raise ValueError(f"language {self.code!r}: synonyms must be a share between 0 and 1; "
                             f"got {self.synonyms!r}")


SOURCE = "src"
BUILTIN_LANGUAGES: dict[str, LanguageSpec] = {
    spec.code: spec
    for spec in (
        LanguageSpec(
            "src",
            "source language: Latin-script words; SVO, adjective before noun, prepositions, "
            "negation before the verb, relative clause after the noun",
            "latin",
        ),
        LanguageSpec(
            "vo",
            "new vocabulary only: Greek-script words, the source language's grammar and word order",
            "greek",
        ),
        LanguageSpec(
            "wo",
            "new vocabulary and word order: Cyrillic-script words; verb-final (SOV), adjective after "
            "noun, postpositions, negation after the verb, relative clause before the noun, "
            "'because' clause first",
            "cyrillic",
            WordOrder("SOV", True, True, True, True, True),
        ),
        LanguageSpec(
            "na",
            "new vocabulary and one word-order change: Armenian-script words; adjective after the noun "
            "(as in French or Spanish), otherwise the source order",
            "armenian",
            WordOrder(adjective_after_noun=True),
        ),
        LanguageSpec(
            "vso",
            "new vocabulary and verb-initial order: Georgian-script words; VSO, adjective after noun, "
            "otherwise the source order",
            "georgian",
            WordOrder("VSO", adjective_after_noun=True),
        ),
        # One typological change each (plus the new words), so their effects can be told apart.
        LanguageSpec(
            "sov",
            "new vocabulary and verb-final order only: Hebrew-script words; SOV (object and modifiers "
            "before the verb, also in relative clauses), otherwise the source order",
            "hebrew",
            WordOrder("SOV"),
        ),
        LanguageSpec(
            "v1",
            "new vocabulary and verb-initial order only: Tifinagh-script words; VSO, otherwise the source order",
            "tifinagh",
            WordOrder("VSO"),
        ),
        LanguageSpec(
            "nd",
            "new vocabulary and determiners after the noun: Runic-script words; 'big dog the', otherwise "
            "the source order",
            "runic",
            WordOrder(determiner_after_noun=True),
        ),
        LanguageSpec(
            "pre",
            "new vocabulary and prefixing morphology: Ethiopic-script words; plural, agreement and past "
            "affixes glued before the stem, the source order",
            "ethiopic",
            morphology="prefix",
        ),
        LanguageSpec(
            "prewo",
            "prefixing morphology and the word order of 'wo': Devanagari-script words; affixes before the "
            "stem; SOV, adjective after noun, postpositions, negation after the verb, relative clause "
            "before the noun, 'because' clause first",
            "devanagari",
            WordOrder("SOV", True, True, True, True, True),
            morphology="prefix",
        ),
        LanguageSpec(
            "syn",
            "new vocabulary with synonyms: Ol Chiki-script words; 30% of the content words (nouns, verbs, "
            "adjectives, adverbs) have two synonymous stems used at random, the source order",
            "ol_chiki",
            synonyms=0.3,
        ),
    )
}

# A constituent: (label, children) for a phrase, (tag, word) for a word.
Node = tuple[str, Union[str, list["Node"]]]


@dataclass(frozen=True)
class Rendered:
    """A sentence as text plus the two parse strings of the MultiNLI format."""

    text: str
    binary_parse: str
    parse: str


class Language:
    """Renders sentence trees with one language's words and order."""

    def __init__(self, spec: LanguageSpec, lexicon: lx.Lexicon):
        self.spec = spec
        self.lexicon = lexicon
        self.order = spec.order
        # first form -> every form, for the words that have synonyms
        self._variants = {lexicon.forms[key]: lexicon.variants(*key) for key in lexicon.synonyms}

    @classmethod
    def build(cls, spec: LanguageSpec, meanings: lx.Meanings, seed: int) -> "Language":
        """The language `spec` describes, with the words `seed` gives it for `meanings`."""
        lexicon = lx.build_lexicon(spec.code, lx.SCRIPTS[spec.script], meanings, seed,
                                   morphology=spec.morphology, synonyms=spec.synonyms)
        return cls(spec, lexicon)

    @property
    def code(self) -> str:
        return self.spec.code

    def render(self, sentence: Sentence) -> Rendered:
        """The sentence as space-separated words and parse strings."""
        tree = ("ROOT", [self.sentence_node(sentence)])
        if self._variants:
            tree = _with_leaves(tree, iter(self.surface(leaves(tree))))
        return Rendered(" ".join(leaves(tree)), binary_parse(tree), ptb_parse(tree))

    def text(self, sentence: Sentence) -> str:
        """The sentence as space-separated words."""
        return " ".join(self.surface(leaves(self.sentence_node(sentence))))

    def surface(self, words: list[str]) -> list[str]:
        """A text's words (first forms, as the nodes hold them) with a synonym picked at random for each.

        The picks are seeded by the text's words as a multiset, so a text always reads the same and two
        texts with the same words (a paraphrase pair) use the same synonyms; without synonyms: `words`.
        """
        if not self._variants:
            return words
        counts = collections.Counter(w for w in words if w in self._variants)
        rng = random.Random(f"synonyms:{self.code}:{' '.join(sorted(words))}")
        picks = {w: [rng.choice(self._variants[w]) for _ in range(n)] for w, n in sorted(counts.items())}
        return [picks[w].pop() if w in picks else w for w in words]

    def sentence_node(self, sentence: Sentence) -> Node:
        clauses = [self.clause_node(c) for c in sentence.clauses]
        if sentence.conj is None:
            return clauses[0]
        conj = (("CC" if sentence.conj == lx.AND else "IN"), self.word(sentence.conj))
        if sentence.conj == lx.AND:  # two or (clausal family) more conjuncts
            return ("S", [part for c in clauses for part in (conj, c)][1:])
        first, second = clauses
        if sentence.conj == lx.BECAUSE and self.order.cause_first:
            return ("S", [("SBAR", [second, conj]), first])
        if sentence.conj == lx.BECAUSE:
            return ("S", [first, ("SBAR", [conj, second])])

    def clause_node(self, clause: Clause) -> Node:
        subj = self.np_node(clause.subj, past=clause.past)
        verb = self.verb_leaf(clause.verb, clause.subj.plural, clause.past)
        verb_group = [verb]
        if clause.neg:
            neg = ("RB", self.word(lx.NEG))
            verb_group = [verb, neg] if self.order.negation_after_verb else [neg, verb]
        rest = []
        if clause.obj is not None:
            rest.append(self.np_node(clause.obj, past=clause.past))
        if clause.pp is not None:
            rest.append(self.pp_node(*clause.pp))
        if clause.adv is not None:
            rest.append(("RB", self.word(clause.adv)))
        if self.order.clause == "SOV":
            return ("S", [subj, ("VP", rest + verb_group)])
        if self.order.clause == "VSO":
            return ("S", verb_group + [subj, ("VP", rest)] if rest else verb_group + [subj])
        return ("S", [subj, ("VP", verb_group + rest)])

    def np_node(self, np: NounPhrase, *, past: bool = False) -> Node:
        if np.noun in lx.QUESTION_WORDS:
            # A question word is the whole noun phrase, left in place (questions do not move it);
            # `np.plural` still sets the verb's agreement.
            return ("NP", [("WP", self.word(np.noun))])
        det = {
            (True, False): lx.DET_DEF_SG,
            (True, True): lx.DET_DEF_PL,
            (False, False): lx.DET_INDEF_SG,
            (False, True): lx.DET_INDEF_PL,
        }[(np.definite, np.plural)]
        noun = ("NNS" if np.plural else "NN", self.word(np.noun, lx.NOUN_PL if np.plural else lx.NOUN_SG))
        head = [noun]
        if np.adj is not None:
            adj = ("JJ", self.word(np.adj))
            head = [noun, adj] if self.order.adjective_after_noun else [adj, noun]
        rel = [] if np.rel is None else [self.relative_node(np.rel, plural=np.plural, past=past)]
        det_node: Node = ("DT", self.word(det))
        if self.order.determiner_after_noun:
            group = head + [det_node]
            return ("NP", rel + group if self.order.relative_before_noun else group + rel)
        if self.order.relative_before_noun:
            return ("NP", [det_node] + rel + head)
        return ("NP", [det_node] + head + rel)

    def relative_node(self, rel: RelativeClause, *, plural: bool, past: bool) -> Node:
        # The head noun is the relative clause's subject, so the verb agrees with it.
        verb = self.verb_leaf(rel.verb, plural, past)
        if rel.neg:
            neg = ("RB", self.word(lx.NEG))
            verb = ("VP", [verb, neg] if self.order.negation_after_verb else [neg, verb])
        body = [verb] if rel.obj is None else [verb, self.np_node(rel.obj, past=past)]
        if self.order.clause == "SOV":
            body = body[::-1]
        marker = ("WDT", self.word(lx.REL))
        return ("SBAR", body + [marker] if self.order.relative_before_noun else [marker] + body)

    def pp_node(self, prep: str, np: NounPhrase) -> Node:
        adposition = ("IN", self.word(prep))
        obj = self.np_node(np)
        return ("PP", [obj, adposition] if self.order.postpositions else [adposition, obj])

    def verb_leaf(self, verb: str, plural: bool, past: bool) -> Node:
        if past:
            return ("VBD", self.word(verb, lx.PAST))
        return ("VBP", self.word(verb, lx.PRES_PL)) if plural else ("VBZ", self.word(verb, lx.PRES_SG))

    def word(self, lemma: str, inflection: str = "") -> str:
        return self.lexicon.form(lemma, inflection)


def leaves(node: Node) -> list[str]:
    """The words of a constituent, in order."""
    label, content = node
    if isinstance(content, str):
        return [content]
    return [w for child in content for w in leaves(child)]


def _with_leaves(node: Node, words) -> Node:
    """`node` with its words replaced, in order, by the next ones of the iterator `words`."""
    label, content = node
    if isinstance(content, str):
        return (label, next(words))
    return (label, [_with_leaves(child, words) for child in content])


def binary_parse(node: Node) -> str:
    """MultiNLI's unlabelled binary bracketing, phrases of 3+ parts right-branching."""
    label, content = node
    if isinstance(content, str):
        return content
    parts = [binary_parse(child) for child in content]
    while len(parts) > 2:
        parts[-2:] = [f"( {parts[-2]} {parts[-1]} )"]
    return parts[0] if len(parts) == 1 else f"( {parts[0]} {parts[1]} )"


def ptb_parse(node: Node) -> str:
    """Penn-Treebank-style labelled bracketing, as in MultiNLI's `sentence1_parse`."""
    label, content = node
    if isinstance(content, str):
        return f"({label} {content})"
    return f"({label} {' '.join(ptb_parse(child) for child in content)})"
