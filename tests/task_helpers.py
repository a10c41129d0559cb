"""Shared pieces of the task tests: fixture paths, a tiny tokenizer and a tiny saved MLM."""
from __future__ import annotations

import json
from pathlib import Path

from mmadapt.api import task_section

FIXTURES = Path(__file__).resolve().parent / "fixtures"
XNLI_DIR = FIXTURES / "xnli"
PAWSX_DIR = FIXTURES / "pawsx"
SQUAD_DIR = FIXTURES / "squad"
MLQA_DIR = FIXTURES / "mlqa" / "MLQA_V1"

_built: dict[str, object] = {}


def task_options(task, **values):
    """The task's recipe section with `values` set, in the one form the pipeline hands it to the task."""
    return task_section(task, "test", **values)


def fixture_sentences() -> list[str]:
    """Every sentence, context and question of the fixtures (tokenizer training text)."""
    lines = []
    for path in sorted(FIXTURES.rglob("*")):
        if path.suffix == ".tsv":
            for row in path.read_text(encoding="utf-8").splitlines()[1:]:
                lines += [f for f in row.split("\t") if len(f) > 12]
        elif path.suffix == ".jsonl":
            for row in path.read_text(encoding="utf-8").splitlines():
                item = json.loads(row)
                lines += [item["sentence1"], item["sentence2"]]
        elif path.suffix == ".json":
            for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
                for paragraph in article["paragraphs"]:
                    lines.append(paragraph["context"])
                    lines += [qa["question"] for qa in paragraph["qas"]]
    return lines


def tiny_tokenizer(tmp_root: Path):
    """A SentencePiece tokenizer trained on the fixture text (once per test session)."""
    if "tokenizer" not in _built:
        from mmadapt.model.tokenizer_training import SentencePieceConfig, train_sentencepiece_tokenizer

        corpus = tmp_root / "task_corpus.txt"
        corpus.write_text("\n".join(fixture_sentences() * 3) + "\n", encoding="utf-8")
        _built["tokenizer"] = train_sentencepiece_tokenizer([corpus], tmp_root / "task_tokenizer",
                                                            SentencePieceConfig(vocab_size=400))
    return _built["tokenizer"]


def tiny_mlm_dir(tmp_root: Path) -> Path:
    """A randomly initialised 2-layer XLM-R MLM saved with the tiny tokenizer (once per session)."""
    if "mlm" not in _built:
        import torch
        from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

        tokenizer = tiny_tokenizer(tmp_root)
        torch.manual_seed(0)
        config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=130,
                                  pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id)
        out = tmp_root / "tiny_mlm"
        XLMRobertaForMaskedLM(config).save_pretrained(out)
        tokenizer.save_pretrained(out)
        _built["mlm"] = out
    return _built["mlm"]
