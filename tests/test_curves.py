"""Compute-to-reach ratios from score curves, checked against hand-computed values."""
from __future__ import annotations

import pytest

from mmadapt.pipeline.curves import compute_to_reach, first_reaching, goal_line, grid_shape, plot_curves, reach_table


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


STEP0_ROWS = [
    {"strategy": "full", "task": "xnli", "language": "vo", "target_score": 0.60,
     "curve": curve((0, 0, 0.0, 0.40), (100, 4e12, 20.0, 0.60))},
    {"strategy": "minijoint", "task": "xnli", "language": "vo", "target_score": 0.59,
     "curve": curve((0, 0, 0.0, 0.58), (100, 1e12, 8.0, 0.59))},
]


def test_a_goal_met_at_step_0_has_undefined_ratios_and_the_table_says_initial_embeddings():
    entries = {e["strategy"]: e for e in compute_to_reach(STEP0_ROWS, baseline="full")}
    assert entries["full"]["reached_at_step"] == 100 and entries["full"]["flops_ratio"] == pytest.approx(1.0)
    assert entries["minijoint"]["reached_at_step"] == 0
    assert entries["minijoint"]["flops_ratio"] is None and entries["minijoint"]["seconds_ratio"] is None
    row = reach_table(list(entries.values()), "full").splitlines()[-1]
    assert row.count("reached at step 0 (initial embeddings)") == 2 and "0.00" not in row


def test_reached_at_step_is_the_first_reaching_step_or_none():
    entries = {e["strategy"]: e for e in compute_to_reach(ROWS, baseline="full")}
    assert (entries["full"]["reached_at_step"], entries["minijoint"]["reached_at_step"],
            entries["minipost"]["reached_at_step"]) == (200, 200, None)


def test_a_baseline_that_meets_the_goal_at_step_0_leaves_every_ratio_undefined():
    rows = [dict(STEP0_ROWS[0], curve=curve((0, 0, 0.0, 0.60))),
            dict(STEP0_ROWS[1], curve=curve((0, 0, 0.0, 0.40), (100, 1e12, 8.0, 0.59)))]
    entries = {e["strategy"]: e for e in compute_to_reach(rows, baseline="full")}
    assert entries["full"]["reached_at_step"] == 0 and entries["minijoint"]["reached_at_step"] == 100
    assert entries["minijoint"]["flops_ratio"] is None and entries["minijoint"]["seconds_ratio"] is None
    assert "undefined (full reached at step 0 (initial embeddings))" in reach_table(list(entries.values()), "full")


def test_six_panels_make_a_two_by_three_grid_and_the_png_is_not_one_long_row(tmp_path):
    assert grid_shape(6) == (2, 3) and grid_shape(2) == (1, 2) and grid_shape(4) == (2, 3)
    rows = [dict(r, language=lang, control_score=0.33) for lang in "abcdef" for r in ROWS]
    import matplotlib.image
    height, width = matplotlib.image.imread(plot_curves(rows, tmp_path / "c.png", baseline="full")).shape[:2]
    assert width < 3 * height


def test_the_goal_line_is_95_percent_of_the_baselines_final_score_and_absent_without_it():
    assert goal_line(ROWS, "xnli", "vo", "full") == pytest.approx(0.57)
    assert goal_line(ROWS, "xnli", "vo", "absent") is None
