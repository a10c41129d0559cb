"""The label-free collapse check: basin losses per snapshot, agreement with the baseline, the warning."""
from __future__ import annotations

import json

import pytest

from conftest import run_in_process
from test_pipeline_transfer import ADAPT_STEPS, QUICKSTART, SHRINK

from mmadapt.pipeline.diagnostics.collapse import (AGREEMENT_LIMIT, BASIN_GAP_LIMIT, add_collapse_check, agreement,
                                                   collapse_table)


def _row(strategy: str, big: float, mini: float | None) -> dict:
    curve = [{"step": 0, "big_model_mlm_loss": 5.0, **({"mini_model_mlm_loss": 5.0} if mini is not None else {})},
             {"step": 10, "big_model_mlm_loss": big, **({"mini_model_mlm_loss": mini} if mini is not None else {})}]
    return {"strategy": strategy, "task": "xnli", "language": "nd", "curve": curve}


def test_the_check_fires_only_when_the_big_model_reads_the_embeddings_worse_than_the_mini_model_by_the_limit():
    rows = [_row("minijoint", 2.86, 2.52), _row("minipost", 2.41, 2.20), _row("full", 2.40, None)]
    warnings = add_collapse_check(rows)
    assert [r.get("collapse_suspected") for r in rows] == [True, False, None]
    assert rows[0]["basin_gap"] == 0.34 and rows[1]["basin_gap"] == 0.21 and "basin_gap" not in rows[2]
    assert [p["basin_gap"] for p in rows[0]["curve"]] == [0.0, 0.34]
    assert len(warnings) == 1 and warnings[0].startswith("warning: minijoint nd:") and f"> {BASIN_GAP_LIMIT}" in warnings[0]
    table = collapse_table(rows)
    assert "| minijoint | xnli | nd | 0.340 | YES | - | 0: 0.000, 10: 0.340 |" in table
    assert "| full |" not in table


def test_the_check_fires_when_the_model_disagrees_with_the_baseline_below_the_limit_whatever_the_basin_gap():
    rows = [_row("minijoint", 2.40, 2.30), _row("minipost", 2.40, 2.30), _row("minijoint", 2.40, 2.30)]
    rows[0]["agreement_with_baseline"] = AGREEMENT_LIMIT - 0.05
    rows[1]["agreement_with_baseline"] = AGREEMENT_LIMIT + 0.05  # the third ran without the baseline: no agreement
    warnings = add_collapse_check(rows)
    assert [r["collapse_suspected"] for r in rows] == [True, False, False]
    assert len(warnings) == 1 and "gives the baseline's answer on only 55.0% of the target test inputs" in warnings[0]
    assert "masked-LM loss" not in warnings[0]  # the basin gap (0.10) is not a reason here


def test_agreement_counts_the_reference_ids_answered_alike():
    assert agreement({"a": 1, "b": 2, "c": 0}, {"a": 1, "b": 0, "c": 0, "d": 1}) == 0.5
    assert agreement({"a": 1}, {}) is None


@pytest.mark.slow  # a whole pipeline
def test_a_run_reports_basin_losses_per_snapshot_and_agreement_with_the_baseline(tmp_path):
    run_in_process(QUICKSTART, [f"output_dir={tmp_path}", *SHRINK])
    rows = {r["strategy"]: r for r in json.loads((tmp_path / "report.json").read_text())["rows"] if r["language"] == "vo"}
    full, mini = rows["full"], rows["minipost"]
    assert [p["step"] for p in mini["curve"]] == [0, 5, 10, ADAPT_STEPS["minipost"]]
    assert all(p["big_model_mlm_loss"] > 0 and p["mini_model_mlm_loss"] > 0 for p in mini["curve"])
    assert all("mini_model_mlm_loss" not in p and p["big_model_mlm_loss"] > 0 for p in full["curve"])
    assert mini["basin_gap"] == round(mini["curve"][-1]["big_model_mlm_loss"] - mini["curve"][-1]["mini_model_mlm_loss"], 5)
    assert isinstance(mini["collapse_suspected"], bool) and "collapse_suspected" not in full
    # training lowers the loss of the model the embeddings train over: the losses are of those embeddings
    assert full["curve"][-1]["big_model_mlm_loss"] < full["curve"][0]["big_model_mlm_loss"]
    assert mini["curve"][-1]["mini_model_mlm_loss"] < mini["curve"][0]["mini_model_mlm_loss"]
    # agreement: the share of test ids where the two final target predictions files give the same label
    read = [{r["id"]: r["label"] for r in map(json.loads, (tmp_path / s / "transfer" / "xnli" / "vo" /
                                                           "predictions_target.jsonl").read_text().splitlines())}
            for s in ("minipost", "full")]
    assert mini["agreement_with_baseline"] == round(sum(read[0][k] == v for k, v in read[1].items()) / len(read[1]), 4)
    assert mini["curve"][-1]["agreement_with_baseline"] == mini["agreement_with_baseline"]
    assert "agreement_with_baseline" not in full
    assert all(0.0 <= p["agreement_with_baseline"] <= 1.0 for p in mini["curve"][1:])
    assert mini["basin_check_flops"] > 0
    assert "## Collapse check" in (tmp_path / "report.md").read_text()
