"""Language packs and `mmadapt swap` / `mmadapt packs` on tiny saved models: which models a pack fits,
what a swap writes, how a pack that does not fit is refused."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch

from conftest import clean_env, mmadapt_command
from mmadapt.commands.swap import HOW_TO_FIT, swap_language
from mmadapt.errors import MmadaptError
from mmadapt.model.packs import BODY_RECORD, body_record_text, describe_body, find_packs, pack_manifest, write_pack
from mmadapt.model.surgery import save_embeddings
from mmadapt.pipeline.outputs import AdaptCost
from mmadapt.plugin_system.manager import get_plugins
from task_helpers import tiny_mlm_dir, tiny_tokenizer

COST = AdaptCost(steps=7, seconds=0.5, tokens=56, flops=1234, flops_per_token=22.0, peak_memory_bytes=None,
                 peak_memory_source=None, data_wait_fraction=None, model_layers=1, final_loss=None)


@pytest.fixture(scope="module")
def plugins():
    return get_plugins()


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    return tiny_mlm_dir(tmp_path_factory.mktemp("packs"))


@pytest.fixture(scope="module")
def pack(mlm_dir, plugins, tmp_path_factory):
    """A pack for the tiny MLM's body: random embeddings and LM-head bias for the tiny tokenizer."""
    from transformers import AutoModelForMaskedLM

    root = tmp_path_factory.mktemp("pack")
    tokenizer = tiny_tokenizer(mlm_dir.parent)
    tokenizer.save_pretrained(root / "tokenizer")
    g = torch.Generator().manual_seed(5)
    weight, bias = torch.randn(len(tokenizer), 32, generator=g), torch.randn(len(tokenizer), generator=g)
    save_embeddings(root / "embeddings.safetensors", weight, bias)
    body = describe_body(AutoModelForMaskedLM.from_pretrained(mlm_dir), "xlmr", plugins.model_families.get("xlmr"))
    manifest = pack_manifest("xx", {"name": "minipost", "k": 1, "new_layers": 1}, "random", COST, body,
                             len(tokenizer), "f" * 64)
    return write_pack(root / "run" / "adapt" / "xx" / "pack", root / "embeddings.safetensors", root / "tokenizer",
                      manifest), weight, bias


def finetuned_qa_model(mlm_dir, out, record: str | None = "body", seed: int = 1):
    """A QA model on the tiny MLM's body with its layers changed, as fine-tuning changes them; saved with
    a body record naming the MLM's body (`record="body"`), another body, or none."""
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(mlm_dir)
    with torch.no_grad():
        for p in model.roberta.encoder.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    model.save_pretrained(out)
    body = describe_body(get_plugins().model_families.get("xlmr").load_pretrained(str(mlm_dir)), "xlmr",
                         get_plugins().model_families.get("xlmr"))["digest"]
    if record is not None:
        (out / BODY_RECORD).write_text(body_record_text(body if record == "body" else record, "xlmr"))
    return model


def test_a_pack_swaps_into_a_model_finetuned_from_its_body_whatever_its_head(mlm_dir, pack, plugins, tmp_path):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    pack_dir, weight, _ = pack
    finetuned = finetuned_qa_model(mlm_dir, tmp_path / "qa")
    assert swap_language(tmp_path / "qa", pack_dir, tmp_path / "out", plugins) == []
    swapped = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "out")
    assert torch.equal(swapped.get_input_embeddings().weight, weight)
    before, after = finetuned.state_dict(), swapped.state_dict()
    assert set(before) == set(after)
    assert all(torch.equal(after[k], v) for k, v in before.items() if "word_embeddings" not in k)
    assert len(AutoTokenizer.from_pretrained(tmp_path / "out")) == weight.shape[0] == swapped.config.vocab_size
    # the output names the body it has, so another pack can be swapped into it
    assert json.loads((tmp_path / "out" / BODY_RECORD).read_text()) == json.loads(
        (tmp_path / "qa" / BODY_RECORD).read_text())


def test_the_pretrained_mlm_itself_takes_the_pack_with_its_lm_head_bias(mlm_dir, pack, plugins, tmp_path):
    from transformers import AutoModelForMaskedLM

    pack_dir, weight, bias = pack
    assert swap_language(mlm_dir, pack_dir, tmp_path / "out", plugins) == []
    swapped = AutoModelForMaskedLM.from_pretrained(tmp_path / "out")
    assert torch.equal(swapped.get_input_embeddings().weight, weight)
    assert torch.equal(swapped.lm_head.bias, bias)
    assert swapped.lm_head.decoder.weight.data_ptr() == swapped.get_input_embeddings().weight.data_ptr()


def test_a_model_without_a_body_record_but_with_the_packs_embedding_module_is_taken_with_a_warning(
        mlm_dir, pack, plugins, tmp_path):
    finetuned_qa_model(mlm_dir, tmp_path / "qa", record=None)
    warnings = swap_language(tmp_path / "qa", pack[0], tmp_path / "out", plugins)
    assert len(warnings) == 1 and f"has no {BODY_RECORD}" in warnings[0] and "taken to descend" in warnings[0]
    assert (tmp_path / "out" / BODY_RECORD).is_file()


def test_a_model_finetuned_from_another_body_is_refused_naming_both_bodies(mlm_dir, pack, plugins, tmp_path):
    finetuned_qa_model(mlm_dir, tmp_path / "qa", record="a" * 64)
    body = json.loads((pack[0] / "manifest.json").read_text())["body"]["digest"]
    with pytest.raises(MmadaptError) as refused:
        swap_language(tmp_path / "qa", pack[0], tmp_path / "out", plugins)
    assert str(refused.value) == (f"the pack does not fit: {tmp_path / 'qa'} was fine-tuned from body aaaaaaaaaaaa "
                                  f"and the pack was trained against body {body[:12]}. {HOW_TO_FIT}; or pass --force to swap anyway")
    assert not (tmp_path / "out").exists()


def test_an_unrelated_body_of_the_same_shape_is_refused_unless_forced(mlm_dir, pack, plugins, tmp_path):
    from transformers import AutoModelForMaskedLM

    other = AutoModelForMaskedLM.from_config(AutoModelForMaskedLM.from_pretrained(mlm_dir).config)  # fresh weights
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(MmadaptError, match=r"'s embedding module \(position and type embeddings, LayerNorm\) is not "
                                           r"body .*'s, .*\. To fit, fine-tune .* or pass --force"):
        swap_language(tmp_path / "other", pack[0], tmp_path / "out", plugins)
    warnings = swap_language(tmp_path / "other", pack[0], tmp_path / "out", plugins, force=True)
    assert len(warnings) == 1 and warnings[0].startswith("swapping anyway (--force): ")
    assert not (tmp_path / "out" / BODY_RECORD).exists()  # a forced swap vouches for no body


def test_a_model_of_another_family_is_refused(mlm_dir, pack, plugins, tmp_path):
    from transformers import RobertaConfig, RobertaForMaskedLM

    config = RobertaConfig(**{k: v for k, v in json.loads((mlm_dir / "config.json").read_text()).items()
                              if k not in ("model_type", "architectures", "transformers_version")})
    RobertaForMaskedLM(config).save_pretrained(tmp_path / "roberta")
    with pytest.raises(MmadaptError) as refused:
        swap_language(tmp_path / "roberta", pack[0], tmp_path / "out", plugins, force=True)  # shapes: not forceable
    assert str(refused.value) == (f"the pack does not fit {tmp_path / 'roberta'}: it holds a roberta model and the "
                                  "pack is for xlm-roberta models (model family xlmr)")


def test_a_model_of_another_hidden_size_is_refused(mlm_dir, pack, plugins, tmp_path):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    settings = json.loads((mlm_dir / "config.json").read_text())
    settings.update(hidden_size=16, intermediate_size=32)
    XLMRobertaForMaskedLM(XLMRobertaConfig(**settings)).save_pretrained(tmp_path / "narrow")
    with pytest.raises(MmadaptError) as refused:
        swap_language(tmp_path / "narrow", pack[0], tmp_path / "out", plugins)
    assert str(refused.value) == (f"the pack does not fit {tmp_path / 'narrow'}: its hidden size is 16, the pack's "
                                  "body's is 32")


def test_swap_refuses_a_directory_without_a_manifest_in_one_line_with_exit_code_2(mlm_dir, pack, tmp_path):
    (tmp_path / "notapack").mkdir()
    out = subprocess.run(mmadapt_command() + ["swap", str(mlm_dir), str(tmp_path / "notapack"), str(tmp_path / "out")],
                         capture_output=True, text=True, env=clean_env())
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"error: {tmp_path / 'notapack'} is not a language pack: it has no manifest.json (the adapt stage writes "
        "packs as <run>/adapt/<language>/pack; `mmadapt packs RUN_DIR` lists them)"]
    assert not (tmp_path / "out").exists()


def test_a_pack_missing_its_embeddings_is_refused(pack, mlm_dir, plugins, tmp_path):
    import shutil

    broken = shutil.copytree(pack[0], tmp_path / "pack")
    (broken / "embeddings.safetensors").unlink()
    with pytest.raises(MmadaptError, match=f"^language pack {broken} is incomplete: embeddings.safetensors is missing$"):
        swap_language(mlm_dir, broken, tmp_path / "out", plugins)


def test_packs_lists_each_pack_of_a_run_with_its_manifest(pack):
    run = pack[0].parents[2]
    assert [(path, manifest["language"]) for path, manifest in find_packs(run)] == [(pack[0], "xx")]
    out = subprocess.run(mmadapt_command() + ["packs", str(run)], capture_output=True, text=True, env=clean_env())
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split() == ["language", "strategy", "k", "init", "steps", "big_model_steps", "flops", "body", "pack"]
    digest = json.loads((pack[0] / "manifest.json").read_text())["body"]["digest"]
    assert row.split() == ["xx", "minipost", "1", "random", "7", "0", "1.23e+03", f"xlmr:{digest[:12]}",
                           "adapt/xx/pack"]
    listed = json.loads(subprocess.run(mmadapt_command() + ["packs", str(run), "--json"], capture_output=True,
                                       text=True, env=clean_env()).stdout)
    assert listed == [{"pack": str(pack[0]), "manifest": json.loads((pack[0] / "manifest.json").read_text())}]


def test_packs_says_when_a_directory_holds_no_packs_and_refuses_one_that_does_not_exist(tmp_path):
    empty = subprocess.run(mmadapt_command() + ["packs", str(tmp_path)], capture_output=True, text=True,
                           env=clean_env())
    assert empty.returncode == 0 and empty.stdout.strip() == (
        f"no language packs under {tmp_path} (each adapt stage writes one, in adapt/<language>/pack)")
    missing = subprocess.run(mmadapt_command() + ["packs", str(tmp_path / "nope")], capture_output=True, text=True,
                             env=clean_env())
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [f"error: {tmp_path / 'nope'} is not a directory (give a run's output_dir)"]


def test_a_model_finetuned_with_trainable_embeddings_is_refused_saying_why_and_how_to_fine_tune_so_it_fits(
        mlm_dir, pack, plugins, tmp_path):
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(mlm_dir)  # transformers' default: every parameter trains
    with torch.no_grad():
        for p in model.roberta.parameters():
            p.add_(0.01)
    model.save_pretrained(tmp_path / "qa")
    with pytest.raises(MmadaptError) as refused:
        swap_language(tmp_path / "qa", pack[0], tmp_path / "out", plugins)
    line = str(refused.value)
    assert "\n" not in line and "embedding module" in line and "embeddings trainable" in line
    assert "embeddings.parameters(): p.requires_grad = False" in line and line.endswith("pass --force to swap anyway")
    assert not (tmp_path / "out").exists()


def test_a_swapped_models_tokenizer_truncates_to_the_models_positions_and_records_no_loading_arguments(
        mlm_dir, pack, plugins, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    swap_language(mlm_dir, pack[0], tmp_path / "out", plugins)
    saved = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "out")
    assert "local_files_only" not in saved
    assert saved["model_max_length"] == model.config.max_position_embeddings - 2  # XLM-R numbers from padding_idx + 1
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    encoded = tokenizer(" ".join(["word"] * 500), truncation=True, return_tensors="pt")
    assert encoded["input_ids"].shape[1] == saved["model_max_length"]
    with torch.no_grad():
        model(**encoded)  # fits the position embeddings: no IndexError
