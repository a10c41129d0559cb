"""Task `pawsx`: paraphrase identification; English training, dev/test per language.

Files (https://storage.googleapis.com/paws/pawsx/x-final.tar.gz): `x-final/en/train.tsv`
(English training), `x-final/<lang>/dev_2k.tsv` and `x-final/<lang>/test_2k.tsv`, each with
the header `id sentence1 sentence2 label` and labels 0 (not a paraphrase) / 1 (paraphrase).
Or `datasets` copies of `paws-x` (one config per language, the same columns). Metric: accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmadapt.api import hookimpl

from mmadapt_plugins.tasks.pair_classification import PairClassificationTask, PairTaskOptions
from mmadapt_plugins.tasks.sources import (check_split, check_unique_ids, hf_download_hint, is_dataset_dir,
                                           load_dataset_split, read_tsv, require_path, take)

PAWSX_LANGUAGES = ["de", "en", "es", "fr", "ja", "ko", "zh"]
_FILES_HINT = ("Download https://storage.googleapis.com/paws/pawsx/x-final.tar.gz, unpack it and set "
               "task.train_file: x-final/en/train.tsv, task.dev_file: x-final/{language}/dev_2k.tsv, "
               "task.test_file: x-final/{language}/test_2k.tsv")


@dataclass
class PawsxOptions(PairTaskOptions):
    """pawsx's task options: `train_file` is the English `x-final/en/train.tsv`; `dev_file` and
    `test_file` are `x-final/{language}/dev_2k.tsv` / `test_2k.tsv`."""

    hf_dataset: str = "paws-x"
    languages: list[str] = field(default_factory=lambda: list(PAWSX_LANGUAGES))


class PawsxTask(PairClassificationTask):
    """PAWS-X: binary paraphrase identification, accuracy."""

    Options = PawsxOptions
    description = "PAWS-X paraphrase identification: English train.tsv, dev_2k/test_2k per language; accuracy"
    labels = (0, 1)

    def train_examples(self, options: Any) -> list[dict]:
        path = options.train_file
        language = options.train_language
        if path is None or is_dataset_dir(path):
            examples = self._from_hf(options, language, "train", spec=path)
        else:
            examples = self.read_tsv(require_path(path, "PAWS-X training file (task.train_file)", _FILES_HINT))
        return take(examples, options.max_train_examples)

    def eval_examples(self, options: Any, language: str, split: str) -> list[dict]:
        check_split(split)
        files = self.data_files(options, split, language)  # the same files stage fingerprints hold
        path = files[0] if files else None
        if path is None or is_dataset_dir(path):
            examples = self._from_hf(options, language, split, spec=path)
        else:
            examples = self.read_tsv(require_path(path, f"PAWS-X {split} file (task.{split}_file)", _FILES_HINT))
        check_unique_ids(examples, f"PAWS-X {split} {language}")
        return examples

    def read_gold(self, path: Path, language: str) -> list[dict]:
        """A PAWS-X tsv (one language per file, so `language` is not needed)."""
        path = require_path(path, "gold file")
        examples = self.read_tsv(path)
        check_unique_ids(examples, str(path))
        return examples

    def read_tsv(self, path: Path) -> list[dict]:
        """Rows of an official PAWS-X tsv."""
        return [{"id": row["id"], "sentence1": row["sentence1"], "sentence2": row["sentence2"],
                 "label": self.label_of(row["label"], f"{path}:{lineno}")}
                for lineno, row in read_tsv(path, ("id", "sentence1", "sentence2", "label"))]

    def _from_hf(self, options: Any, language: str, split: str, spec: str | None) -> list[dict]:
        spec = spec or options.hf_dataset
        hint = f"{hf_download_hint('paws-x', language, 'hf_dataset')}; or use the official files: {_FILES_HINT}"
        dataset, source = load_dataset_split(spec, language, split, language, hint)
        return self.dataset_examples(dataset, source, skip_unlabelled=False)


@hookimpl
def mmadapt_register_tasks(registry):
    registry.add("pawsx", PawsxTask())
