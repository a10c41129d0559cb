"""`mmadapt score` prints the official metric for a predictions file; `mmadapt plugins` lists the tasks."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import clean_env, mmadapt_command
from task_helpers import MLQA_DIR, PAWSX_DIR, SQUAD_DIR, XNLI_DIR


def mmadapt(*args):
    return subprocess.run(mmadapt_command() + [str(a) for a in args], capture_output=True, text=True, env=clean_env())


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def test_mlqa_scores_on_the_official_0_to_100_scale(tmp_path):
    predictions = tmp_path / "predictions.json"
    # zh gold: 长江 / 约6300公里 / 东海. q1 exact; q2 F1 6/7 (see test_task_metrics); q3 unanswered
    predictions.write_text(json.dumps({"mlqa-zh-1": "长江。", "mlqa-zh-2": "6300公里"}, ensure_ascii=False),
                           encoding="utf-8")
    out = mmadapt("score", "mlqa", MLQA_DIR / "test" / "test-context-zh-question-zh.json", predictions,
                  "--language", "zh")
    assert out.returncode == 0, out.stderr
    scores = json.loads(out.stdout)
    assert list(scores) == ["exact_match", "f1"]
    assert scores["exact_match"] == pytest.approx(100 / 3)  # 100 * 1 / 3
    assert scores["f1"] == pytest.approx(100 * (1 + 6 / 7) / 3)  # 61.90
    assert "1 of 3 gold examples have no prediction" in out.stderr


def test_squad_scores_with_its_own_rules(tmp_path):
    predictions = tmp_path / "predictions.json"
    # sq-dev-1 golds include "Red Planet": exact. sq-dev-2: "fourth planet from" vs "fourth planet": P 2/3, R 1,
    # F1 = 2 * 2/3 / (5/3) = 0.8. EM = 50, F1 = (100 + 80) / 2 = 90
    predictions.write_text(json.dumps({"sq-dev-1": "red planet", "sq-dev-2": "fourth planet from"}), encoding="utf-8")
    out = mmadapt("score", "squad", SQUAD_DIR / "dev-v1.1.json", predictions)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"exact_match": pytest.approx(50.0), "f1": pytest.approx(90.0)}


def test_xnli_scores_predictions_of_one_language(tmp_path):
    # de test gold: 11 contradiction, 12 entailment, 13 neutral, 14 entailment
    predictions = write_jsonl(tmp_path / "predictions.jsonl", [
        {"id": "11", "label": "contradiction"}, {"id": "12", "label": "neutral"}, {"id": "13", "label": 1}])
    out = mmadapt("score", "xnli", XNLI_DIR / "xnli.test.tsv", predictions, "--language", "de")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"accuracy": 0.5}  # 11 and 13 right, 12 wrong, 14 missing: 2 / 4


def test_pawsx_scores_accuracy(tmp_path):
    # de test gold labels: 1, 0, 1, 0
    predictions = write_jsonl(tmp_path / "predictions.jsonl", [
        {"id": 1, "label": 1}, {"id": 2, "label": 0}, {"id": 3, "label": 0}, {"id": 4, "label": "0"}])
    out = mmadapt("score", "pawsx", PAWSX_DIR / "de" / "test_2k.tsv", predictions, "--language", "de")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"accuracy": 0.75}  # 3 / 4


@pytest.mark.slow  # one child process per broken file
def test_score_errors_name_the_file_and_row(tmp_path):
    predictions = write_jsonl(tmp_path / "predictions.jsonl", [{"id": "1", "label": 1}, {"id": "2"}])
    out = mmadapt("score", "pawsx", PAWSX_DIR / "de" / "test_2k.tsv", predictions)
    assert out.returncode == 2
    assert f"error: {predictions}:2: missing field(s) label" in out.stderr
    assert "Traceback" not in out.stderr
    out = mmadapt("score", "mlqa", tmp_path / "missing.json", predictions, "--language", "de")
    assert out.returncode == 2 and f"gold file not found: {tmp_path / 'missing.json'}" in out.stderr
    out = mmadapt("score", "mlq", tmp_path / "missing.json", predictions)
    assert out.returncode == 2 and "unknown task 'mlq' (did you mean 'mlqa'?); available: mlqa, pawsx, squad, xnli" \
        in out.stderr


def test_the_plugins_command_lists_the_tasks():
    out = mmadapt("plugins")
    assert out.returncode == 0, out.stderr
    assert "tasks: xnli" in out.stdout and "tasks: pawsx" in out.stdout and "tasks: mlqa, squad" in out.stdout
