"""The run's report: a table on stdout, `report.md` and `report.json` in output_dir.

`report.json` holds `{"rows": [...]}`, one row per (strategy, task, language), with at least
strategy, task, language, source_score, target_score, control_score, adapt_steps,
adapt_seconds and adapt_flops; scores are fractions in [0, 1]. With a bilingual dictionary for the language
(`languages.<code>.dictionary`) rows also carry `alignment_at_1` (see `mmadapt.pipeline.diagnostics.alignment`), and
each curve point its snapshot's. Other tools read it: keep these names.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmadapt.files.atomic import write_text_atomic
from mmadapt.pipeline.curves import CURVE_PNG, REACH_FRACTION, compute_to_reach, plot_curves, reach_table
from mmadapt.pipeline.diagnostics.collapse import collapse_table

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
COLUMNS = ("strategy", "task", "language", "source_score", "target_score", "control_score", "alignment_at_1",
           "adapt_steps", "adapt_seconds", "adapt_flops")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 1e4 else f"{value:.3g}"
    if isinstance(value, int) and value >= 1e6:
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the report's main columns."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def restart_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of `adapt.restart`'s probe per strategy and language."""
    lines = ["| strategy | task | language | probe step | source kappa | restarted | probe FLOPs | abandoned FLOPs |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        probe = row["adapt_restart"]
        lines.append("| " + " | ".join(_cell(value) for value in (
            row["strategy"], row["task"], row["language"], probe["at_step"], probe["source_kappa"],
            "YES" if probe["restarted"] else "no", probe["probe_flops"] or None, probe["abandoned_flops"] or None)) + " |")
    return "\n".join(lines)


def write_report(output_dir: Path, rows: list[dict[str, Any]], baseline: str) -> tuple[Path, Path]:
    """Write report.json and report.md atomically (plus the score-vs-compute PNG); return their paths.

    With adapt snapshots (`adapt.snapshot_every`) the rows carry curves: the report then draws
    them (`adapt_curve.png`, embedded in report.md) and adds `compute_to_reach`, each
    strategy's adapt compute to reach 95% of the `baseline` strategy's final target score (the
    recipe's `report.baseline`), as a ratio to the baseline's.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    reach = compute_to_reach(rows, baseline=baseline)
    markdown = ("# mmadapt report\n\nScores are fractions in [0, 1] on each task's primary metric; `control` "
                "uses the new language's untrained embeddings; `alignment_at_1` is the share of dictionary words "
                "whose new embedding's nearest source embedding is their translation's ('-': no dictionary).\n\n"
                + table(rows) + "\n")
    if plot_curves(rows, output_dir / CURVE_PNG, baseline=baseline) is not None:
        markdown += (f"\n## Target score against adapt-stage compute\n\n![target score against adapt compute]"
                     f"({CURVE_PNG})\n\nAdapt compute to reach {REACH_FRACTION:.0%} of `{baseline}`'s final target "
                     f"score (ratios above 1: cheaper than `{baseline}`):\n\n" + reach_table(reach, baseline) + "\n")
    if any("basin_gap" in row for row in rows):
        markdown += ("\n## Collapse check\n\nNo target labels: the big model's masked-LM loss with the new "
                     "embeddings minus the mini-model's, on the language's corpus (a gap above the limit means the "
                     "embeddings fit the mini-model but not the big one), and, where the baseline ran, the share of "
                     "target inputs on which the strategy predicts what the baseline predicts.\n\n"
                     + collapse_table(rows) + "\n")
    probed = [row for row in rows if row.get("adapt_restart")]
    if probed:
        markdown += ("\n## Basin probe (`adapt.restart`)\n\nEach mini strategy's embeddings, part-way, swapped into the "
                     "fine-tuned model: Cohen's kappa of its answers to the target test inputs against its answers to "
                     "their source versions (no target labels). Under the limit the language started again with every "
                     "big-model step on the whole adapt micro-batch; the abandoned attempt's FLOPs count in its "
                     "adapt compute.\n\n" + restart_table(probed) + "\n")
    paths = []
    for name, text in ((REPORT_JSON, json.dumps({"rows": rows, "compute_to_reach": reach}, indent=1)),
                       (REPORT_MD, markdown)):
        paths.append(write_text_atomic(output_dir / name, text))
    return paths[0], paths[1]
