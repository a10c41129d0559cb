"""The third-party task of docs/tasks.md works as written: registered, loaded, featurised, scored."""
from __future__ import annotations

import importlib
import re
import sys

import pytest

from conftest import REPO
from mmadapt.errors import MmadaptError
from mmadapt.plugins import build_plugins
from task_helpers import task_options, tiny_tokenizer


@pytest.fixture
def reviews_plugin(tmp_path, monkeypatch):
    """The example module from docs/tasks.md, importable as `mmadapt_reviews`."""
    doc = (REPO / "docs" / "tasks.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- example: mmadapt_reviews.py -->\n```python\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "mmadapt_reviews.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("mmadapt_reviews")
    sys.modules.pop("mmadapt_reviews", None)


def write_reviews(root, language, split, rows):
    path = root / language / f"{split}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id\ttext\tlabel\n" + "".join(f"{i}\t{t}\t{l}\n" for i, t, l in rows), encoding="utf-8")
    return path


def test_the_documented_task_plugin_registers_loads_and_scores(reviews_plugin, tmp_path):
    task = build_plugins(extra=[reviews_plugin], load_entry_points=False).tasks.get("reviews")
    data = tmp_path / "reviews"
    write_reviews(data, "en", "train", [("1", "great value", "positive"), ("2", "broke after a day", "negative")])
    gold = write_reviews(data, "de", "test", [("7", "sehr gut", "positive"), ("8", "schlecht", "negative")])
    options = task_options(task, data_dir=str(data))
    assert [ex["label"] for ex in task.train_examples(options)] == ["positive", "negative"]
    features = task.train_features(task.train_examples(options), tiny_tokenizer(tmp_path), options)
    assert features[0]["input_ids"].shape == (64,) and features[1]["labels"].item() == 0
    predictions = tmp_path / "predictions.jsonl"
    task.write_predictions({"7": "positive", "8": "positive"}, predictions)
    assert task.score(task.read_gold(gold, "de"), task.read_predictions(predictions), "de") == {"accuracy": 0.5}
    write_reviews(data, "fr", "test", [("1", "bof", "meh")])
    with pytest.raises(MmadaptError, match=r"fr/test.tsv:2: unknown label 'meh'"):
        task.eval_examples(options, "fr", "test")
