"""The collapse check: a label-free warning that a strategy's new embeddings landed in a wrong basin.

A mini strategy can end 20-30 points under `full`, at chance, with nothing in its own numbers
saying so. Two quantities need no target labels:

- `basin_gap` (any mini strategy, no baseline needed): the big model's masked-LM loss with the
  embeddings minus the loss of the mini-model they were trained over, on the language's own corpus
  (mmadapt.pipeline.diagnostics.basin). Embeddings in the big model's basin are read by it about as well as by
  the mini-model; embeddings that only fit the mini-model are not.
- `agreement_with_baseline` (when the run also adapted the baseline, `report.baseline`): the share
  of the target test inputs on which the strategy's fine-tuned model predicts what the baseline's does.

Both are recorded per curve point and per row. The warning fires (`add_collapse_check`) when the final
`basin_gap` is above `BASIN_GAP_LIMIT`, or the final `agreement_with_baseline` is below `AGREEMENT_LIMIT`.
On the dev split (docs/benchmarks.md, "Collapse protocol") only the agreement separated the collapsed cells
from the healthy ones; the basin gap alone, all a run without the baseline has, missed them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def agreement(predictions: dict[str, Any], reference: dict[str, Any]) -> float | None:
    """Share of the reference's example ids on which `predictions` give the same answer."""
    if not reference:
        return None
    return sum(predictions.get(key) == value for key, value in reference.items()) / len(reference)


def add_agreement(rows: list[dict[str, Any]], predictions: dict[tuple[str, str, str], dict[int, Path]],
                  read: Callable[[str, Path], dict[str, Any]], baseline: str) -> None:
    """Give every non-baseline row (and its curve points) `agreement_with_baseline`, in place.

    `predictions[(strategy, task, language)]` maps curve steps to the target predictions files the
    transfer stage wrote (the last step's are the final embeddings'); `read(task, path)` reads one.
    The baseline's final predictions are the reference.
    """
    for row in rows:
        task, language = row["task"], row["language"]
        base, mine = predictions.get((baseline, task, language)), predictions.get((row["strategy"], task, language))
        if row["strategy"] == baseline or not base or not mine or not base[max(base)].is_file():
            continue
        reference = read(task, base[max(base)])
        for point in row.get("curve", []):
            path = mine.get(point["step"])
            if path is not None and path.is_file():
                point["agreement_with_baseline"] = round(agreement(read(task, path), reference), 4)
        if mine[max(mine)].is_file():
            row["agreement_with_baseline"] = round(agreement(read(task, mine[max(mine)]), reference), 4)


#: the warning fires when the big model's masked-LM loss with the final embeddings exceeds the mini-model's by
#: more than this (nats per masked token). Chosen on the dev split (docs/benchmarks.md, "Collapse protocol"):
#: there the two collapsed cells (13 and 10 points under the baseline) had gaps of 0.34 and 0.49, every other mini
#: cell at most 0.25 (MiniJoint's healthy cells -0.05 to 0.21, MiniPost's 0.12 to 0.25).
BASIN_GAP_LIMIT = 0.30
#: ... or when the strategy's model gives the baseline's answer on fewer than this share of the target test
#: inputs. Chosen on the 2026-12-06 dev split (36 mini cells, 3 settings of the big-model steps): the three
#: cells more than 10 points under the baseline agreed 0.485-0.549; the others 0.562 (a cell 7.4 points
#: under) and 0.634-0.906.
AGREEMENT_LIMIT = 0.60


def basin_gap(point: dict[str, Any]) -> float | None:
    """Big-model minus mini-model masked-LM loss at a curve point (None without a mini-model)."""
    big, mini = point.get("big_model_mlm_loss"), point.get("mini_model_mlm_loss")
    return None if big is None or mini is None else round(big - mini, 5)


def collapse_reasons(row: dict[str, Any], limit: float = BASIN_GAP_LIMIT,
                     agreement_limit: float = AGREEMENT_LIMIT) -> list[str]:
    """Why a row's final embeddings look collapsed (empty: they do not), from its `basin_gap` and agreement."""
    reasons = []
    final = next((p for p in reversed(row.get("curve", [])) if "basin_gap" in p), None)
    if final is not None and final["basin_gap"] > limit:
        reasons.append(f"the big model reads the new embeddings worse than the mini-model they were trained over "
                       f"(masked-LM loss {final['big_model_mlm_loss']:.3f} against {final['mini_model_mlm_loss']:.3f}, "
                       f"gap {final['basin_gap']:.3f} > {limit})")
    agree = row.get("agreement_with_baseline")
    if agree is not None and agree < agreement_limit:
        reasons.append(f"its model gives the baseline's answer on only {agree:.1%} of the target test inputs "
                       f"(< {agreement_limit:.0%})")
    return reasons


def add_collapse_check(rows: list[dict[str, Any]], limit: float = BASIN_GAP_LIMIT,
                       agreement_limit: float = AGREEMENT_LIMIT) -> list[str]:
    """Give rows and curve points `basin_gap`, rows `collapse_suspected`; return one warning per suspect row.

    Run after `add_agreement`, so that a row's agreement with the baseline counts too."""
    warnings = []
    for row in rows:
        for point in row.get("curve", []):
            gap = basin_gap(point)
            if gap is not None:
                point["basin_gap"] = gap
        final = next((p for p in reversed(row.get("curve", [])) if "basin_gap" in p), None)
        if final is None:
            continue
        row["basin_gap"] = final["basin_gap"]
        reasons = collapse_reasons(row, limit, agreement_limit)
        row["collapse_suspected"] = bool(reasons)
        if reasons:
            warnings.append(
                f"warning: {row['strategy']} {row['language']}: {'; and '.join(reasons)}: the embeddings may have "
                f"landed in a wrong basin and transfer far below the baseline; raise adapt.big_model_steps, or "
                f"compare with the baseline strategy (report.baseline) on this language")
    return warnings


def collapse_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the collapse check per strategy and language, with its value at each snapshot."""
    lines = ["| strategy | task | language | basin gap (final) | collapse suspected | agreement with baseline | "
             "basin gap by step |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        if "basin_gap" not in row:
            continue
        steps = ", ".join(f"{p['step']}: {p['basin_gap']:.3f}" for p in row["curve"] if "basin_gap" in p)
        agree = row.get("agreement_with_baseline")
        lines.append(f"| {row['strategy']} | {row['task']} | {row['language']} | {row['basin_gap']:.3f} | "
                     f"{'YES' if row['collapse_suspected'] else 'no'} | {'-' if agree is None else f'{agree:.3f}'} | "
                     f"{steps} |")
    return "\n".join(lines)
