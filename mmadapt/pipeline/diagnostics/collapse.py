"""The collapse check: a label-free warning that a strategy's new embeddings landed in a wrong basin.

A mini strategy can end 20-30 points under `full`, at chance, with nothing in its own numbers
saying so. Three quantities need no target labels:

- `basin_gap` (any mini strategy, no baseline needed): the big model's masked-LM loss with the
  embeddings minus the loss of the mini-model they were trained over, on the language's own corpus
  (mmadapt.pipeline.diagnostics.basin). Embeddings in the big model's basin are read by it about as well as by
  the mini-model; embeddings that only fit the mini-model are not.
- `agreement_with_baseline` (when the run also adapted the baseline, `report.baseline`): the share
  of the target test inputs on which the strategy's fine-tuned model predicts what the baseline's does.
  Recorded, no longer a reason to warn: a baseline near chance agrees with nothing (false alarms on test).

- `source_kappa` (tasks whose predictions compare across languages, `Task.parallel_predictions`: a label,
  not a span of text): how far beyond chance the model answers a target test example as it answers the same
  example in the source language (Cohen's kappa of the two prediction lists; `source_agreement`, the plain
  share, is recorded beside it). The evaluation sets of XNLI, PAWS-X and the synthetic benchmark are
  translations of one another, so a model that transfers answers alike in both; this reads the source-language
  text of the test examples, never a target label. `source_kappa_lost` is the share of the baseline's
  `source_kappa` that the strategy's lacks (a run that also adapted the baseline, where the baseline's is at
  least `SOURCE_KAPPA_FLOOR`: a baseline that does not transfer has nothing to lose).

All are recorded per curve point and per row. The warning fires (`add_collapse_check`) when the final
`basin_gap` is above `BASIN_GAP_LIMIT`, or `source_kappa_lost` is above `SOURCE_KAPPA_LOST_LIMIT`.
How each was chosen on the dev split, and how well it separated collapsed cells on the test split:
docs/benchmarks.md ("Collapse protocol"). Without the baseline only the basin gap is left, and on the test
split it missed every collapse.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable


def agreement(predictions: dict[str, Any], reference: dict[str, Any]) -> float | None:
    """Share of the reference's example ids on which `predictions` give the same answer."""
    if not reference:
        return None
    return sum(predictions.get(key) == value for key, value in reference.items()) / len(reference)


def source_kappa(predictions: dict[str, Any], source: dict[str, Any]) -> dict[str, float] | None:
    """`source_agreement` (the share of the ids in both on which the two give the same answer) and
    `source_kappa` (that share beyond what the two answers' frequencies give by chance: Cohen's kappa; left
    out when both give one and the same answer to everything, where it is undefined). None when fewer than
    half of `predictions`' ids are in `source` (the two evaluation sets are not translations of each other)."""
    shared = predictions.keys() & source.keys()
    if not shared or 2 * len(shared) < len(predictions):
        return None
    observed = sum(predictions[key] == source[key] for key in shared) / len(shared)
    ours, theirs = Counter(predictions[key] for key in shared), Counter(source[key] for key in shared)
    chance = sum(count * theirs[answer] for answer, count in ours.items()) / len(shared) ** 2
    if chance >= 1.0:
        return {"source_agreement": observed}
    return {"source_agreement": observed, "source_kappa": (observed - chance) / (1.0 - chance)}


def _record(row: dict[str, Any], files: dict[int, Path], reference: dict[str, Any],
            read: Callable[[Path], dict[str, Any]], measure: Callable[..., dict[str, float] | None]) -> None:
    """Give `row` and its curve points what `measure(their predictions, reference)` returns (the last file: the
    row's), each value rounded."""
    for holder, path in [*((point, files.get(point["step"])) for point in row.get("curve", [])),
                         (row, files[max(files)])]:
        values = measure(read(path), reference) if path is not None and path.is_file() else None
        holder.update({key: round(value, 4) for key, value in (values or {}).items()})


def add_agreement(rows: list[dict[str, Any]], predictions: dict[tuple[str, str, str], dict[int, Path]],
                  read: Callable[[str, Path], dict[str, Any]], baseline: str,
                  source_predictions: dict[tuple[str, str], Path] | None = None) -> None:
    """Give rows (and their curve points) `agreement_with_baseline` (every non-baseline row),
    `source_agreement` and `source_kappa` (every row with source predictions), in place.

    `predictions[(strategy, task, language)]` maps curve steps to the target predictions files the
    transfer stage wrote (the last step's are the final embeddings'); `read(task, path)` reads one.
    The baseline's final predictions are the reference of the first; `source_predictions[(strategy, task)]`,
    the fine-tuned model's predictions on the source language (only for tasks whose predictions compare
    across languages), of the second.
    """
    # each file read once: a snapshot's serves both measures, the references serve every row
    read_once: dict[tuple[str, Path], dict[str, Any]] = {}

    def read_file(task: str, path: Path) -> dict[str, Any]:
        if (task, path) not in read_once:
            read_once[task, path] = read(task, path)
        return read_once[task, path]

    for row in rows:
        task, language = row["task"], row["language"]
        base, mine = predictions.get((baseline, task, language)), predictions.get((row["strategy"], task, language))
        if not mine:
            continue
        read_file_of_task = lambda path, task=task: read_file(task, path)
        source = (source_predictions or {}).get((row["strategy"], task))
        if source is not None and source.is_file():
            _record(row, mine, read_file_of_task(source), read_file_of_task, source_kappa)
        if row["strategy"] != baseline and base and base[max(base)].is_file():
            _record(row, mine, read_file_of_task(base[max(base)]), read_file_of_task,
                    lambda ours, theirs: {"agreement_with_baseline": agreement(ours, theirs)})


#: the warning fires when the big model's masked-LM loss with the final embeddings exceeds the mini-model's by
#: more than this (nats per masked token). Chosen on the dev split (docs/benchmarks.md, "Collapse protocol"):
#: there the two collapsed cells (13 and 10 points under the baseline) had gaps of 0.34 and 0.49, every other mini
#: cell at most 0.25 (MiniJoint's healthy cells -0.05 to 0.21, MiniPost's 0.12 to 0.25).
BASIN_GAP_LIMIT = 0.30
#: ... or when the strategy's model has lost more than this share of the baseline's `source_kappa`. Chosen on the
#: dev split (docs/benchmarks.md, "Collapse protocol, third pass"): the 4 cells more than 10 points under the baseline
#: lost 0.49-0.86 of it, the 48 others at most 0.34 (a cell 8.1 points under; 0.17 at most within 5 points).
SOURCE_KAPPA_LOST_LIMIT = 0.42
#: `source_kappa_lost` is measured only where the baseline's `source_kappa` is at least this: below it the baseline
#: itself barely transfers, and a share of almost nothing says nothing
SOURCE_KAPPA_FLOOR = 0.10


#: what the warning advises. On the three slow-learned cells measured (docs/benchmarks.md, "What brings a slow-learned
#: language back"), big-model steps on the whole adapt micro-batch brought both mini strategies to the baseline's score
#: (saving 1.2x-2.0x instead of about 3x); 200 first steps on 16 sequences instead of 50 did not on two of them
BASIN_ADVICE = ("give the big-model steps the whole adapt micro-batch (adapt.big_model_micro_batch_size equal to "
                "adapt.train.micro_batch_size), at a smaller saving")


def basin_gap(point: dict[str, Any]) -> float | None:
    """Big-model minus mini-model masked-LM loss at a curve point (None without a mini-model)."""
    big, mini = point.get("big_model_mlm_loss"), point.get("mini_model_mlm_loss")
    return None if big is None or mini is None else round(big - mini, 5)


def collapse_reasons(row: dict[str, Any], limit: float = BASIN_GAP_LIMIT,
                     lost_limit: float = SOURCE_KAPPA_LOST_LIMIT) -> list[str]:
    """Why a row's final embeddings look collapsed (empty: they do not), from its `basin_gap` and
    `source_kappa_lost`."""
    reasons = []
    final = next((p for p in reversed(row.get("curve", [])) if "basin_gap" in p), None)
    if final is not None and final["basin_gap"] > limit:
        reasons.append(f"the big model reads the new embeddings worse than the mini-model they were trained over "
                       f"(masked-LM loss {final['big_model_mlm_loss']:.3f} against {final['mini_model_mlm_loss']:.3f}, "
                       f"gap {final['basin_gap']:.3f} > {limit})")
    lost = row.get("source_kappa_lost")
    if lost is not None and lost > lost_limit:
        reasons.append(f"its model answers the target test examples as it answers them in the source language "
                       f"{lost:.0%} less often beyond chance than the baseline's does (source kappa "
                       f"{row['source_kappa']:.3f}, lost share {lost:.2f} > {lost_limit})")
    return reasons


def add_source_kappa_lost(rows: list[dict[str, Any]], baseline: str, floor: float = SOURCE_KAPPA_FLOOR) -> None:
    """Give every non-baseline row with `source_kappa` its `source_kappa_lost`: 1 - its kappa / the baseline row's
    (same task and language), in place; nothing where the baseline did not run or its kappa is under `floor`."""
    base = {(r["task"], r["language"]): r.get("source_kappa") for r in rows if r["strategy"] == baseline}
    for row in rows:
        reference = base.get((row["task"], row["language"]))
        if row["strategy"] != baseline and reference is not None and reference >= floor \
                and row.get("source_kappa") is not None:
            row["source_kappa_lost"] = round(1.0 - row["source_kappa"] / reference, 4)


def add_collapse_check(rows: list[dict[str, Any]], baseline: str, limit: float = BASIN_GAP_LIMIT,
                       lost_limit: float = SOURCE_KAPPA_LOST_LIMIT) -> list[str]:
    """Give rows and curve points `basin_gap`, rows `source_kappa_lost` and `collapse_suspected`; return one
    warning per suspect row.

    Run after `add_agreement`, so that rows carry their `source_kappa`."""
    add_source_kappa_lost(rows, baseline)
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
        reasons = collapse_reasons(row, limit, lost_limit)
        row["collapse_suspected"] = bool(reasons)
        if reasons:
            restarted = (row.get("adapt_restart") or {}).get("restarted")
            advice = ("they were restarted with the big-model steps on the whole adapt micro-batch already "
                      "(adapt.restart); compare" if restarted else f"{BASIN_ADVICE}, or compare")
            warnings.append(
                f"warning: {row['strategy']} {row['language']}: {'; and '.join(reasons)}: the embeddings may have "
                f"landed in a wrong basin and transfer far below the baseline; {advice} with the baseline strategy "
                f"(report.baseline) on this language")
    return warnings


def collapse_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the collapse check per strategy and language, with its values at each snapshot."""
    lines = ["| strategy | task | language | basin gap (final) | source kappa (final) | share of the baseline's lost | "
             "collapse suspected | agreement with baseline | basin gap by step | source kappa by step |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "basin_gap" not in row:
            continue
        steps = ", ".join(f"{p['step']}: {p['basin_gap']:.3f}" for p in row["curve"] if "basin_gap" in p)
        by_step = ", ".join(f"{p['step']}: {p['source_kappa']:.3f}" for p in row["curve"] if "source_kappa" in p)
        lines.append(f"| {row['strategy']} | {row['task']} | {row['language']} | {row['basin_gap']:.3f} | "
                     f"{_number(row.get('source_kappa'))} | {_number(row.get('source_kappa_lost'))} | "
                     f"{'YES' if row['collapse_suspected'] else 'no'} | {_number(row.get('agreement_with_baseline'))} | "
                     f"{steps} | {by_step or '-'} |")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
