"""Task heads on a saved MLM: fixed-shape features, a few fine-tuning steps, predictions layouts."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from mmadapt.errors import MmadaptError
from mmadapt_plugins.model_families import RobertaFamily, XLMRobertaFamily
from mmadapt_plugins.tasks.mlqa import MlqaTask
from mmadapt_plugins.tasks.xnli import XnliTask
from task_helpers import MLQA_DIR, SQUAD_DIR, XNLI_DIR, task_options, tiny_mlm_dir, tiny_tokenizer


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; two oversubscribe a busy 2-core machine (17 s vs 0.3 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    return tiny_mlm_dir(tmp_path_factory.mktemp("task_models"))


@pytest.fixture(scope="module")
def tokenizer(mlm_dir):
    return tiny_tokenizer(mlm_dir.parent)


def test_xnli_fine_tunes_on_multinli_and_predicts_official_labels(mlm_dir, tokenizer, tmp_path):
    task = XnliTask()
    options = task_options(task, train_file=str(XNLI_DIR / "multinli_1.0_train.jsonl"),
                           dev_file=str(XNLI_DIR / "xnli.dev.tsv"), max_length=48, eval_batch_size=2)
    torch.manual_seed(0)  # the new head's initialisation, whatever ran before
    model = task.build_model(XLMRobertaFamily(), str(mlm_dir))
    assert type(model).__name__ == "XLMRobertaForSequenceClassification" and model.config.num_labels == 3
    features = task.train_features(task.train_examples(options), tokenizer, options)
    assert len(features) == 6 and set(features[0]) == {"input_ids", "attention_mask", "labels"}
    assert features[0]["input_ids"].shape == (48,) and features[1]["labels"].item() == 2  # contradiction
    batch = default_collate(features)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(60):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5  # it learns the six training pairs

    dev = task.eval_examples(options, "de", "dev")
    predictions = task.predict(model, dev, tokenizer, options, torch.device("cpu"))
    assert model.training  # predict restores the mode it found
    assert list(predictions) == ["1", "2", "3"] and set(predictions.values()) <= set(task.labels)
    path = tmp_path / "predictions.jsonl"
    task.write_predictions(predictions, path)
    assert task.read_predictions(path) == predictions
    assert 0.0 <= task.score(dev, predictions, "de")["accuracy"] <= 1.0


def test_pair_predictions_sorted_by_length_and_cut_to_each_batchs_longest_pair_are_the_full_width_ones(
        mlm_dir, tokenizer):
    from types import SimpleNamespace

    from mmadapt_plugins.tasks.heads import length_sorted_batches

    task = XnliTask()
    options = task_options(task, dev_file=str(XNLI_DIR / "xnli.dev.tsv"), max_length=48, eval_batch_size=2)
    torch.manual_seed(0)
    model = task.build_model(XLMRobertaFamily(), str(mlm_dir)).eval()
    examples = task.eval_examples(options, "de", "dev")
    examples = examples + [dict(ex, id=f"{ex['id']}b", sentence2=ex["sentence2"] + " und so weiter und so fort")
                           for ex in examples]
    features = task.encode(examples, tokenizer, options.max_length)
    lengths = [int(f["attention_mask"].sum()) for f in features]
    batches = list(length_sorted_batches(features, 2))
    assert [i for indices, _ in batches for i in indices] == sorted(range(len(features)), key=lengths.__getitem__)
    for indices, batch in batches:  # each batch as wide as its longest pair, narrower than max_length
        assert batch["input_ids"].shape[1] == max(lengths[i] for i in indices) < options.max_length
    with torch.no_grad():  # one pair at a time, padded to max_length, against the cut batches' rows
        one_by_one = torch.cat([model(**{k: v[None] for k, v in f.items()}).logits for f in features])
        for indices, batch in batches:
            torch.testing.assert_close(model(**batch).logits, one_by_one[indices], rtol=1e-4, atol=1e-5)

    class ByLength(torch.nn.Module):  # answers class (length mod 3): each prediction names its own pair
        def forward(self, input_ids, attention_mask, **_):
            return SimpleNamespace(logits=torch.nn.functional.one_hot(attention_mask.sum(dim=1) % 3, 3).float())

    predictions = task.predict(ByLength(), examples, tokenizer, options, torch.device("cpu"))
    assert list(predictions) == [ex["id"] for ex in examples]
    assert list(predictions.values()) == [task.labels[n % 3] for n in lengths] and len(set(predictions.values())) > 1


def test_mlqa_features_train_a_qa_head_and_predictions_are_context_substrings(mlm_dir, tokenizer, tmp_path):
    task = MlqaTask()
    options = task_options(task, train_file=str(SQUAD_DIR / "train-v1.1.json"), mlqa_dir=str(MLQA_DIR),
                           max_length=96, doc_stride=24, max_query_length=24, eval_batch_size=4)
    model = task.build_model(XLMRobertaFamily(), str(mlm_dir))
    assert type(model).__name__ == "XLMRobertaForQuestionAnswering"
    features = task.train_features(task.train_examples(options), tokenizer, options)
    assert set(features[0]) == {"input_ids", "attention_mask", "start_positions", "end_positions"}
    assert all(f["input_ids"].shape == (96,) and f["start_positions"].shape == () for f in features)
    loss = model(**default_collate(features)).loss
    loss.backward()
    assert torch.isfinite(loss)

    zh = task.eval_examples(options, "zh", "test")
    predictions = task.predict(model, zh, tokenizer, options, torch.device("cpu"))
    assert list(predictions) == [ex["id"] for ex in zh]
    for ex in zh:
        assert predictions[ex["id"]] in ex["context"]
    path = tmp_path / "predictions.json"
    task.write_predictions(predictions, path)
    assert task.read_predictions(path) == predictions
    scores = task.score(zh, predictions, "zh")
    assert set(scores) == {"exact_match", "f1"} and 0.0 <= scores["f1"] <= 1.0


def test_a_checkpoint_of_another_family_is_refused(mlm_dir):
    with pytest.raises(MmadaptError, match="holds a XLMRobertaConfig model, but the recipe's model family expects "
                                           "RobertaConfig"):
        XnliTask().build_model(RobertaFamily(), str(mlm_dir))


def test_a_checkpoint_missing_body_weights_is_refused_and_the_expected_head_swap_is_quiet(mlm_dir, tmp_path, capfd):
    import shutil

    from safetensors.torch import load_file, save_file

    XnliTask().build_model(XLMRobertaFamily(), str(mlm_dir))  # MLM head dropped, classifier new: no report
    assert "LOAD REPORT" not in capfd.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(mlm_dir, broken)
    weights = load_file(broken / "model.safetensors")
    dropped = next(k for k in weights if ".encoder.layer.0.attention.self.query.weight" in k)
    save_file({k: v for k, v in weights.items() if k != dropped}, broken / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(MmadaptError, match=r"lacks 1 weights of the model body \(roberta\.encoder\.layer\.0\."
                                           r"attention\.self\.query\.weight\)"):
        XnliTask().build_model(XLMRobertaFamily(), str(broken))
