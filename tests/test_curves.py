"""Compute-to-reach ratios from score curves, checked against hand-computed values."""
from __future__ import annotations

import pytest

from mmadapt.pipeline.curves import compute_to_reach, first_reaching


def curve(*points):
    return [{"step": s, "adapt_flops": f, "adapt_seconds": t, "target_score": y} for s, f, t, y in points]


ROWS = [
    {"strategy": "full", "task": "xnli", "language": "vo", "target_score": 0.60,
     "curve": curve((100, 4e12, 20.0, 0.40), (200, 8e12, 40.0, 0.58), (300, 12e12, 60.0, 0.60))},
    {"strategy": "minijoint", "task": "xnli", "language": "vo", "target_score": 0.59,
     "curve": curve((100, 1e12, 8.0, 0.50), (200, 2e12, 16.0, 0.571), (300, 3e12, 24.0, 0.59))},
    {"strategy": "minipost", "task": "xnli", "language": "vo", "target_score": 0.50,
     "curve": curve((100, 2e12, 10.0, 0.45), (300, 6e12, 30.0, 0.50))},
]


def test_first_reaching_takes_the_earliest_step_at_or_above_the_score():
    assert first_reaching(ROWS[1]["curve"], 0.5)["step"] == 100
    assert first_reaching(ROWS[1]["curve"], 0.6) is None


def test_ratios_compare_the_compute_each_strategy_needs_to_reach_95_percent_of_full():
    entries = {e["strategy"]: e for e in compute_to_reach(ROWS, baseline="full")}
    # goal = 0.95 x 0.60 = 0.57: full reaches it at step 200 (8e12, 40 s), minijoint at step 200 (2e12, 16 s)
    assert entries["full"]["goal_score"] == pytest.approx(0.57)
    assert entries["full"]["flops_ratio"] == pytest.approx(1.0)
    assert entries["minijoint"]["adapt_flops"] == 2e12
    assert entries["minijoint"]["flops_ratio"] == pytest.approx(4.0)
    assert entries["minijoint"]["seconds_ratio"] == pytest.approx(2.5)
    assert entries["minipost"]["adapt_flops"] is None and entries["minipost"]["flops_ratio"] is None
