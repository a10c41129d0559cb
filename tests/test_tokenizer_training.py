"""Tests for mmadapt.model.tokenizer_training: layout, round trip, determinism, errors."""
from __future__ import annotations

import random

import pytest

pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")

from mmadapt.model.tokenizer_training import (  # noqa: E402
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


def test_a_sample_is_every_line_in_order_when_the_corpus_is_smaller():
    from mmadapt.model.tokenizer_training import sample_lines

    lines = [f"line {i}" for i in range(50)]
    assert sample_lines(iter(lines), 50, seed=1) == (lines, 50)
    assert sample_lines(iter(lines), 2_000_000, seed=1) == (lines, 50)


def test_a_sample_draws_distinct_lines_from_the_whole_corpus_reproducibly():
    from mmadapt.model.tokenizer_training import sample_lines

    lines = [str(i) for i in range(20_000)]
    sample, seen = sample_lines(iter(lines), 500, seed=7)
    assert seen == 20_000 and len(sample) == len(set(sample)) == 500
    assert sample_lines(iter(lines), 500, seed=7)[0] == sample
    assert sample_lines(iter(lines), 500, seed=8)[0] != sample
    positions = sorted(int(line) for line in sample)
    assert positions[0] < 1000 and positions[-1] > 19_000  # not just the head of the corpus
    assert 8000 < sum(positions) / len(positions) < 12_000  # about uniform: mean near the middle


def test_the_thread_count_defaults_to_the_cores_this_process_may_use():
    import os

    assert SentencePieceConfig().threads() == len(os.sched_getaffinity(0))
    assert SentencePieceConfig(num_threads=3).threads() == 3


def test_a_non_positive_input_sentence_size_is_refused():
    with pytest.raises(ValueError, match="input_sentence_size must be positive"):
        SentencePieceConfig(input_sentence_size=0).validate()
    with pytest.raises(ValueError, match="num_threads"):
        SentencePieceConfig(num_threads=-1).validate()


def test_the_recipe_refuses_a_non_positive_input_sentence_size_with_its_dotted_path(tmp_path):
    from mmadapt.errors import RecipeError
    from mmadapt.recipe import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text("tokenizer: {input_sentence_size: 0}\nmodel: {train_tokenizer: {num_threads: -2}}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    message = str(info.value)
    assert "tokenizer.input_sentence_size: must be at least 1, got 0" in message
    assert "model.train_tokenizer.num_threads: must be at least 0, got -2" in message
    assert load_recipe(recipe, ["tokenizer.input_sentence_size=5", "model.train_tokenizer.num_threads=2"]
                       ).tokenizer.input_sentence_size == 5


_TRAIN_IN_A_CHILD = """
import sys
from pathlib import Path
from mmadapt.model.tokenizer_training import SentencePieceConfig, train_sentencepiece_tokenizer
corpus, out, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
cfg = SentencePieceConfig(vocab_size=400, input_sentence_size=600, num_threads=2)
train_sentencepiece_tokenizer([corpus], out, cfg, seed=seed)
"""


@pytest.mark.slow  # several processes
def test_a_sampled_multi_threaded_training_gives_the_same_vocabulary_in_every_process(corpus, tmp_path):
    import subprocess
    import sys

    def train(name: str, seed: int) -> bytes:
        subprocess.run([sys.executable, "-c", _TRAIN_IN_A_CHILD, str(corpus[0]), str(tmp_path / name), str(seed)],
                       check=True, capture_output=True)
        return (tmp_path / name / SPM_FILE).read_bytes()

    first = train("one", 5)
    assert train("two", 5) == first  # a fresh process: same sample, same threads, same model
    assert train("three", 6) != first  # another seed samples other lines


def test_the_byte_budget_bounds_a_sample_of_long_lines_and_stays_deterministic():
    from mmadapt.model.tokenizer_training import sample_lines

    lines = [f"{i:06d} " + "x" * (100 + i % 300) for i in range(20_000)]  # ~250 bytes a line, ~5 MB
    sample, seen = sample_lines(iter(lines), 2_000_000, seed=7, max_bytes=500_000)
    assert seen == len(lines)
    assert sum(len(line.encode()) + 1 for line in sample) <= 500_000
    assert len(sample) > 1500  # the budget is filled, not starved: ~500 KB / ~250 B
    assert len(set(sample)) == len(sample) and set(sample) <= set(lines)
    again, _ = sample_lines(iter(lines), 2_000_000, seed=7, max_bytes=500_000)
    assert again == sample
    positions = sorted(int(line[:6]) for line in sample)  # uniform: drawn from the whole corpus, not its start
    assert positions[len(positions) // 2] > 7_000 and positions[-1] > 18_000


def test_a_sample_within_the_byte_budget_is_the_same_as_without_one():
    from mmadapt.model.tokenizer_training import DEFAULT_INPUT_BYTES, sample_lines

    lines = [f"line {i} " + "y" * (i % 50) for i in range(30_000)]
    for size in (1_000, 50_000):  # sampled, and taken whole
        assert sample_lines(iter(lines), size, 3, DEFAULT_INPUT_BYTES) == sample_lines(iter(lines), size, 3)
