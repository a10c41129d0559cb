"""Model families: building from a config, loading locally, and never downloading."""
from __future__ import annotations

import pytest

from mmadapt.errors import MmadaptError
from mmadapt.plugin_system.manager import get_plugins


@pytest.mark.parametrize("family, cls", [("xlmr", "XLMRobertaForMaskedLM"), ("roberta", "RobertaForMaskedLM")])
def test_a_family_builds_from_recipe_sizes_and_reaches_its_parts(family, cls, tmp_path):
    from transformers import AutoModelForMaskedLM

    plugin = get_plugins().model_families.get(family)

    class Tok:  # what build_from_config reads from a tokenizer
        pad_token_id, bos_token_id, eos_token_id = 1, 0, 2

    model = plugin.build_from_config({"num_hidden_layers": 3, "hidden_size": 32, "num_attention_heads": 2,
                                      "intermediate_size": 64}, 50, Tok())
    assert type(model).__name__ == cls
    assert len(plugin.layers(model)) == 3 and plugin.word_embeddings(model).weight.shape == (50, 32)
    assert plugin.lm_head(model).decoder.weight is plugin.word_embeddings(model).weight
    model.save_pretrained(tmp_path / "m")
    assert type(plugin.load_pretrained(str(tmp_path / "m"))).__name__ == cls
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path / "m")).__name__ == cls


def test_a_hub_name_that_is_not_cached_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    plugin = get_plugins().model_families.get("xlmr")
    with pytest.raises(MmadaptError, match="not in the local Hugging Face cache.*never downloads"):
        plugin.load_pretrained("xlm-roberta-large")
    with pytest.raises(MmadaptError, match="tokenizer 'xlm-roberta-large' is not a local directory"):
        plugin.load_tokenizer("xlm-roberta-large")


def test_a_config_vocabulary_that_contradicts_the_tokenizer_is_refused():
    class Tok:
        pad_token_id, bos_token_id, eos_token_id = 1, 0, 2

    with pytest.raises(MmadaptError, match="model.config.vocab_size is 99 but the tokenizer has 50 tokens"):
        get_plugins().model_families.get("xlmr").build_from_config({"vocab_size": 99}, 50, Tok())
