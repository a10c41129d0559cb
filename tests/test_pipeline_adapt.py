"""The tokenizer and adapt stages: what is trained, what stays frozen, what is reused."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import RECIPES, run_in_process, tiny_overrides, write_corpus
from mmadapt.errors import MmadaptError
from mmadapt.model.surgery import load_embeddings

TINY = RECIPES / "tiny_full.yaml"


@pytest.fixture(scope="module")
def new_language_corpus(tmp_path_factory):
    """A 'new language': the test corpus with every word spelt differently."""
    source = write_corpus(tmp_path_factory.mktemp("src") / "src.txt", seed=1)
    table = str.maketrans("abcdefghijklmnopqrstuvwxyz", "αβψδεφγηιξκλμνοπϙρστθωςχυζ")
    target = tmp_path_factory.mktemp("new") / "new.txt"
    target.write_text(source.read_text().translate(table), encoding="utf-8")
    return target


def adapt_overrides(corpus, new_corpus, out, *extra):
    return tiny_overrides(corpus, out, "stages=[pretrain,tokenizer,adapt]",
                          f"languages={{xx: {{corpus: [{new_corpus}]}}}}", "tokenizer.vocab_size=60",
                          "adapt.train={max_steps: 6, lr: 0.01}", *extra)


def test_adapt_trains_only_the_word_embeddings_and_output_bias(tiny_corpus, new_language_corpus, tmp_path,
                                                               monkeypatch):
    import mmadapt.pipeline.stages.adapt as adapt_module

    snapshots = {}

    class RecordingTrainer(adapt_module.Trainer):
        def train(self):
            model = self.module.model
            snapshots["before"] = {k: v.clone() for k, v in model.state_dict().items()}
            snapshots["trainable"] = sorted(n for n, p in model.named_parameters() if p.requires_grad)
            result = super().train()
            snapshots["after"] = {k: v.clone() for k, v in model.state_dict().items()}
            return result

    monkeypatch.setattr(adapt_module, "Trainer", RecordingTrainer)
    out = tmp_path / "run"
    _, result = run_in_process(TINY, adapt_overrides(tiny_corpus, new_language_corpus, out))
    before, after = snapshots["before"], snapshots["after"]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # the tied decoder weight/bias are the same tensors as the embeddings/bias under other names
    allowed = {"roberta.embeddings.word_embeddings.weight", "lm_head.decoder.weight", "lm_head.bias",
               "lm_head.decoder.bias"}
    assert {"roberta.embeddings.word_embeddings.weight", "lm_head.bias"} <= changed <= allowed
    assert set(snapshots["trainable"]) <= allowed
    trained, bias = load_embeddings(result.outputs["adapt/xx"]["embeddings"])
    assert torch.equal(trained, after["roberta.embeddings.word_embeddings.weight"])
    initial, _ = load_embeddings(result.outputs["adapt/xx"]["initial_embeddings"])
    assert initial.shape == trained.shape and not torch.equal(initial, trained)


def test_the_new_tokenizer_shares_no_word_pieces_with_the_source(tiny_corpus, new_language_corpus, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "run"
    _, result = run_in_process(TINY, adapt_overrides(tiny_corpus, new_language_corpus, out))
    new = AutoTokenizer.from_pretrained(out / "tokenizers" / "xx" / "tokenizer")
    source = AutoTokenizer.from_pretrained(result.outputs["pretrain"]["big"])
    shared = (set(new.get_vocab()) & set(source.get_vocab())) - set(source.all_special_tokens) - {"▁"}
    assert shared == set()
    assert new.mask_token_id == len(new) - 1 and new.pad_token_id == source.pad_token_id


def test_finished_stages_are_skipped_and_a_bad_language_corpus_loses_nothing(tiny_corpus, new_language_corpus,
                                                                              tmp_path):
    out = tmp_path / "run"
    run_in_process(TINY, adapt_overrides(tiny_corpus, new_language_corpus, out))
    big = out / "pretrain" / "big" / "model.safetensors"
    stamp = big.stat().st_mtime_ns
    bad = tmp_path / "bad.txt"
    bad.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(MmadaptError, match=r"bad.txt:1: not valid UTF-8"):
        run_in_process(TINY, adapt_overrides(tiny_corpus, new_language_corpus, out,
                                             f"languages={{xx: {{corpus: [{new_language_corpus}]}}, "
                                             f"yy: {{corpus: [{bad}]}}}}"))
    assert big.stat().st_mtime_ns == stamp
    assert (out / "adapt" / "xx" / "embeddings.safetensors").is_file()


def test_logging_and_checkpoint_settings_do_not_rerun_finished_stages(tiny_corpus, new_language_corpus, tmp_path):
    out = tmp_path / "run"
    run_in_process(TINY, adapt_overrides(tiny_corpus, new_language_corpus, out))
    outputs = [out / "pretrain" / "big" / "model.safetensors", out / "adapt" / "xx" / "embeddings.safetensors"]
    stamps = [path.stat().st_mtime_ns for path in outputs]
    _, watched = run_in_process(TINY, adapt_overrides(tiny_corpus, new_language_corpus, out, "train.log_every=1",
                                                      "train.progress_bar=false", "train.save_every=2",
                                                      "train.keep_checkpoints=5", "train.eval_every=3"))
    assert "pretrain" in watched.skipped
    assert [path.stat().st_mtime_ns for path in outputs] == stamps
    run_in_process(TINY, adapt_overrides(tiny_corpus, new_language_corpus, out, "adapt.train.lr=0.02", "rerun=true"))
    assert outputs[0].stat().st_mtime_ns == stamps[0]  # a setting that changes the result re-runs adapt only
    assert outputs[1].stat().st_mtime_ns != stamps[1]
    stamps = [path.stat().st_mtime_ns for path in outputs]
    _, result = run_in_process(TINY, adapt_overrides(tiny_corpus, new_language_corpus, out, "adapt.train.lr=0.02",
                                                     "strategy.adapt_train={max_steps: 8}", "rerun=true"))
    assert "pretrain" in result.skipped and outputs[0].stat().st_mtime_ns == stamps[0]
    assert json.loads((out / "adapt" / "xx" / "train_summary.json").read_text())["steps"] == 8


def test_a_finished_run_moved_to_another_directory_is_found_finished_there(tiny_corpus, new_language_corpus,
                                                                            tmp_path):
    run_in_process(TINY, adapt_overrides(tiny_corpus, new_language_corpus, tmp_path / "run"))
    (tmp_path / "run").rename(tmp_path / "moved")  # the first directory is gone: nothing may still point there
    embeddings = tmp_path / "moved" / "adapt" / "xx" / "embeddings.safetensors"
    tokenizer = tmp_path / "moved" / "tokenizers" / "xx" / "stage_complete.json"
    stamps = [embeddings.stat().st_mtime_ns, tokenizer.stat().st_mtime_ns]
    _, result = run_in_process(TINY, adapt_overrides(tiny_corpus, new_language_corpus, tmp_path / "moved"))
    assert {"pretrain", "adapt/xx"} <= set(result.skipped)
    assert [embeddings.stat().st_mtime_ns, tokenizer.stat().st_mtime_ns] == stamps
    assert not (tmp_path / "run").exists()
    assert result.outputs["adapt/xx"]["embeddings"] == embeddings


def test_a_corpus_edited_in_place_reruns_the_stages_that_read_it_and_only_those(tiny_corpus, new_language_corpus,
                                                                                 tmp_path):
    corpus, new_corpus = tmp_path / "src.txt", tmp_path / "new.txt"
    corpus.write_bytes(tiny_corpus.read_bytes())
    new_corpus.write_bytes(new_language_corpus.read_bytes())
    out = tmp_path / "run"
    run_in_process(TINY, adapt_overrides(corpus, new_corpus, out))
    outputs = {"pretrain": out / "pretrain" / "big" / "model.safetensors",
               "tokenizer": out / "tokenizers" / "xx" / "stage_complete.json",
               "adapt": out / "adapt" / "xx" / "embeddings.safetensors"}

    def rerun(edited=None, *extra):
        stamps = {name: path.stat().st_mtime_ns for name, path in outputs.items()}
        if edited is not None:
            lines = edited.read_text(encoding="utf-8").splitlines()[:-500]
            edited.write_text("\n".join(lines) + "\n", encoding="utf-8")
        run_in_process(TINY, adapt_overrides(corpus, new_corpus, out, "rerun=true", *extra))
        return {name for name, path in outputs.items() if path.stat().st_mtime_ns != stamps[name]}

    assert rerun(new_corpus) == {"tokenizer", "adapt"}
    assert rerun(corpus) == {"pretrain", "adapt"}  # the language's tokenizer does not read the source corpus
    assert rerun(None, "tokenizer.vocab_size=50") == {"tokenizer", "adapt"}


def test_synthetic_task_sizes_leave_the_pretraining_data_fingerprint_as_it_is(tmp_path):
    from mmadapt.pipeline.context import StageContext
    from mmadapt.training.distributed import init_distributed
    from mmadapt.plugin_system.manager import get_plugins
    from mmadapt.pipeline.building_blocks import data_fingerprint
    from mmadapt.recipe import load_recipe

    small = {"corpus_sentences": 200, "nli_train": 10, "nli_dev": 5, "nli_test": 5, "pawsx_train": 10, "pawsx_dev": 5,
             "pawsx_test": 5, "qa_train": 5, "qa_dev": 5, "qa_test": 5}

    def fingerprint(**sizes):
        synth = ", ".join(f"{k}: {v}" for k, v in {**small, **sizes}.items())
        cfg = load_recipe(RECIPES / "quickstart_from_scratch.yaml",
                          [f"output_dir={tmp_path}", f"data.cache_dir={tmp_path}",
                           f"data.synth={{seed: 0, languages: [src, vo], {synth}}}"])
        return data_fingerprint(StageContext(cfg, get_plugins(), init_distributed(), tmp_path, tmp_path))

    assert fingerprint() == fingerprint(pawsx_train=20, qa_test=9)
    assert fingerprint() != fingerprint(corpus_sentences=201)


def test_a_language_listed_in_adapt_without_a_corpus_is_refused_before_any_work(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(MmadaptError, match=r"adapt.languages: 'zz' has no entry under languages"):
        run_in_process(TINY, tiny_overrides(tiny_corpus, out, "stages=[pretrain,tokenizer,adapt]",
                                            "adapt.languages=[zz]"))
    assert not out.exists()
