"""The transfer comes from the adapted embeddings, not from leakage.

A small pipeline whose fine-tuned model really learned the source task: with the new
language's *untrained* embeddings it scores near chance, and with an oracle embedding
matrix (each new-language word gets the source embedding of its translation, known from
the synthetic lexicon) it scores what it scores on the source language.
"""
from __future__ import annotations

import json

import pytest
import torch

from omegaconf import OmegaConf

from conftest import RECIPES, run_in_process
from mmadapt.data.sources import resolve_synth_paths, synth_file
from mmadapt.model.surgery import swap_word_embeddings
from mmadapt.pipeline.building_blocks import cache_dir
from mmadapt.pipeline.diagnostics.alignment import alignment_at_1, read_dictionary, token_pairs
from mmadapt.plugin_system.manager import get_plugins
from mmadapt.synth.benchmark import resolve_languages
from mmadapt.synth.lexicon import SCRIPTS, build_lexicon, build_meanings

SYNTH = {"seed": 5, "languages": ["src", "vo"], "corpus_sentences": 3000, "nli_train": 1500, "nli_dev": 30,
         "nli_test": 300}
CHANCE = 1 / 3
pytestmark = pytest.mark.slow  # a whole pipeline with a 400-step fine-tune
OVERRIDES = ["train.progress_bar=false", "train.max_steps=20", "train.save_every=0", "train.log_every=10",
             "model.config.num_hidden_layers=2", "model.config.hidden_size=64", "model.config.intermediate_size=128",
             "model.config.num_attention_heads=2", f"data.synth={json.dumps(SYNTH)}",
             "languages={vo: {corpus: [synth:vo], dictionary: 'synth:dictionaries/src-vo.txt'}}",
             "tasks.0.languages=[src, vo]", "adapt.train={max_steps: 5}",
             "finetune.train={max_steps: 400, lr: 0.001, warmup_steps: 20, micro_batch_size: 32}",
             "strategies=[{name: full}]"]


@pytest.fixture(scope="module")
def finetuned_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("control")
    cfg, result = run_in_process(RECIPES / "quickstart_from_scratch.yaml", [f"output_dir={out}", *OVERRIDES])
    return out, cfg, result


def oracle_embeddings(finetuned_model, source_tokenizer, target_tokenizer, seed: int) -> torch.Tensor:
    """Each target token's row is the source row of its translation (special tokens: their own)."""
    meanings = build_meanings(seed)
    src_spec, vo_spec = resolve_languages(["src", "vo"])
    src = build_lexicon("src", SCRIPTS[src_spec.script], meanings, seed).forms
    vo = build_lexicon("vo", SCRIPTS[vo_spec.script], meanings, seed).forms
    translation = {vo[key]: src[key] for key in vo}
    source_vocab, source = source_tokenizer.get_vocab(), finetuned_model.get_input_embeddings().weight.detach()
    weight = torch.zeros(len(target_tokenizer), source.shape[1])
    for token, index in target_tokenizer.get_vocab().items():
        source_token = token if token in source_vocab else "▁" + translation[token.lstrip("▁")]
        # a translation the source vocabulary lacks is what the source model sees as <unk>
        weight[index] = source[source_vocab.get(source_token, source_tokenizer.unk_token_id)]
    return weight


def test_untrained_embeddings_score_near_chance_and_an_oracle_swap_scores_the_source_score(finetuned_run):
    out, cfg, result = finetuned_run
    row = json.loads((out / "report.json").read_text())["rows"][0]
    # The fine-tuned model learned the task, so a near-chance control means something.
    assert row["source_score"] >= CHANCE + 0.12, row
    assert abs(row["control_score"] - CHANCE) <= 0.07, row

    plugins = get_plugins()
    task = plugins.tasks.get("xnli")
    family = plugins.model_families.get("xlmr")
    finetuned = out / "full" / "finetune" / "xnli" / "model"
    model = task.build_model(family, str(finetuned))
    target_tokenizer = family.load_tokenizer(str(out / "tokenizers" / "vo" / "tokenizer"))
    weight = oracle_embeddings(model, family.load_tokenizer(str(finetuned)), target_tokenizer, SYNTH["seed"])
    swap_word_embeddings(model, weight)
    section = OmegaConf.create(resolve_synth_paths(OmegaConf.to_container(cfg.tasks[0], resolve=True), SYNTH,
                                                   cache_dir(cfg)))
    examples = task.eval_examples(section, "vo", "test")
    model.eval()
    with torch.no_grad():
        predictions = task.predict(model, examples, target_tokenizer, section, torch.device("cpu"))
    oracle = task.score(examples, predictions, "vo")["accuracy"]
    # Exact but for words one of the two vocabularies lacks (<unk> on one side only).
    assert oracle == pytest.approx(row["source_score"], abs=0.02)
    assert oracle - row["control_score"] >= 0.1


def test_the_report_gives_alignment_at_1_and_the_oracle_embeddings_score_exactly_one(finetuned_run):
    out, cfg, _ = finetuned_run
    row = json.loads((out / "report.json").read_text())["rows"][0]
    assert 0.0 <= row["alignment_at_1"] <= 1.0 and row["alignment_pairs"] >= 200, row
    assert all("alignment_at_1" in point for point in row["curve"])

    family = get_plugins().model_families.get("xlmr")
    finetuned = out / "full" / "finetune" / "xnli" / "model"
    model = get_plugins().tasks.get("xnli").build_model(family, str(finetuned))
    source_tokenizer = family.load_tokenizer(str(finetuned))
    target_tokenizer = family.load_tokenizer(str(out / "tokenizers" / "vo" / "tokenizer"))
    pairs = token_pairs(read_dictionary(synth_file("synth:dictionaries/src-vo.txt", SYNTH, cache_dir(cfg))),
                        source_tokenizer, target_tokenizer)
    source = model.get_input_embeddings().weight.detach()
    oracle = oracle_embeddings(model, source_tokenizer, target_tokenizer, SYNTH["seed"])
    assert len(pairs) == row["alignment_pairs"]
    assert alignment_at_1(oracle, source, pairs) == 1.0
    untrained = torch.randn(len(target_tokenizer), source.shape[1], generator=torch.Generator().manual_seed(0))
    assert alignment_at_1(untrained, source, pairs) < 0.05
