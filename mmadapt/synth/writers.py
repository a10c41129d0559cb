"""Writing the benchmark in the file formats of the real datasets.

- MultiNLI 1.0 training data: JSON lines with MultiNLI's keys (``multinli_1.0_train.jsonl``).
- XNLI 1.0 dev/test: one tab-separated file per split with XNLI's header and every
  language's rows, told apart by the ``language`` column. As in XNLI, the parse columns
  are empty and the ``*_tokenized`` columns hold the space-separated words.
- PAWS-X: tab-separated ``id sentence1 sentence2 label`` files, one per language and split.
- SQuAD v1.1 / MLQA: ``{"version": "1.1", "data": [articles]}`` JSON, one file per language
  and split; question ids are shared by every language's file.
- Corpora: one sentence per line.

Files are written with "\\n" line ends and UTF-8 so the same content gives the same bytes.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable, Sequence

from mmadapt.synth.languages import Language
from mmadapt.synth.nli import NliExample
from mmadapt.synth.paraphrase import ParaphrasePair
from mmadapt.synth.qa import QaParagraph, render_paragraph

XNLI_COLUMNS = (
    "language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
    "sentence2_parse", "sentence1", "sentence2", "promptID", "pairID", "genre", "label1", "label2", "label3",
    "label4", "label5", "sentence1_tokenized", "sentence2_tokenized", "match",
)
GENRE = "synthetic"
PAWSX_COLUMNS = ("id", "sentence1", "sentence2", "label")
SQUAD_VERSION = "1.1"
PARAGRAPHS_PER_ARTICLE = 10


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """One line per item."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def write_multinli_jsonl(path: Path, examples: Sequence[NliExample], language: Language) -> None:
    """MultiNLI-layout JSON lines; promptID/pairID follow MultiNLI's "<n>" / "<n><label letter>"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for i, ex in enumerate(examples):
            premise, hypothesis = language.render(ex.premise), language.render(ex.hypothesis)
            record = {
                "annotator_labels": [ex.label],
                "genre": GENRE,
                "gold_label": ex.label,
                "pairID": f"{i}{ex.label[0]}",
                "promptID": str(i),
                "sentence1": premise.text,
                "sentence1_binary_parse": premise.binary_parse,
                "sentence1_parse": premise.parse,
                "sentence2": hypothesis.text,
                "sentence2_binary_parse": hypothesis.binary_parse,
                "sentence2_parse": hypothesis.parse,
            }
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_xnli_tsv(path: Path, examples: Sequence[NliExample], languages: Sequence[Language]) -> None:
    """XNLI-layout TSV: a header, then each language's rows; an example keeps its IDs in every language."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        # XNLI is read with QUOTE_NONE, so nothing may be quoted; our words hold no tabs or quotes.
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n", escapechar=None)
        writer.writerow(XNLI_COLUMNS)
        for language in languages:
            for i, ex in enumerate(examples):
                s1, s2 = language.text(ex.premise), language.text(ex.hypothesis)
                writer.writerow((
                    language.code, ex.label, "", "", "", "", s1, s2, str(i), str(i), GENRE,
                    ex.label, ex.label, ex.label, ex.label, ex.label, s1, s2, "True",
                ))


def write_pawsx_tsv(path: Path, pairs: Sequence[ParaphrasePair], language: Language) -> None:
    """PAWS-X-layout TSV for one language; ids are 1, 2, ... as in PAWS-X, the same in every language."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        # PAWS-X is read with QUOTE_NONE too; our words hold no tabs or quotes.
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n", escapechar=None)
        writer.writerow(PAWSX_COLUMNS)
        for i, pair in enumerate(pairs, start=1):
            writer.writerow((str(i), language.text(pair.sentence1), language.text(pair.sentence2), str(pair.label)))


def write_squad_json(path: Path, paragraphs: Sequence[QaParagraph], language: Language, split: str) -> None:
    """SQuAD v1.1 / MLQA-layout JSON for one language: articles of paragraphs, each with its questions.

    Question ids are ``<split>-<n>`` and article titles ``synthetic-<split>-<n>``, so the same
    question has the same id in every language's file.
    """
    articles = []
    qid = 0
    for a in range(0, len(paragraphs), PARAGRAPHS_PER_ARTICLE):
        rendered = []
        for paragraph in paragraphs[a:a + PARAGRAPHS_PER_ARTICLE]:
            out = render_paragraph(language, paragraph)
            qas = []
            for question, answer, start in out.qas:
                qas.append({"answers": [{"answer_start": start, "text": answer}], "id": f"{split}-{qid:05d}",
                            "question": question})
                qid += 1
            rendered.append({"context": out.context, "qas": qas})
        articles.append({"paragraphs": rendered, "title": f"synthetic-{split}-{a // PARAGRAPHS_PER_ARTICLE:04d}"})
    path.parent.mkdir(parents=True, exist_ok=True)
    # Compact like the official files; key order is fixed by construction.
    path.write_text(json.dumps({"version": SQUAD_VERSION, "data": articles}, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def write_json(path: Path, data: object) -> None:
    """Indented, key-sorted JSON, so equal data gives equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


