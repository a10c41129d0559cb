"""The synthetic languages: a script, a word order, and how a sentence tree becomes words.

`src` is the source language. Every other language renders the same meanings with its
own words (another script, so no word or character is shared with `src`) and, where its
`WordOrder` says so, in another order. Rendering goes through labelled constituents so
the MultiNLI parse columns can be written for free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from mmadapt.synth import lexicon as lx
from mmadapt.synth.grammar import Clause, NounPhrase, RelativeClause, Sentence


@dataclass(frozen=True)
class WordOrder:
    """Where a language puts each part; the defaults are the source language's order."""

    clause: str = "SVO"  # SVO | SOV | VSO
    adjective_after_noun: bool = False
    postpositions: bool = False
    negation_after_verb: bool = False
    relative_before_noun: bool = False
    cause_first: bool = False  # "[cause] because [effect]" instead of "[effect] because [cause]"


@dataclass(frozen=True)
class LanguageSpec:
    """A named language: its code, a one-line description, script and word order."""

    code: str
    description: str
    script: str
    order: WordOrder = field(default_factory=WordOrder)


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

    @property
    def code(self) -> str:
        return self.spec.code

    def render(self, sentence: Sentence) -> Rendered:
        """The sentence as space-separated words and parse strings."""
        tree = ("ROOT", [self.sentence_node(sentence)])
        return Rendered(" ".join(leaves(tree)), binary_parse(tree), ptb_parse(tree))

    def text(self, sentence: Sentence) -> str:
        """The sentence as space-separated words."""
        return " ".join(leaves(self.sentence_node(sentence)))

    def sentence_node(self, sentence: Sentence) -> Node:
        clauses = [self.clause_node(c) for c in sentence.clauses]
        if sentence.conj is None:
            return clauses[0]
        conj = (("CC" if sentence.conj == lx.AND else "IN"), self.word(sentence.conj))
        first, second = clauses
        if sentence.conj == lx.BECAUSE and self.order.cause_first:
            return ("S", [("SBAR", [second, conj]), first])
        if sentence.conj == lx.BECAUSE:
            return ("S", [first, ("SBAR", [conj, second])])
        return ("S", [first, conj, second])

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
        children: list[Node] = [("DT", self.word(det))]
        if np.rel is None:
            return ("NP", children + head)
        rel = self.relative_node(np.rel, plural=np.plural, past=past)
        if self.order.relative_before_noun:
            return ("NP", children + [rel] + head)
        return ("NP", children + head + [rel])

    def relative_node(self, rel: RelativeClause, *, plural: bool, past: bool) -> Node:
        # The head noun is the relative clause's subject, so the verb agrees with it.
        verb = self.verb_leaf(rel.verb, plural, past)
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
