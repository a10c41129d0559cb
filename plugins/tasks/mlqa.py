"""Tasks `mlqa` (train on SQuAD v1.1, evaluate on MLQA per language) and `squad` (English only).

Files: SQuAD v1.1 `train-v1.1.json` / `dev-v1.1.json`
(https://rajpurkar.github.io/SQuAD-explorer/dataset/) and MLQA
(https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip), whose
`MLQA_V1/{dev,test}/{dev,test}-context-<c>-question-<q>.json` we read with c == q == the
language. All are SQuAD-layout JSON. Or `datasets` copies: `squad` (train/validation) and
`mlqa` (configs `mlqa.<c>.<q>`, validation/test).

Metrics: exact match and F1 by the official scripts' rules (`qa_metrics`): MLQA's per-language
normalisation for `mlqa`, SQuAD v1.1's for `squad`; printed on their 0-100 scale.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mmadapt.api import MmadaptError, hookimpl

from mmadapt_plugins.tasks.extractive_qa import ExtractiveQATask, dataset_qa_examples, read_squad_json
from mmadapt_plugins.tasks.qa_metrics import MLQA_ARTICLES, SQUAD_RULES, AnswerRules, mlqa_rules
from mmadapt_plugins.tasks.sources import (check_split, check_unique_ids, hf_download_hint, is_dataset_dir,
                                           load_dataset_split, require_path, take)

MLQA_LANGUAGES = sorted(MLQA_ARTICLES)
_SQUAD_HINT = ("Download train-v1.1.json (and dev-v1.1.json) from https://rajpurkar.github.io/SQuAD-explorer/ "
               "and set task.train_file (task.dev_file) to it")
_MLQA_HINT = ("Download https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip, unzip it and set task.mlqa_dir to the "
              "MLQA_V1 directory (or task.dev_file / task.test_file with {language})")


@dataclass
class QaSettings:
    """Span settings every extractive QA task takes."""

    #: tokens per span: question, context window and special tokens
    max_length: int = field(default=384, metadata={"min": 1})
    #: tokens shared by consecutive context windows of a long context
    doc_stride: int = field(default=128, metadata={"min": 1})
    #: questions are cut to this many tokens
    max_query_length: int = field(default=64, metadata={"min": 1})
    #: longest predicted answer, in tokens
    max_answer_length: int = field(default=30, metadata={"min": 1})
    #: start and end candidates tried per span
    n_best_size: int = field(default=20, metadata={"min": 1})
    max_train_examples: Optional[int] = field(default=None, metadata={"min": 1})
    eval_batch_size: int = field(default=32, metadata={"min": 1})


@dataclass
class MlqaOptions(QaSettings):
    """`task:` options of mlqa (beside `name: mlqa`)."""

    #: SQuAD v1.1 `train-v1.1.json`, or a `save_to_disk` directory; null: `hf_train_dataset`
    train_file: Optional[str] = None
    #: the unpacked MLQA_V1 directory (dev/ and test/ inside)
    mlqa_dir: Optional[str] = None
    #: a dev file (or `save_to_disk` directory) with `{language}` filled in; overrides mlqa_dir
    dev_file: Optional[str] = None
    test_file: Optional[str] = None
    #: training data when train_file is null: a hub name in the local cache
    hf_train_dataset: str = "squad"
    #: evaluation data when neither a file nor mlqa_dir is set: a hub name or a directory of per-language copies
    hf_dataset: str = "mlqa"
    languages: list[str] = field(default_factory=lambda: list(MLQA_LANGUAGES))


@dataclass
class SquadOptions(QaSettings):
    """`task:` options of squad (beside `name: squad`)."""

    train_file: Optional[str] = None
    #: SQuAD v1.1 `dev-v1.1.json`, or a `save_to_disk` directory; null: `hf_dataset`'s validation split
    dev_file: Optional[str] = None
    hf_dataset: str = "squad"
    languages: list[str] = field(default_factory=lambda: ["en"])


def _squad_train(options: Any, hf_option: str) -> list[dict]:
    path = options.train_file
    if path is not None and not is_dataset_dir(path):
        return read_squad_json(require_path(path, "SQuAD v1.1 training file (task.train_file)", _SQUAD_HINT))
    spec = path or options[hf_option]
    hint = f"{hf_download_hint('squad', None, hf_option)}; or: {_SQUAD_HINT}"
    return dataset_qa_examples(*load_dataset_split(spec, None, "train", "en", hint))


class MlqaTask(ExtractiveQATask):
    """MLQA: extractive QA, context and question in the same language; EM/F1 by MLQA's rules."""

    Options = MlqaOptions
    description = "MLQA extractive QA: SQuAD v1.1 training, MLQA dev/test per language; EM and F1 (0-100)"

    def rules(self, language: str) -> AnswerRules:
        return mlqa_rules(language)

    def train_examples(self, options: Any) -> list[dict]:
        return take(_squad_train(options, "hf_train_dataset"), options.max_train_examples)

    def data_files(self, options: Any, split: str, language: str) -> list[str]:
        files = super().data_files(options, split, language)
        if not files and split != "train" and options.mlqa_dir is not None:
            name = f"{split}-context-{language}-question-{language}.json"
            files = [str(Path(options.mlqa_dir) / split / name)]
        return files

    def eval_examples(self, options: Any, language: str, split: str) -> list[dict]:
        check_split(split)
        self.rules(language)  # an unsupported language fails before any data is read
        files = self.data_files(options, split, language)
        path = files[0] if files else None
        if path is not None and not is_dataset_dir(path):
            examples = read_squad_json(require_path(path, f"MLQA {split} file", _MLQA_HINT))
        else:
            hint = f"{hf_download_hint('mlqa', f'mlqa.{language}.{language}', 'hf_dataset')}; or: {_MLQA_HINT}"
            examples = dataset_qa_examples(*load_dataset_split(path or options.hf_dataset,
                                                               f"mlqa.{language}.{language}", split, language, hint))
        check_unique_ids(examples, f"MLQA {split} {language}")
        return examples


class SquadTask(ExtractiveQATask):
    """SQuAD v1.1: English extractive QA; EM/F1 by the SQuAD v1.1 script's rules."""

    Options = SquadOptions
    description = "SQuAD v1.1 extractive QA (English; MLQA's training set); EM and F1 (0-100)"

    def rules(self, language: str) -> AnswerRules:
        return SQUAD_RULES

    def train_examples(self, options: Any) -> list[dict]:
        return take(_squad_train(options, "hf_dataset"), options.max_train_examples)

    def eval_examples(self, options: Any, language: str, split: str) -> list[dict]:
        check_split(split)
        if split != "dev":
            raise MmadaptError("SQuAD v1.1 has no public test set; evaluate the dev split")
        path = options.dev_file
        if path is not None and not is_dataset_dir(path):
            examples = read_squad_json(require_path(path, "SQuAD v1.1 dev file (task.dev_file)", _SQUAD_HINT))
        else:
            hint = f"{hf_download_hint('squad', None, 'hf_dataset')}; or: {_SQUAD_HINT}"
            examples = dataset_qa_examples(*load_dataset_split(path or options.hf_dataset, None, split,
                                                               language, hint))
        check_unique_ids(examples, "SQuAD dev")
        return examples


@hookimpl
def mmadapt_register_tasks(registry):
    registry.add("mlqa", MlqaTask())
    registry.add("squad", SquadTask())
