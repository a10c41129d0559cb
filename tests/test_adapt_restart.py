"""`adapt.restart`: a probe part-way through a mini strategy's adaptation, and the restart on the whole micro-batch."""
from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from conftest import run_in_process
from test_pipeline_transfer import QUICKSTART, SHRINK

pytestmark = pytest.mark.slow

#: `vo` alone, a fine-tune that tells examples apart (so the probe reads a kappa), big-model steps on 16 of 64
SETTINGS = ["adapt.train.micro_batch_size=64", "languages={vo: {corpus: [synth:vo]}}", "tasks.0.languages=[src, vo]",
            "finetune.train={max_steps: 30, lr: 0.001}", "adapt.big_model_steps=2", "adapt.big_model_every=3",
            "adapt.big_model_micro_batch_size=16"]
PROBE_STEP = 5


def _run(out, *overrides: str) -> dict:
    """The shrunken quickstart with `SETTINGS` and `overrides`: MiniPost's report row."""
    _, result = run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK, *SETTINGS, *overrides])
    return next(row for row in result.rows if row["strategy"] == "minipost")


def _embeddings(out) -> dict:
    return load_file(str(out / "minipost" / "adapt" / "vo" / "embeddings.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


@pytest.fixture(scope="module")
def unprobed(tmp_path_factory):
    out = tmp_path_factory.mktemp("unprobed")
    return out, _run(out)


def test_a_probe_that_reads_a_transferring_language_lets_the_adaptation_go_on_as_it_would_have(unprobed, tmp_path):
    base_dir, base = unprobed
    row = _run(tmp_path, f"adapt.restart.at_step={PROBE_STEP}", "adapt.restart.min_source_kappa=-1")
    restart = row["adapt_restart"]
    assert restart["at_step"] == PROBE_STEP and not restart["restarted"] and restart["source_kappa"] is not None
    assert restart["probe_flops"] > 0 and restart["abandoned_flops"] == 0
    # the probe leaves the training's random draws alone: the same embeddings, bit for bit, and the same curve of
    # scores; its forward passes count in the adapt compute after its step
    assert _same(_embeddings(tmp_path), _embeddings(base_dir))
    assert [p["target_score"] for p in row["curve"]] == [p["target_score"] for p in base["curve"]]
    assert row["adapt_flops"] == base["adapt_flops"] + restart["probe_flops"]
    for point, before in zip(row["curve"], base["curve"]):
        added = restart["probe_flops"] if point["step"] > PROBE_STEP else 0  # the snapshot at its step comes first
        assert point["adapt_flops"] == pytest.approx(before["adapt_flops"] + added, abs=1)
    assert (tmp_path / "minipost" / "adapt" / "vo" / "restart_probe_predictions.jsonl").is_file()
    # full adapts over the big model: nothing to probe, and its fingerprint is as without the key
    full_marker = json.loads((tmp_path / "full" / "adapt" / "vo" / "stage_complete.json").read_text())
    assert "restart" not in full_marker["settings"]["adapt"]


def test_a_probe_that_reads_a_missed_basin_starts_again_with_every_big_model_step_on_the_whole_micro_batch(
        tmp_path, capsys):
    probed = tmp_path / "probed"
    row = _run(probed, f"adapt.restart.at_step={PROBE_STEP}", "adapt.restart.min_source_kappa=2")
    assert "missed the big model's basin; starting again" in capsys.readouterr().out
    restart = row["adapt_restart"]
    assert restart["restarted"] and restart["at_step"] == PROBE_STEP and restart["abandoned_flops"] > 0
    # the second attempt is the adaptation with the big-model steps on the whole micro-batch, bit for bit
    whole = tmp_path / "whole"
    reference = _run(whole, "adapt.big_model_micro_batch_size=0")
    assert _same(_embeddings(probed), _embeddings(whole))
    assert [p["target_score"] for p in row["curve"]] == [p["target_score"] for p in reference["curve"]]
    # ... and its compute is that one's plus the abandoned attempt's, counted before its first step
    assert row["adapt_flops"] == reference["adapt_flops"] + restart["abandoned_flops"]
    assert row["adapt_tokens"] == reference["adapt_tokens"] + restart["abandoned_tokens"]
    for point, before in zip(row["curve"], reference["curve"]):
        assert point["adapt_flops"] == pytest.approx(before["adapt_flops"] + restart["abandoned_flops"], abs=1)
    stage = probed / "minipost" / "adapt" / "vo"
    assert json.loads((stage / "restarts.json").read_text())["restart"] == restart
    assert (stage / "metrics_attempt_1.jsonl").is_file()  # the missed attempt's training curve, kept
    report = (probed / "report.md").read_text()
    assert "## Basin probe (`adapt.restart`)" in report and f"| minipost | xnli | vo | {PROBE_STEP} |" in report
    assert "| YES | - |" in report  # restarted: the probe's FLOPs are among the abandoned attempt's

    # a run stopped after the restart goes on with the second attempt: no second probe, the same embeddings
    (stage / "stage_complete.json").unlink()
    again = _run(probed, f"adapt.restart.at_step={PROBE_STEP}", "adapt.restart.min_source_kappa=2")
    assert "missed the big model's basin" not in capsys.readouterr().out
    assert again["adapt_restart"] == restart and _same(_embeddings(probed), _embeddings(whole))
