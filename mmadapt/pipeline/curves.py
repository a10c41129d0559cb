"""Target score against adapt-stage compute: the paper's figure and its "compute to reach" ratio.

Each report row may carry a `curve`: the target score of the adapt stage's embedding
snapshots (`adapt.snapshot_every`), with the analytic FLOPs and seconds spent to reach each.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

CURVE_PNG = "adapt_curve.png"
#: the share of the baseline's final target score a strategy must reach (the benchmark's 95%)
REACH_FRACTION = 0.95


def first_reaching(curve: list[dict[str, Any]], score: float) -> dict[str, Any] | None:
    """The earliest curve point whose target score is at least `score` (None if none is)."""
    return next((p for p in sorted(curve, key=lambda p: p["step"]) if p["target_score"] >= score), None)


def compute_to_reach(rows: list[dict[str, Any]], baseline: str,
                     fraction: float = REACH_FRACTION) -> list[dict[str, Any]]:
    """Per (task, language, strategy): FLOPs and seconds to reach `fraction` of the baseline's final score.

    The baseline's own cost is measured on its curve the same way, so `flops_ratio` is
    baseline FLOPs / strategy FLOPs to reach the same score (above 1: the strategy is cheaper).
    Each entry's `reached_at_step` is the step of its first reaching point (None if never).
    A strategy that never reaches the score within its curve gets None for its cost and ratios;
    the ratios are also None (undefined) when either reaching point is step 0, the initial embeddings.
    """
    out = []
    for base in (r for r in rows if r["strategy"] == baseline and r.get("curve")):
        goal = fraction * base["target_score"]
        base_point = first_reaching(base["curve"], goal)
        for row in rows:
            if (row["task"], row["language"]) != (base["task"], base["language"]) or not row.get("curve"):
                continue
            point = first_reaching(row["curve"], goal)
            entry = {"strategy": row["strategy"], "task": row["task"], "language": row["language"],
                     "goal_score": goal, "fraction_of_full": fraction, "adapt_flops": None, "adapt_seconds": None,
                     "flops_ratio": None, "seconds_ratio": None,
                     "reached_at_step": None if point is None else point["step"]}
            if point is not None:
                entry.update(adapt_flops=point["adapt_flops"], adapt_seconds=point["adapt_seconds"])
                entry.update(_ratios(base_point, point))
            out.append(entry)
    return out


def _ratios(base_point: dict[str, Any] | None, point: dict[str, Any]) -> dict[str, float]:
    """Baseline/strategy FLOPs and seconds ratios; empty when undefined (baseline never reached, or a step-0 point)."""
    if base_point is None or 0 in (base_point["step"], point["step"]):
        return {}
    return {"flops_ratio": base_point["adapt_flops"] / max(point["adapt_flops"], 1),
            "seconds_ratio": base_point["adapt_seconds"] / max(point["adapt_seconds"], 1e-9)}


def reach_table(entries: list[dict[str, Any]], baseline: str) -> str:
    """A Markdown table of `compute_to_reach`; a goal met by the initial embeddings says so."""
    def cell(value: Any, fmt: str) -> str:
        return "not reached" if value is None else format(value, fmt)

    base_at_0 = {(e["task"], e["language"]) for e in entries
                 if e["strategy"] == baseline and e.get("reached_at_step") == 0}

    def ratio(e: dict[str, Any], key: str) -> str:
        if e.get("reached_at_step") == 0:
            return "reached at step 0 (initial embeddings)"
        if (e["task"], e["language"]) in base_at_0:
            return f"undefined ({baseline} reached at step 0 (initial embeddings))"
        return cell(e[key], ".2f")

    lines = [f"| strategy | task | language | goal score | adapt FLOPs | adapt seconds | {baseline}/strategy FLOPs | "
             f"{baseline}/strategy seconds |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {e['strategy']} | {e['task']} | {e['language']} | {e['goal_score']:.3f} | "
              f"{cell(e['adapt_flops'], '.3g')} | {cell(e['adapt_seconds'], '.1f')} | {ratio(e, 'flops_ratio')} | "
              f"{ratio(e, 'seconds_ratio')} |" for e in entries]
    return "\n".join(lines)


#: panels per row of `adapt_curve.png`
PANELS_PER_ROW = 3


def grid_shape(panels: int, per_row: int = PANELS_PER_ROW) -> tuple[int, int]:
    """(rows, columns) of a figure with `panels` panels, at most `per_row` a row."""
    columns = min(panels, per_row)
    return -(-panels // columns), columns


def goal_line(rows: list[dict[str, Any]], task: str, language: str, baseline: str,
              fraction: float = REACH_FRACTION) -> float | None:
    """The reach goal of a panel: `fraction` of the baseline's final target score (None if it did not run)."""
    base = next((r for r in rows if (r["task"], r["language"], r["strategy"]) == (task, language, baseline)), None)
    return None if base is None else fraction * base["target_score"]


def plot_curves(rows: list[dict[str, Any]], path: Path, baseline: str) -> Path | None:
    """A grid of panels, one per (task, language): target score against cumulative adapt FLOPs, a line per
    strategy, the untrained embeddings' score and the reach goal (95% of `baseline`'s final score)."""
    panels = sorted({(r["task"], r["language"]) for r in rows if r.get("curve")})
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on cluster nodes
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter

    n_rows, n_cols = grid_shape(len(panels))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.5 * n_cols, 3.6 * n_rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (task, language) in zip(axes.flat, panels):
        for row in (r for r in rows if (r["task"], r["language"]) == (task, language) and r.get("curve")):
            # a log axis has no 0: the initial embeddings of a free initialiser (`random`) cost nothing
            curve = sorted((p for p in row["curve"] if p["adapt_flops"] > 0), key=lambda p: p["step"])
            ax.plot([p["adapt_flops"] for p in curve], [p["target_score"] for p in curve], marker="o",
                    markersize=3, label=row["strategy"])
        control = next(r["control_score"] for r in rows if (r["task"], r["language"]) == (task, language))
        ax.axhline(control, color="grey", linestyle=":", linewidth=1, label="untrained embeddings")
        goal = goal_line(rows, task, language, baseline)
        if goal is not None:
            ax.axhline(goal, color="red", linestyle="--", linewidth=1, label=f"{REACH_FRACTION:.0%} of {baseline}")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, numticks=5))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{task}, {language}")
        ax.set_xlabel("adapt-stage FLOPs (analytic, cumulative)")
        ax.set_ylabel("target score")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path
