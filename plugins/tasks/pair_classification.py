"""Sentence-pair classification (XNLI, PAWS-X): labels, features, prediction, accuracy, predictions files.

Examples are ``{"id": str, "sentence1": str, "sentence2": str, "label": L}`` where ``L`` is
one of the task's official label values (``"entailment"`` for XNLI, ``0``/``1`` for PAWS-X).
Predictions are ``{id: L}``; on disk they are JSON lines ``{"id": .., "label": ..}``.
"""
from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from mmadapt.api import DataError, MmadaptError, Task, read_jsonl

from mmadapt_plugins.tasks.heads import length_sorted_batches, load_task_model, to_device
from mmadapt_plugins.tasks.sources import require_path, warn_unmatched

#: encode this many pairs per tokenizer call (keeps memory flat on large training sets)
_ENCODE_CHUNK = 1024


@dataclass
class PairTaskOptions:
    """Task options shared by the sentence-pair classification tasks (beside `name`)."""

    #: the source-language training file, or a `save_to_disk` directory; null: `hf_dataset`'s train split
    train_file: Optional[str] = None
    #: the dev file (`{language}` is filled in where the benchmark has one file per language),
    #: or a `save_to_disk` directory
    dev_file: Optional[str] = None
    #: the test file, likewise
    test_file: Optional[str] = None
    #: for splits whose file is null: a hub name in the local cache, or a directory of per-language copies
    hf_dataset: str = ""
    #: the language of the training data (the `hf_dataset` config when train_file is null)
    train_language: str = "en"
    #: languages evaluated after fine-tuning
    languages: list[str] = field(default_factory=list)
    max_length: int = field(default=128, metadata={"min": 1})
    #: use only the first N training examples (null: all)
    max_train_examples: Optional[int] = field(default=None, metadata={"min": 1})
    eval_batch_size: int = field(default=64, metadata={"min": 1})


class PairClassificationTask(Task):
    """The parts XNLI and PAWS-X share; a subclass sets `labels` and reads its files."""

    metric_names = ("accuracy",)
    official_scale = 1.0
    sequence_length_option = "max_length"
    train_language_option = "train_language"
    #: the official label values; a label's class id is its index here
    labels: ClassVar[tuple] = ()
    #: XNLI's and PAWS-X's evaluation sets are translations, one id per example in every language
    parallel_predictions: ClassVar[bool] = True

    # -- labels -------------------------------------------------------------------------

    def label_of(self, value: Any, where: str) -> Any:
        """The official label for `value` (the label itself, its text, or its class id)."""
        if not isinstance(value, bool):
            if value in self.labels and type(value) is type(self.labels[0]):
                return value
            if isinstance(value, str):
                for label in self.labels:
                    if value.strip() == str(label):
                        return label
            if isinstance(value, int) and 0 <= value < len(self.labels):
                return self.labels[value]
        raise DataError(f"{where}: unknown label {value!r}; labels are {', '.join(map(repr, self.labels))}")

    def dataset_label(self, dataset: Any, value: Any, where: str) -> Any:
        """A `datasets` label (a ClassLabel id is mapped through its names) as an official label."""
        feature = dataset.features.get("label")
        names = getattr(feature, "names", None)
        if names and isinstance(value, int) and 0 <= value < len(names):
            value = names[value]
        return self.label_of(value, where)

    def dataset_examples(self, dataset: Any, source: str, skip_unlabelled: bool) -> list[dict]:
        """Examples from a `datasets` table with (premise, hypothesis) or (sentence1, sentence2) columns.

        Ids come from an `id` or `pairID` column, else the row number. A label of -1 or "-" (no
        annotator consensus, as in MultiNLI) is skipped when `skip_unlabelled`, an error otherwise.
        """
        columns = set(dataset.column_names)
        text = next((pair for pair in (("sentence1", "sentence2"), ("premise", "hypothesis"))
                     if set(pair) <= columns), None)
        if text is None or "label" not in columns:
            raise DataError(f"{source}: expected columns sentence1, sentence2, label (or premise, hypothesis, "
                            f"label); it has {', '.join(dataset.column_names)}")
        id_column = next((c for c in ("id", "pairID") if c in columns), None)
        examples = []
        for i, row in enumerate(dataset):
            if row["label"] in (-1, "-"):
                if skip_unlabelled:
                    continue
                raise DataError(f"{source} row {i}: example without a gold label ({row['label']!r})")
            examples.append({
                "id": str(row[id_column]) if id_column else str(i),
                "sentence1": row[text[0]], "sentence2": row[text[1]],
                "label": self.dataset_label(dataset, row["label"], f"{source} row {i}"),
            })
        return examples

    # -- model and features ---------------------------------------------------------------

    def build_model(self, family: Any, pretrained_dir: str) -> Any:
        """`AutoModelForSequenceClassification` with `len(labels)` outputs on the MLM's body."""
        names = [str(label) for label in self.labels]
        return load_task_model("AutoModelForSequenceClassification", family, pretrained_dir,
                               num_labels=len(self.labels), id2label=dict(enumerate(names)),
                               label2id={name: i for i, name in enumerate(names)})

    def encode(self, examples: list[dict], tokenizer: Any, max_length: int) -> list[dict]:
        """Per example: the tokenizer's tensors for the pair, padded/truncated to `max_length`."""
        features: list[dict] = []
        for start in range(0, len(examples), _ENCODE_CHUNK):
            chunk = examples[start:start + _ENCODE_CHUNK]
            enc = tokenizer([ex["sentence1"] for ex in chunk], [ex["sentence2"] for ex in chunk],
                            truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
            keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
            features.extend({k: enc[k][i] for k in keys} for i in range(len(chunk)))
        return features

    def train_features(self, examples: list[dict], tokenizer: Any, options: Any) -> list[dict]:
        """`input_ids`, `attention_mask` (LongTensor [max_length]) and `labels` (LongTensor [])."""
        import torch

        features = self.encode(examples, tokenizer, options.max_length)
        for feature, ex in zip(features, examples):
            feature["labels"] = torch.tensor(self.labels.index(ex["label"]), dtype=torch.long)
        return features

    def predict(self, model: Any, examples: list[dict], tokenizer: Any, options: Any, device: Any) -> dict[str, Any]:
        """{id: official label}: the arg-max class of each pair, in eval mode, without gradients."""
        import torch

        features = self.encode(examples, tokenizer, options.max_length)
        was_training = model.training
        model.eval()
        classes: list[int] = [0] * len(features)
        try:
            with torch.no_grad():
                for indices, batch in length_sorted_batches(features, options.eval_batch_size):
                    logits = model(**to_device(batch, device)).logits
                    for index, predicted in zip(indices, logits.argmax(dim=-1).tolist()):
                        classes[index] = predicted
        finally:
            model.train(was_training)
        return {ex["id"]: self.labels[c] for ex, c in zip(examples, classes)}

    # -- metric and predictions files -------------------------------------------------------

    def score(self, examples: list[dict], predictions: dict[str, Any], language: str) -> dict[str, float]:
        """{"accuracy": correct / gold examples}; an example without a prediction counts wrong."""
        if not examples:
            raise MmadaptError("no gold examples to score")
        correct = 0
        for ex in examples:
            if ex["id"] in predictions:
                predicted = self.label_of(predictions[ex["id"]], f"prediction for id {ex['id']!r}")
                correct += predicted == ex["label"]
        warn_unmatched(predictions, (ex["id"] for ex in examples))
        return {"accuracy": correct / len(examples)}

    def read_predictions(self, path: Path) -> dict[str, Any]:
        """{id: label} from JSON lines ``{"id": .., "label": ..}``; labels as text or class ids."""
        path = require_path(path, "predictions file")
        predictions: dict[str, Any] = {}
        for lineno, row in read_jsonl(path):
            where = f"{path}:{lineno}"
            missing = [k for k in ("id", "label") if k not in row]
            if missing:
                raise DataError(f"{where}: missing field(s) {', '.join(missing)}; each line is "
                                '{"id": ..., "label": ...}')
            key = str(row["id"])
            if key in predictions:
                raise DataError(f"{where}: a second prediction for id {key!r}")
            predictions[key] = self.label_of(row["label"], where)
        return predictions

    def write_predictions(self, predictions: dict[str, Any], path: Path) -> None:
        """JSON lines ``{"id": .., "label": ..}``, in the order of `predictions`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for key, label in predictions.items():
                f.write(json.dumps({"id": key, "label": label}, ensure_ascii=False) + "\n")
