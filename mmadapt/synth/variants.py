"""Grammar variants: from one seed, other source grammars, so that no result fits one grammar only.

Variant 0 is the source grammar: `lexicon.Inventory()` and `grammar.GrammarWeights()`.
Variant k > 0 draws, from its own random stream of the seed, the inventory sizes (noun
classes, hyponyms per class, verb and adjective pairs, adverbs, prepositions) within
`INVENTORY_RANGES` and every construction weight within `WEIGHT_RANGES`. The ranges hold
the source grammar's values and stay where every task still finds what it needs (enough
classes and verbs for distinct QA answers, enough partners for the preferences of
`usage.py`). The same seed and variant always give the same grammar.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from mmadapt.synth.grammar import GrammarWeights
from mmadapt.synth.lexicon import Inventory

# Inclusive ranges; the source grammar's values (6, 6, 6, 12, 6, 12, 12, 8) lie inside.
INVENTORY_RANGES = {
    "animate_classes": (4, 8),
    "thing_classes": (4, 8),
    "hyponyms_per_class": (4, 8),
    "transitive_pairs": (8, 16),
    "intransitive_pairs": (4, 8),
    "adjective_pairs": (8, 16),
    "adverbs": (8, 16),
    "prepositions": (5, 10),
}
# Uniform ranges, each around the source grammar's weight.
WEIGHT_RANGES = {
    "two_clauses": (0.1, 0.4),
    "because": (0.2, 0.6),
    "transitive": (0.5, 0.85),
    "plural": (0.25, 0.55),
    "definite": (0.4, 0.8),
    "adjective": (0.15, 0.45),
    "relative": (0.05, 0.25),
    "negation": (0.05, 0.25),
    "past": (0.15, 0.45),
    "adverb": (0.1, 0.4),
    "pp": (0.1, 0.4),
    "hypernym": (0.1, 0.3),
}


@dataclass(frozen=True)
class GrammarVariant:
    """A source grammar: how many lemmas of each kind, and how often each construction appears."""

    variant: int = 0
    inventory: Inventory = field(default_factory=Inventory)
    weights: GrammarWeights = field(default_factory=GrammarWeights)

    def as_dict(self) -> dict:
        """The variant for the manifest."""
        return {"variant": self.variant, "inventory": asdict(self.inventory), "weights": asdict(self.weights)}


def grammar_variant(seed: int, variant: int | None = 0) -> GrammarVariant:
    """Variant `variant` of the source grammar for `seed` (0 or None: the source grammar itself)."""
    if variant is None or variant == 0:
        return GrammarVariant()
    if isinstance(variant, bool) or not isinstance(variant, int) or variant < 0:
        raise ValueError(f"grammar_variant must be a non-negative integer (0: the source grammar); got {variant!r}")
    rng = random.Random(f"{seed}:grammar-variant:{variant}")
    inventory = Inventory(**{name: rng.randint(lo, hi) for name, (lo, hi) in INVENTORY_RANGES.items()})
    # Rounded so the manifest shows them plainly; the grammar uses exactly what it shows.
    weights = GrammarWeights(**{name: round(rng.uniform(lo, hi), 3) for name, (lo, hi) in WEIGHT_RANGES.items()})
    return GrammarVariant(variant, inventory, weights)
