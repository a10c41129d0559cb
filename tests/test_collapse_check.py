"""The label-free collapse check: basin losses per snapshot, agreement with the baseline, the warning."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_in_process
from test_pipeline_transfer import ADAPT_STEPS, QUICKSTART, SHRINK

from mmadapt.pipeline.diagnostics.collapse import (BASIN_GAP_LIMIT, SOURCE_KAPPA_FLOOR, SOURCE_KAPPA_LOST_LIMIT,
                                                   add_agreement, add_collapse_check, agreement, collapse_table,
                                                   source_kappa)


def _row(strategy: str, big: float, mini: float | None) -> dict:
    curve = [{"step": 0, "big_model_mlm_loss": 5.0, **({"mini_model_mlm_loss": 5.0} if mini is not None else {})},
             {"step": 10, "big_model_mlm_loss": big, **({"mini_model_mlm_loss": mini} if mini is not None else {})}]
    return {"strategy": strategy, "task": "xnli", "language": "nd", "curve": curve}


def test_the_check_fires_only_when_the_big_model_reads_the_embeddings_worse_than_the_mini_model_by_the_limit():
    rows = [_row("minijoint", 2.86, 2.52), _row("minipost", 2.41, 2.20), _row("full", 2.40, None)]
    warnings = add_collapse_check(rows, "full")
    assert [r.get("collapse_suspected") for r in rows] == [True, False, None]
    assert rows[0]["basin_gap"] == 0.34 and rows[1]["basin_gap"] == 0.21 and "basin_gap" not in rows[2]
    assert [p["basin_gap"] for p in rows[0]["curve"]] == [0.0, 0.34]
    assert len(warnings) == 1 and warnings[0].startswith("warning: minijoint nd:") and f"> {BASIN_GAP_LIMIT}" in warnings[0]
    assert "adapt.big_model_micro_batch_size equal to adapt.train.micro_batch_size" in warnings[0]  # what to do
    table = collapse_table(rows)
    assert "| minijoint | xnli | nd | 0.340 | - | - | YES | - | 0: 0.000, 10: 0.340 | - |" in table
    assert "| full |" not in table


def test_a_warning_for_a_language_adapt_restart_restarted_already_does_not_advise_the_same_again():
    rows = [_row("minijoint", 2.86, 2.52), _row("minipost", 2.86, 2.52), _row("full", 2.40, None)]
    rows[0]["adapt_restart"] = {"at_step": 120, "source_kappa": 0.02, "restarted": True}
    rows[1]["adapt_restart"] = {"at_step": 120, "source_kappa": 0.40, "restarted": False}
    restarted, probed = add_collapse_check(rows, "full")
    assert "restarted with the big-model steps on the whole adapt micro-batch already" in restarted
    assert "adapt.big_model_micro_batch_size equal to" not in restarted
    assert "adapt.big_model_micro_batch_size equal to" in probed


def test_the_check_fires_when_the_model_lost_more_than_the_limit_of_the_baselines_source_kappa():
    rows = [_row("minijoint", 2.40, 2.30), _row("minipost", 2.40, 2.30), _row("full", 2.35, None)]
    for row, kappa in zip(rows, (0.50 * (1 - SOURCE_KAPPA_LOST_LIMIT) - 0.01, 0.50 * (1 - SOURCE_KAPPA_LOST_LIMIT) + 0.01,
                                 0.50)):
        row["source_kappa"] = round(kappa, 4)
    warnings = add_collapse_check(rows, "full")
    assert [r.get("collapse_suspected") for r in rows] == [True, False, None]
    assert rows[0]["source_kappa_lost"] == round(1 - rows[0]["source_kappa"] / 0.5, 4) > SOURCE_KAPPA_LOST_LIMIT
    assert "source_kappa_lost" not in rows[2]
    assert len(warnings) == 1 and warnings[0].startswith("warning: minijoint nd:")
    assert f"lost share 0.44 > {SOURCE_KAPPA_LOST_LIMIT}" in warnings[0]
    assert "masked-LM loss" not in warnings[0]  # the basin gap (0.10) is not a reason here
    table = collapse_table(rows)
    assert "| minijoint | xnli | nd | 0.100 | 0.280 | 0.440 | YES |" in table


def test_without_the_baseline_or_under_its_floor_there_is_no_lost_share_and_only_the_basin_gap_decides():
    alone = [_row("minijoint", 2.40, 2.30)]
    alone[0]["source_kappa"] = 0.0
    assert add_collapse_check(alone, "full") == [] and alone[0]["collapse_suspected"] is False
    rows = [_row("minijoint", 2.40, 2.30), _row("full", 2.35, None)]
    rows[0]["source_kappa"], rows[1]["source_kappa"] = 0.0, SOURCE_KAPPA_FLOOR - 0.01  # the baseline barely transfers
    assert add_collapse_check(rows, "full") == []
    assert "source_kappa_lost" not in alone[0] and "source_kappa_lost" not in rows[0]


def test_source_kappa_compares_the_ids_both_languages_have_beyond_chance_and_refuses_sets_that_are_not_translations():
    agree = source_kappa({"0": "a", "1": "b", "2": "a", "3": "b"}, {"0": "a", "1": "b", "2": "b", "3": "a", "9": "a"})
    assert agree == {"source_agreement": 0.5, "source_kappa": 0.0}  # half alike, as two coin flips would be
    assert source_kappa({"0": "a", "1": "b"}, {"0": "a", "1": "b"})["source_kappa"] == 1.0
    assert source_kappa({"0": "a", "1": "b", "2": "c"}, {"0": "a", "9": "b"}) is None  # 1 of 3 ids shared
    assert source_kappa({"0": "a", "1": "a"}, {"0": "a", "1": "a"}) == {"source_agreement": 1.0}  # kappa undefined
    assert source_kappa({"0": "a"}, {}) is None


def test_rows_get_source_kappa_per_snapshot_from_the_source_predictions_and_agreement_only_off_the_baseline(
        tmp_path):
    def write(name: str, labels: str) -> Path:
        path = tmp_path / name
        path.write_text("".join(f'{{"id": "{i}", "label": "{label}"}}\n' for i, label in enumerate(labels)))
        return path

    source = write("source.jsonl", "aabb")
    predictions = {("full", "xnli", "nd"): {0: write("f0.jsonl", "abba"), 10: write("f10.jsonl", "aabb")},
                   ("minijoint", "xnli", "nd"): {0: write("m0.jsonl", "abba"), 10: write("m10.jsonl", "abab")}}
    rows = [{"strategy": s, "task": "xnli", "language": "nd", "curve": [{"step": 0}, {"step": 10}]}
            for s in ("full", "minijoint")]
    read = lambda task, path: {r["id"]: r["label"] for r in map(json.loads, path.read_text().splitlines())}
    add_agreement(rows, predictions, read, "full", {("full", "xnli"): source, ("minijoint", "xnli"): source})
    full, mini = rows
    assert [p["source_kappa"] for p in full["curve"]] == [0.0, 1.0] and full["source_kappa"] == 1.0
    assert [p["source_agreement"] for p in full["curve"]] == [0.5, 1.0]
    assert [p["source_kappa"] for p in mini["curve"]] == [0.0, 0.0] and mini["source_agreement"] == 0.5
    assert mini["agreement_with_baseline"] == 0.5 and "agreement_with_baseline" not in full
    add_collapse_check(rows, "full")
    assert mini["source_kappa_lost"] == 1.0


def test_agreement_counts_the_reference_ids_answered_alike():
    assert agreement({"a": 1, "b": 2, "c": 0}, {"a": 1, "b": 0, "c": 0, "d": 1}) == 0.5
    assert agreement({"a": 1}, {}) is None


@pytest.mark.slow  # a whole pipeline
def test_the_kept_basin_check_is_used_again_wherever_the_models_lie_and_computed_again_for_other_embeddings(
        tmp_path, monkeypatch):
    from types import SimpleNamespace

    from mmadapt.pipeline.diagnostics import basin

    computed = []

    def check(ctx, language, adapted, model_dir, big_dir):
        computed.append(adapted.fingerprint)
        return {"basin_losses": {"big": {0: 5.0, 40: float(len(computed))}}, "basin_check_flops": 7}

    monkeypatch.setattr(basin, "_basin_check", check)
    ctx = SimpleNamespace(stage_dir=tmp_path)

    def run(fingerprint, root):
        adapted = SimpleNamespace(fingerprint=fingerprint, snapshots=tmp_path / "snapshots")
        return basin.language_basin_check(ctx, "vo", adapted, root / "mini", root / "big")

    first = run("f1", tmp_path / "run")
    assert run("f1", tmp_path / "moved") == first and computed == ["f1"]  # int steps, as computed
    assert first["basin_losses"]["big"] == {0: 5.0, 40: 1.0}
    assert run("f2", tmp_path / "moved")["basin_losses"]["big"][40] == 2.0 and computed == ["f1", "f2"]
    assert run("f2", tmp_path / "moved")["basin_losses"]["big"][40] == 2.0 and computed == ["f1", "f2"]


def test_a_run_reports_basin_losses_per_snapshot_and_agreement_with_the_baseline(tmp_path, monkeypatch):
    run_in_process(QUICKSTART, [f"output_dir={tmp_path}", *SHRINK])
    report = json.loads((tmp_path / "report.json").read_text())
    # run again: every stage is complete, and the basin check is read back, not computed again
    from mmadapt.pipeline.diagnostics import basin

    def computed_again(*args):
        raise AssertionError("the basin check of a completed adapt stage was computed again")

    monkeypatch.setattr(basin, "_basin_check", computed_again)
    run_in_process(QUICKSTART, [f"output_dir={tmp_path}", *SHRINK])
    assert json.loads((tmp_path / "report.json").read_text())["rows"] == report["rows"]
    rows = {r["strategy"]: r for r in report["rows"] if r["language"] == "vo"}
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
    # source kappa: target against source predictions of the same test ids, beyond chance
    source = {r["id"]: r["label"] for r in map(json.loads, (tmp_path / "full" / "finetune" / "xnli" /  # minipost reuses it
                                                             "predictions_source.jsonl").read_text().splitlines())}
    for row, predicted in ((mini, read[0]), (full, read[1])):  # this tiny model may answer one label to all
        expected = {key: round(value, 4) for key, value in source_kappa(predicted, source).items()}
        assert {key: row.get(key) for key in expected} == expected == {key: row["curve"][-1].get(key) for key in expected}
        assert row["source_agreement"] == round(sum(predicted[k] == v for k, v in source.items()) / len(source), 4)
    if full.get("source_kappa", 0) >= SOURCE_KAPPA_FLOOR and "source_kappa" in mini:
        assert mini["source_kappa_lost"] == round(1 - mini["source_kappa"] / full["source_kappa"], 4)
    assert "## Collapse check" in (tmp_path / "report.md").read_text()
