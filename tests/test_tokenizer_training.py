"""Tests for mmadapt.tokenizer_training: layout, round trip, determinism, errors."""
from __future__ import annotations

import random

import pytest

pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")

from mmadapt.tokenizer_training import (  # noqa: E402
    SPM_FILE,
    SentencePieceConfig,
    VocabularyTooLargeError,
    train_sentencepiece_tokenizer,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two small text files over a fixed invented vocabulary of 200 words."""
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghiklmnoprstu") for _ in range(rng.randint(2, 8))) for _ in range(200)]
    root = tmp_path_factory.mktemp("corpus")
    files = []
    for name in ("a.txt", "b.txt"):
        path = root / name
        path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(9)) for _ in range(800)) + "\n")
        files.append(path)
    return files


def _lines(files, n=100):
    return [line for f in files for line in f.read_text().splitlines()[:n]]


@pytest.mark.parametrize("model_type", ["unigram", "bpe", "char", "word"])
def test_saved_tokenizer_matches_sentencepiece_ids_after_reload(corpus, tmp_path, model_type):
    import sentencepiece as spm

    out = tmp_path / "tok"
    tok = train_sentencepiece_tokenizer(corpus, out, SentencePieceConfig(vocab_size=300, model_type=model_type))
    reloaded = transformers.AutoTokenizer.from_pretrained(out)
    sp = spm.SentencePieceProcessor(model_file=str(out / SPM_FILE))
    for line in _lines(corpus):
        expected = [0] + sp.encode(line) + [2]
        assert tok(line)["input_ids"] == expected
        assert reloaded(line)["input_ids"] == expected


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_special_tokens_follow_xlmr_layout_with_mask_last(corpus, tmp_path, model_type):
    tok = train_sentencepiece_tokenizer(corpus, tmp_path / "tok", SentencePieceConfig(vocab_size=200, model_type=model_type))
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.cls_token_id == 0 and tok.sep_token_id == 2
    assert tok.mask_token_id == len(tok) - 1 == 200
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, len(tok) - 1]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    pair = tok("abc", "def")["input_ids"]
    assert pair[0] == 0 and pair[-1] == 2 and pair.count(2) == 3  # <s> A </s></s> B </s>


def test_unigram_tokenizer_is_an_xlmr_tokenizer(corpus, tmp_path):
    train_sentencepiece_tokenizer(corpus, tmp_path / "tok", SentencePieceConfig(vocab_size=300))
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert type(reloaded).__name__ == "XLMRobertaTokenizer"
    assert reloaded.decode(reloaded("abc def")["input_ids"], skip_special_tokens=True) == "abc def"


def test_same_input_and_seed_give_identical_vocabulary(corpus, tmp_path):
    cfg = SentencePieceConfig(vocab_size=300)
    first = train_sentencepiece_tokenizer(corpus, tmp_path / "one", cfg, seed=3)
    second = train_sentencepiece_tokenizer(corpus, tmp_path / "two", cfg, seed=3)
    assert first.get_vocab() == second.get_vocab()
    # Byte-identical even though trained in different directories.
    assert (tmp_path / "one" / SPM_FILE).read_bytes() == (tmp_path / "two" / SPM_FILE).read_bytes()
    assert (tmp_path / "one" / "tokenizer.json").read_bytes() == (tmp_path / "two" / "tokenizer.json").read_bytes()


def test_too_large_vocab_with_hard_limit_names_files_and_maximum(corpus, tmp_path):
    cfg = SentencePieceConfig(vocab_size=100_000, hard_vocab_limit=True)
    with pytest.raises(VocabularyTooLargeError) as info:
        train_sentencepiece_tokenizer(corpus, tmp_path / "tok", cfg)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(corpus[0]) in message and str(corpus[1]) in message
    assert "vocab_size=100000" in message and "largest possible is" in message
    assert not (tmp_path / "tok").exists()
    assert list(tmp_path.iterdir()) == []  # the temp dir is cleaned up too


def test_soft_limit_falls_back_to_the_largest_vocabulary_the_corpus_supports(corpus, tmp_path, caplog):
    with pytest.raises(VocabularyTooLargeError) as info:
        train_sentencepiece_tokenizer(corpus, tmp_path / "t", SentencePieceConfig(vocab_size=100_000, hard_vocab_limit=True))
    largest = int(str(info.value).split("largest possible is ")[1].split(".")[0])
    tok = train_sentencepiece_tokenizer(corpus, tmp_path / "tok", SentencePieceConfig(vocab_size=100_000))
    assert len(tok) == largest + 1  # + <mask>
    assert tok.mask_token_id == largest
    assert f"training with {largest} pieces instead" in caplog.text


def test_training_prints_nothing_to_stderr(corpus, tmp_path, capfd):
    train_sentencepiece_tokenizer(corpus, tmp_path / "tok", SentencePieceConfig(vocab_size=300))
    assert capfd.readouterr().err == ""


def test_retraining_replaces_the_directory_and_leaves_no_temp_dirs(corpus, tmp_path):
    out = tmp_path / "tok"
    train_sentencepiece_tokenizer(corpus, out, SentencePieceConfig(vocab_size=200))
    (out / "stale.txt").write_text("from an earlier run")
    tok = train_sentencepiece_tokenizer(corpus, out, SentencePieceConfig(vocab_size=150))
    assert len(tok) == 151
    assert sorted(p.name for p in out.iterdir()) == sorted([SPM_FILE, "tokenizer.json", "tokenizer_config.json"])
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]


def test_bad_settings_are_rejected_before_training(corpus, tmp_path):
    with pytest.raises(ValueError, match="model_type"):
        train_sentencepiece_tokenizer(corpus, tmp_path / "t", SentencePieceConfig(model_type="wordpiece"))
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        train_sentencepiece_tokenizer([tmp_path / "missing.txt"], tmp_path / "t", SentencePieceConfig())
