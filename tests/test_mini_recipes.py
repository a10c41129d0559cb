"""The shipped mini-model recipes: they validate, and the real-size ones start and write their outputs."""
from __future__ import annotations

import json

import pytest

from conftest import RECIPES, run_cli
from mmadapt.recipe import load_recipe

LARGE = {"num_hidden_layers": 24, "hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096,
         "vocab_size": 250002, "max_position_embeddings": 514}
#: one step of the real shape, on little data: the model is not shrunk, the batch is
ONE_STEP = ["train.max_steps=1", "train.micro_batch_size=1", "train.grad_accum=1", "data.block_size=32",
            "train.progress_bar=false", "train.save_every=0", "train.log_every=1"]
#: the real-size tests run the recipes' pretraining only (tests/test_xlmr_recipes.py runs every stage, small)
PRETRAIN_ONLY = ["stages=[pretrain]"]


def test_real_size_recipes_validate_with_xlmr_large_shape_and_user_set_paths():
    joint = load_recipe(RECIPES / "xlmr_large_minijoint.yaml")
    assert {k: joint.model.config[k] for k in LARGE} == LARGE
    assert (joint.strategy.name, joint.strategy.k, joint.strategy.weight, joint.strategy.layer_rule.name) == \
        ("minijoint", 4, 1.0, "first_k")
    assert joint.model.tokenizer == joint.variables.xlmr
    assert list(joint.data.train) == [joint.variables.english]
    post = load_recipe(RECIPES / "xlmr_large_minipost.yaml")
    assert (post.strategy.name, post.strategy.k, post.strategy.new_layers, post.strategy.new_layer_init) == \
        ("minipost", 4, 2, "random")
    assert post.model.pretrained == post.variables.xlmr


def test_tiny_twins_validate_with_the_same_strategies():
    joint = load_recipe(RECIPES / "tiny_minijoint.yaml")
    post = load_recipe(RECIPES / "tiny_minipost.yaml")
    assert (joint.strategy.name, joint.strategy.k, post.strategy.name, post.strategy.k) == ("minijoint", 2, "minipost", 2)
    assert post.model.pretrained == "runs/tiny_full"


def xlmr_sized_tokenizer(directory, words):
    """A word-level tokenizer with XLM-R's 250002 ids and special-token layout (no hub needed)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for word in words:
        vocab.setdefault(word, len(vocab))
    while len(vocab) < 250001:
        vocab[f"piece{len(vocab)}"] = len(vocab)
    vocab["<mask>"] = 250001
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>"
                            ).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def xlmr_tokenizer(tiny_corpus, tmp_path_factory):
    words = sorted({w for line in tiny_corpus.read_text().splitlines() for w in line.split()})
    return xlmr_sized_tokenizer(tmp_path_factory.mktemp("xlmr-tokenizer"), words)


def save_real_shape_xlmr_large(directory, tokenizer_dir):
    """A real-shape "pretrained" XLM-R large (randomly initialised) with the tokenizer of `tokenizer_dir`:
    what save_pretrained of the hub model holds."""
    from transformers import AutoTokenizer

    from mmadapt.plugin_system.manager import get_plugins

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = {k: v for k, v in LARGE.items() if k != "vocab_size"}
    big = get_plugins().model_families.get("xlmr").build_from_config(config, len(tokenizer), tokenizer)
    big.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def check_outputs(out, mini_layers: list) -> None:
    stage = out / "pretrain"
    manifest = json.loads((stage / "manifest.json").read_text())
    assert [m["big_layer"] for m in manifest["mini_layers"]] == mini_layers
    assert manifest["big_num_layers"] == 24
    assert manifest["flops_per_token"]["mini"] < manifest["flops_per_token"]["big"]
    big_cfg = json.loads((stage / "big" / "config.json").read_text())
    mini_cfg = json.loads((stage / "mini" / "config.json").read_text())
    assert {k: big_cfg[k] for k in LARGE} == LARGE
    assert mini_cfg["num_hidden_layers"] == len(mini_layers) and mini_cfg["mmadapt_big_layers"] == mini_layers
    rows = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 1 and 0 < rows[-1]["loss"] < 100


# ~30 s on 2 idle CPU cores (over a minute when they are shared) and ~14 GB of RAM at peak:
# one bf16 ZeRO-2 step over XLM-R large's 560M parameters
@pytest.mark.slow
def test_real_size_minijoint_recipe_starts_from_scratch_and_writes_its_outputs(xlmr_tokenizer, tiny_corpus, tmp_path):
    out = tmp_path / "run"
    run_cli(RECIPES / "xlmr_large_minijoint.yaml",
            [f"variables.xlmr={xlmr_tokenizer}", f"variables.english={tiny_corpus}", f"output_dir={out}",
             *ONE_STEP, *PRETRAIN_ONLY])
    check_outputs(out, [0, 1, 2, 3])


@pytest.mark.slow
def test_real_size_minipost_recipe_starts_from_a_pretrained_model_and_writes_its_outputs(xlmr_tokenizer, tiny_corpus,
                                                                                       tmp_path):
    large = save_real_shape_xlmr_large(tmp_path / "xlm-roberta-large", xlmr_tokenizer)
    out = tmp_path / "run"
    run_cli(RECIPES / "xlmr_large_minipost.yaml",
            [f"variables.xlmr={large}", f"variables.english={tiny_corpus}", f"output_dir={out}", *ONE_STEP,
             *PRETRAIN_ONLY])
    check_outputs(out, [0, 1, 2, 3, None, None])
