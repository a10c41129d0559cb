"""Built-in layer-selection rules: which big-model layers a mini-model takes.

A rule gets the big model's layer count, the recipe's `strategy.k` and its own section
(`strategy.layer_rule`), and returns `k` increasing 0-based layer indices. docs/layer_rules.md
shows how a third-party package adds one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mmadapt.api import LayerRule, MmadaptError, hookimpl


class FirstK(LayerRule):
    """The bottom `k` layers: 0, 1, ..., k-1 (Marchisio et al. 2023)."""

    description = "the bottom k layers 0..k-1 (the paper's choice)"

    def select(self, num_layers: int, k: int, options) -> list[int]:
        return list(range(k))


class EveryNth(LayerRule):
    """Every `n`-th layer from the bottom: n-1, 2n-1, ..., kn-1 (needs k·n <= layers)."""

    @dataclass
    class Options:
        #: the stride: mini layer i is big layer (i+1)·n - 1
        n: int = field(default=2, metadata={"min": 1})

    description = "every n-th layer from the bottom: n-1, 2n-1, ..., kn-1 (strategy.layer_rule.n, default 2)"

    def select(self, num_layers: int, k: int, options) -> list[int]:
        n = options.n
        if n < 1:
            raise MmadaptError(f"strategy.layer_rule.n must be at least 1, got {n}")
        if k * n > num_layers:
            raise MmadaptError(f"strategy.layer_rule: every_nth with n={n} and k={k} needs {k * n} layers but the "
                               f"big model has {num_layers}; lower n or strategy.k")
        return [(i + 1) * n - 1 for i in range(k)]


@hookimpl
def mmadapt_register_layer_rules(registry):
    registry.add("first_k", FirstK())
    registry.add("every_nth", EveryNth())
