"""The third-party task of docs/tasks.md works as written: registered, loaded, featurised, scored."""
from __future__ import annotations

import importlib
import re
import sys

import pytest

from conftest import REPO
from mmadapt.errors import MmadaptError
from mmadapt.plugin_system.manager import build_plugins
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


@pytest.mark.slow  # a whole pipeline
def test_the_documented_task_plugin_runs_through_finetune_and_transfer(reviews_plugin, tmp_path):
    from conftest import RECIPES, run_in_process
    from mmadapt.data.sources import synth_benchmark_dir

    synth = {"seed": 4, "languages": ["src", "vo"], "corpus_sentences": 600, "nli_train": 30, "nli_dev": 9,
             "nli_test": 9}
    corpora = synth_benchmark_dir(synth, tmp_path / "cache") / "corpus"
    src = (corpora / "src.txt").read_text(encoding="utf-8").splitlines()
    vo = (corpora / "vo.txt").read_text(encoding="utf-8").splitlines()
    labelled = lambda lines: [(str(i), text, ("negative", "positive")[i % 2]) for i, text in enumerate(lines)]  # noqa: E731
    data = tmp_path / "reviews"
    write_reviews(data, "en", "train", labelled(src[:64]))
    write_reviews(data, "src", "test", labelled(src[64:80]))
    write_reviews(data, "vo", "test", labelled(vo[64:80]))  # the same sentences, translated

    plugins = build_plugins(extra=[reviews_plugin])
    overrides = [f"output_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}", "train.progress_bar=false",
                 "train.max_steps=4", "train.save_every=0", "model.config.num_hidden_layers=2",
                 "model.config.hidden_size=32", "model.config.intermediate_size=64",
                 "model.config.num_attention_heads=2", "data.synth=" + str(synth).replace("'", ""),
                 "languages={vo: {corpus: [synth:vo]}}", "adapt.train={max_steps: 3}",
                 "finetune.train={max_steps: 4, micro_batch_size: 8}", "strategies=[{name: full}]",
                 f"tasks=[{{name: reviews, data_dir: {data}, languages: [src, vo], max_length: 32}}]"]
    _, result = run_in_process(RECIPES / "quickstart_from_scratch.yaml", overrides, plugins)

    [row] = result.rows
    assert (row["strategy"], row["task"], row["language"]) == ("full", "reviews", "vo")
    assert all(0.0 <= row[k] <= 1.0 for k in ("source_score", "target_score", "control_score"))
    transfer = tmp_path / "run" / "full" / "transfer" / "reviews" / "vo"
    predicted = task_predictions(reviews_plugin, transfer / "predictions_target.jsonl")
    assert sorted(predicted, key=int) == [str(i) for i in range(16)]  # one prediction per test row
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(transfer / "model", local_files_only=True)
    assert model.get_input_embeddings().weight.shape[0] == len(plugins.model_families.get("xlmr").load_tokenizer(
        str(transfer / "model")))


def task_predictions(module, path):
    """The ids of a predictions file written by the documented plugin."""
    task = build_plugins(extra=[module], load_entry_points=False).tasks.get("reviews")
    return list(task.read_predictions(path))
