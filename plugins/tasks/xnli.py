"""Task `xnli`: train on English MultiNLI (or XNLI's English split), evaluate on XNLI-1.0 per language.

Files (https://cims.nyu.edu/~sbowman/multinli/, https://dl.fbaipublicfiles.com/XNLI/XNLI-1.0.zip):

- training: `multinli_1.0_train.jsonl` (keys gold_label, sentence1, sentence2, pairID, ...);
  rows whose gold_label is "-" (no annotator consensus) are skipped, as is the convention;
- dev/test: `xnli.dev.tsv` / `xnli.test.tsv`, every language in one file, told apart by the
  `language` column; ids are the `pairID` column.

Or `datasets` copies: `xnli` (one config per language; premise, hypothesis, label with
0 entailment, 1 neutral, 2 contradiction; ids are row numbers) from the local cache or saved
with `save_to_disk`. Metric: accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmadapt.api import DataError, hookimpl, read_jsonl

from mmadapt_plugins.tasks.pair_classification import PairClassificationTask, PairTaskOptions
from mmadapt_plugins.tasks.sources import (check_split, check_unique_ids, hf_download_hint, is_dataset_dir,
                                           load_dataset_split, read_tsv, require_keys, require_path, take)

XNLI_LANGUAGES = ["ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"]
_FILES_HINT = ("Download https://dl.fbaipublicfiles.com/XNLI/XNLI-1.0.zip (dev/test) and "
               "https://cims.nyu.edu/~sbowman/multinli/multinli_1.0.zip (training), unzip them and set "
               "task.dev_file / task.test_file to XNLI-1.0/xnli.{dev,test}.tsv and task.train_file to "
               "multinli_1.0/multinli_1.0_train.jsonl")


@dataclass
class XnliOptions(PairTaskOptions):
    """xnli's task options: `train_file` is MultiNLI's `multinli_1.0_train.jsonl`; `dev_file` and
    `test_file` are XNLI-1.0's `xnli.dev.tsv` / `xnli.test.tsv` (all languages in one file)."""

    hf_dataset: str = "xnli"
    languages: list[str] = field(default_factory=lambda: list(XNLI_LANGUAGES))


class XnliTask(PairClassificationTask):
    """XNLI: 3-way natural language inference, accuracy."""

    Options = XnliOptions
    description = "XNLI cross-lingual NLI: MultiNLI training, XNLI-1.0 dev/test per language; accuracy"
    labels = ("entailment", "neutral", "contradiction")

    def train_examples(self, options: Any) -> list[dict]:
        path = options.train_file
        if path is None:
            examples = self._from_hf(options, options.train_language, "train")
        elif is_dataset_dir(path):
            examples = self._from_hf(options, options.train_language, "train", spec=path)
        else:
            examples = self.read_multinli(require_path(path, "XNLI training file (task.train_file)", _FILES_HINT))
        return take(examples, options.max_train_examples)

    def eval_examples(self, options: Any, language: str, split: str) -> list[dict]:
        check_split(split)
        files = self.data_files(options, split, language)  # the same files stage fingerprints hold
        if not files:
            examples = self._from_hf(options, language, split)
        else:
            path = files[0]
            if is_dataset_dir(path):
                examples = self._from_hf(options, language, split, spec=path)
            else:
                examples = self.read_xnli_tsv(require_path(path, f"XNLI {split} file (task.{split}_file)",
                                                           _FILES_HINT), language)
        check_unique_ids(examples, f"XNLI {split} {language}")
        return examples

    def read_gold(self, path: Path, language: str) -> list[dict]:
        """The rows of `language` in an XNLI-1.0 tsv (or a MultiNLI .jsonl file, language ignored)."""
        path = require_path(path, "gold file")
        if path.suffix == ".jsonl":
            examples = self.read_multinli(path)
        else:
            examples = self.read_xnli_tsv(path, language)
        check_unique_ids(examples, str(path))
        return examples

    def read_multinli(self, path: Path) -> list[dict]:
        """MultiNLI JSON lines; "-" (no consensus) rows are skipped."""
        examples = []
        for lineno, row in read_jsonl(path):
            where = f"{path}:{lineno}"
            require_keys(row, ("gold_label", "sentence1", "sentence2", "pairID"), where)
            if row["gold_label"] == "-":
                continue
            examples.append({"id": str(row["pairID"]), "sentence1": row["sentence1"], "sentence2": row["sentence2"],
                             "label": self.label_of(row["gold_label"], where)})
        return examples

    def read_xnli_tsv(self, path: Path, language: str) -> list[dict]:
        """The rows of `language` in an XNLI-1.0 dev/test tsv."""
        examples, seen = [], set()
        for lineno, row in read_tsv(path, ("language", "gold_label", "sentence1", "sentence2", "pairID")):
            seen.add(row["language"])
            if row["language"] != language:
                continue
            examples.append({"id": row["pairID"], "sentence1": row["sentence1"], "sentence2": row["sentence2"],
                             "label": self.label_of(row["gold_label"], f"{path}:{lineno}")})
        if not examples:
            raise DataError(f"{path}: no rows for language {language!r}; languages in the file: "
                            f"{', '.join(sorted(seen)) or 'none'}")
        return examples

    def _from_hf(self, options: Any, language: str, split: str, spec: str | None = None) -> list[dict]:
        spec = spec or options.hf_dataset
        hint = f"{hf_download_hint('xnli', language, 'hf_dataset')}; or use the official files: {_FILES_HINT}"
        dataset, source = load_dataset_split(spec, language, split, language, hint)
        return self.dataset_examples(dataset, source, skip_unlabelled=split == "train")


@hookimpl
def mmadapt_register_tasks(registry):
    registry.add("xnli", XnliTask())
