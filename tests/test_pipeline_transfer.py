"""The whole pipeline on a shrunken quickstart: report contract, freezing, swap, resume, controls."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from conftest import RECIPES, clean_env, mmadapt_command, run_in_process
from mmadapt.pipeline.lifecycle import FinishedStageChanged
from mmadapt.plugin_system.hookspecs import hookimpl
from mmadapt.plugin_system.manager import build_plugins

#: whole pipelines on tiny models: the fast tier (`-m "not slow"`) leaves them to the whole suite
pytestmark = pytest.mark.slow

QUICKSTART = RECIPES / "quickstart_from_scratch.yaml"
#: the quickstart's shape, small enough to run in well under a minute
SHRINK = ["train.progress_bar=false", "train.max_steps=30", "train.save_every=0", "train.log_every=5",
          "model.config.num_hidden_layers=3", "model.config.hidden_size=32", "model.config.intermediate_size=64",
          "model.config.num_attention_heads=2", "data.block_size=32", "model.config.max_position_embeddings=34",
          "data.synth={seed: 3, languages: [src, vo, na], corpus_sentences: 1500, nli_train: 200, nli_dev: 30, nli_test: 60}",
          "adapt.train={max_steps: 12, lr: 0.003, save_every: 4, log_every: 1}", "adapt.snapshot_every=5",
          "finetune.train={max_steps: 12, lr: 0.0001}", "tasks.0.max_length=32",
          "strategies=[{name: full}, {name: minipost, k: 1, new_layers: 1, reuse: full, adapt_train: {max_steps: 14}}]",
          "adapt.big_model_steps=0"]
#: adapt steps per strategy (minipost's own `adapt_train` budget)
ADAPT_STEPS = {"full": 12, "minipost": 14}
REPORT_KEYS = {"strategy", "task", "language", "source_score", "target_score", "control_score", "adapt_steps",
               "adapt_seconds", "adapt_flops"}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    cfg, result = run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK], build_plugins([FINISHED]))
    return out, cfg, result


class StageListener:
    """A throwaway plugin recording every `mmadapt_stage_finished` call."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def mmadapt_stage_finished(self, stage, output_dir, metrics):
        self.calls.append((stage, output_dir, metrics))


FINISHED = StageListener()


def test_the_stage_finished_hook_fires_once_per_stage_unit_with_its_metrics(small_run):
    out, _, _ = small_run
    fired = [(stage, os.path.relpath(output_dir, out)) for stage, output_dir, _ in FINISHED.calls]
    units = [("tokenizer/vo", "tokenizers/vo"), ("tokenizer/na", "tokenizers/na")]
    for strategy in ("full", "minipost"):
        units += [("pretrain", f"{strategy}/pretrain"), ("adapt/vo", f"{strategy}/adapt/vo"),
                  ("adapt/na", f"{strategy}/adapt/na")]
        units += [("finetune/xnli", f"{strategy}/finetune/xnli")] if strategy == "full" else []  # minipost reuses it
        units += [("transfer/xnli/vo", f"{strategy}/transfer/xnli/vo"), ("transfer/xnli/na", f"{strategy}/transfer/xnli/na")]
    assert sorted(fired) == sorted(units)
    for stage, output_dir, metrics in FINISHED.calls:
        recorded = json.loads((out / os.path.relpath(output_dir, out) / "stage_complete.json").read_text())["metrics"]
        assert metrics == recorded, stage
        if stage.split("/")[0] in ("pretrain", "adapt", "finetune"):
            assert metrics["steps"] > 0 and metrics["flops"] > 0, stage
        if stage.startswith("transfer/"):
            assert 0.0 <= metrics["target_score"] <= 1.0, stage


def test_the_report_has_one_row_per_strategy_task_and_language(small_run):
    out, _, result = small_run
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert [(r["strategy"], r["task"], r["language"]) for r in rows] == [
        ("full", "xnli", "vo"), ("full", "xnli", "na"), ("minipost", "xnli", "vo"), ("minipost", "xnli", "na")]
    for row in rows:
        assert REPORT_KEYS <= set(row)
        assert all(0.0 <= row[k] <= 1.0 for k in ("source_score", "target_score", "control_score"))
        assert row["adapt_steps"] == ADAPT_STEPS[row["strategy"]] and row["adapt_flops"] > 0
    full, mini = rows[0], rows[2]
    # the mini-model is cheaper per step, even taking more steps here
    assert mini["adapt_flops"] / 14 < full["adapt_flops"] / 12 and mini["adapt_flops"] < full["adapt_flops"]
    for row in rows:  # every stage reports what it spent
        for stage in ("pretrain", "adapt", "finetune"):
            spent = row["stage_metrics"][stage]
            assert spent["steps"] > 0 and spent["tokens"] > 0 and spent["flops"] > 0, (stage, spent)
            assert spent["seconds"] > 0 and spent["peak_memory_bytes"] > 0, (stage, spent)
    assert full["stage_metrics"]["pretrain"]["steps"] == 30 and mini["stage_metrics"]["finetune"]["steps"] == 12


def test_each_row_has_a_score_curve_over_adapt_snapshots_ending_at_the_final_embeddings(small_run):
    out, _, _ = small_run
    report = json.loads((out / "report.json").read_text())
    for row in report["rows"]:
        curve = row["curve"]
        steps = ADAPT_STEPS[row["strategy"]]
        # the initial embeddings (at the initialiser's cost: none for `overlap`), every 5 steps, and the last step
        assert [p["step"] for p in curve] == [0, 5, 10, steps]
        assert [p["adapt_flops"] for p in curve] == [round(row["adapt_flops"] * s / steps) for s in (0, 5, 10, steps)]
        assert curve[0]["target_score"] == row["control_score"]
        assert curve[-1]["target_score"] == row["target_score"]  # the last snapshot is the final embeddings:
        adapt_dir = out / row["strategy"] / "adapt" / row["language"]  # scored once, and truly the same file content
        last = load_file(adapt_dir / "snapshots" / f"step_{steps:08d}.safetensors")
        final = load_file(adapt_dir / "embeddings.safetensors")
        assert all(torch.equal(last[k], final[k]) for k in final) and set(last) == set(final)
    assert {(e["strategy"], e["language"]) for e in report["compute_to_reach"]} == {
        ("full", "vo"), ("full", "na"), ("minipost", "vo"), ("minipost", "na")}
    png = out / "adapt_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![target score against adapt compute](adapt_curve.png)" in (out / "report.md").read_text()
    assert "| minipost | xnli | na |" in (out / "report.md").read_text()


def test_finetuning_leaves_the_embedding_module_as_pretrained(small_run):
    out = small_run[0]
    pretrained = load_file(out / "full" / "pretrain" / "big" / "model.safetensors")
    finetuned = load_file(out / "full" / "finetune" / "xnli" / "model" / "model.safetensors")
    embedding_keys = [k for k in finetuned if ".embeddings." in k]
    assert "roberta.embeddings.word_embeddings.weight" in embedding_keys and len(embedding_keys) >= 4
    for key in embedding_keys:
        assert torch.equal(finetuned[key], pretrained[key]), key
    body = [k for k in finetuned if ".encoder." in k]
    assert any(not torch.equal(finetuned[k], pretrained[k]) for k in body)  # the body did train


def test_the_target_model_is_the_finetuned_model_with_only_the_vocabulary_swapped(small_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = small_run[0]
    target_dir = out / "minipost" / "transfer" / "xnli" / "na" / "model"
    finetuned = load_file(out / "full" / "finetune" / "xnli" / "model" / "model.safetensors")
    target = load_file(target_dir / "model.safetensors")
    adapted = load_file(out / "minipost" / "adapt" / "na" / "embeddings.safetensors")
    assert torch.equal(target["roberta.embeddings.word_embeddings.weight"], adapted["word_embeddings"])
    for key, value in finetuned.items():
        if key != "roberta.embeddings.word_embeddings.weight":
            assert torch.equal(target[key], value), key
    model = AutoModelForSequenceClassification.from_pretrained(target_dir)
    tokenizer = AutoTokenizer.from_pretrained(target_dir)
    assert model.config.vocab_size == len(tokenizer)
    assert model(**tokenizer(["ха суду"], return_tensors="pt")).logits.shape == (1, 3)


def test_every_adapt_stage_writes_a_language_pack_for_the_big_models_body_with_its_cost(small_run):
    from mmadapt.model.packs import describe_body, read_manifest
    from mmadapt.plugin_system.manager import get_plugins
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    out, cfg, result = small_run
    family = get_plugins().model_families.get("xlmr")
    # minipost reuses full's big model and adapts over a 2-layer mini-model cut from it: its packs are for
    # the big model's body all the same
    body = describe_body(AutoModelForMaskedLM.from_pretrained(out / "full" / "pretrain" / "big"), "xlmr", family)
    for strategy in ("full", "minipost"):
        for language in ("vo", "na"):
            pack = out / strategy / "adapt" / language / "pack"
            manifest = read_manifest(pack)
            assert result.outputs[f"{strategy}/adapt/{language}"]["pack"] == pack
            stage = json.loads((out / strategy / "adapt" / language / "stage_complete.json").read_text())
            assert (manifest["language"], manifest["strategy"], manifest["k"]) == (
                language, strategy, 1 if strategy == "minipost" else None)
            assert manifest["steps"] == ADAPT_STEPS[strategy] and manifest["flops"] == stage["metrics"]["flops"] > 0
            assert manifest["body"] == body and manifest["adapt_fingerprint"] == stage["fingerprint"]
            assert manifest["init"] == cfg.adapt.init.name
            assert manifest["vocab_size"] == len(AutoTokenizer.from_pretrained(pack / "tokenizer"))
            trained, packed = (load_file(p) for p in (out / strategy / "adapt" / language / "embeddings.safetensors",
                                                      pack / "embeddings.safetensors"))
            assert set(packed) == {"word_embeddings", "lm_head_bias"}
            assert all(torch.equal(trained[k], packed[k]) for k in packed)
            assert packed["word_embeddings"].shape[0] == manifest["vocab_size"]


def test_a_swapped_model_gives_the_logits_of_the_pipelines_own_target_model(small_run, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = small_run[0]
    for strategy in ("full", "minipost"):  # minipost takes full's fine-tuned model
        swapped_dir = tmp_path / strategy
        proc = subprocess.run(mmadapt_command() + ["swap", str(out / "full" / "finetune" / "xnli" / "model"),
                                                   str(out / strategy / "adapt" / "na" / "pack"), str(swapped_dir)],
                              capture_output=True, text=True, env=clean_env())
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        target_dir = out / strategy / "transfer" / "xnli" / "na" / "model"
        tokenizer = AutoTokenizer.from_pretrained(swapped_dir)
        batch = tokenizer(["ха суду", "суду ха ха"], ["ха", "суду"], return_tensors="pt", padding=True)
        assert batch["input_ids"].tolist() == AutoTokenizer.from_pretrained(target_dir)(
            ["ха суду", "суду ха ха"], ["ха", "суду"], return_tensors="pt", padding=True)["input_ids"].tolist()
        with torch.no_grad():
            swapped = AutoModelForSequenceClassification.from_pretrained(swapped_dir).eval()(**batch).logits
            target = AutoModelForSequenceClassification.from_pretrained(target_dir).eval()(**batch).logits
        assert torch.equal(swapped, target)


def test_packs_lists_every_pack_of_a_run(small_run):
    out = small_run[0]
    proc = subprocess.run(mmadapt_command() + ["packs", str(out)], capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[-1]) for r in rows] == [
        ("na", "full", "full/adapt/na/pack"), ("vo", "full", "full/adapt/vo/pack"),
        ("na", "minipost", "minipost/adapt/na/pack"), ("vo", "minipost", "minipost/adapt/vo/pack")]


def test_target_test_data_share_no_surface_tokens_with_the_source_vocabulary(small_run):
    from mmadapt.data.sources import synth_file
    import csv

    out, cfg, _ = small_run
    from transformers import AutoTokenizer

    source = AutoTokenizer.from_pretrained(out / "full" / "pretrain" / "big")
    source_words = set(source.get_vocab()) - set(source.all_special_tokens)
    settings = OmegaConf.to_container(cfg.data.synth, resolve=True)
    with open(synth_file("synth:XNLI-1.0/xnli.test.tsv", settings), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r["language"] != "src"]
    words = {w for r in rows for w in (r["sentence1"] + " " + r["sentence2"]).split()}
    assert rows and words
    assert not {w for w in words if w in source_words or f"▁{w}" in source_words}


def test_a_refinetuned_model_gets_its_own_source_score_not_the_cached_one(tmp_path):
    out = tmp_path / "run"
    run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK])
    cache = out / "full" / "finetune" / "xnli" / "source_test_scores.json"
    cached = json.loads(cache.read_text())
    cache.write_text(json.dumps({**cached, "scores": {"accuracy": 0.0}}))  # a marked score under the current key
    run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK])
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert {r["source_score"] for r in rows} == {0.0}  # same settings: the cache is used
    run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK, "finetune.train={max_steps: 12, lr: 0.0002}", "rerun=true"])
    rows = json.loads((out / "report.json").read_text())["rows"]
    fresh = json.loads(cache.read_text())
    assert fresh["key"] != cached["key"]
    assert [r["source_score"] for r in rows] == [fresh["scores"]["accuracy"]] * len(rows)
    assert fresh["scores"]["accuracy"] > 0.0


def test_the_source_predictions_beside_a_cached_source_score_are_that_splits_after_a_run_of_the_other_split(
        tmp_path):
    out = tmp_path / "run"
    run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK])
    predictions = out / "full" / "finetune" / "xnli" / "predictions_source.jsonl"
    on_test = predictions.read_text()
    run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK, "transfer.split=dev", "rerun=true"])
    assert predictions.read_text() != on_test  # both splits write the one file
    run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK, "rerun=true"])
    assert predictions.read_text() == on_test  # the test split's score was cached; its predictions are written again


def test_retraining_a_reused_big_model_reruns_the_pretraining_built_on_it_which_is_refused_without_rerun(tmp_path):
    out = tmp_path / "run"
    shrink = [a for a in SHRINK if not a.startswith("strategies=")] + ["stages=[pretrain]", "report.baseline=minijoint"]
    minipost = "{name: minipost, k: 1, new_layers: 1, reuse: minijoint, train: {max_steps: 10}}"
    run_in_process(QUICKSTART, [f"output_dir={out}", *shrink, f"strategies=[{{name: minijoint, k: 1}}, {minipost}]"])
    marker = out / "minipost" / "pretrain" / "stage_complete.json"
    before = json.loads(marker.read_text())["fingerprint"]
    retrained = [f"output_dir={out}", *shrink, f"strategies=[{{name: minijoint, k: 2}}, {minipost}]"]
    with pytest.raises(FinishedStageChanged):  # MiniJoint's own pretraining, k 1 -> 2
        run_in_process(QUICKSTART, retrained)
    run_in_process(QUICKSTART, [*retrained, "rerun=true"])
    # MiniPost's mini-model was cut out of and distilled from the old big model: it is made again, not kept
    assert json.loads(marker.read_text())["fingerprint"] != before


def test_a_task_finetune_budget_applies_to_that_task_and_reruns_only_its_finetune(tmp_path):
    out = tmp_path / "run"
    run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK])
    kept = [out / "full" / "pretrain" / "big" / "model.safetensors",
            out / "full" / "adapt" / "vo" / "embeddings.safetensors"]
    stamps = [path.stat().st_mtime_ns for path in kept]
    summary = out / "full" / "finetune" / "xnli" / "train_summary.json"
    assert json.loads(summary.read_text())["steps"] == 12
    run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK, "tasks.0.finetune_train={max_steps: 7}", "rerun=true"])
    assert json.loads(summary.read_text())["steps"] == 7
    assert [path.stat().st_mtime_ns for path in kept] == stamps


def test_a_task_file_edited_in_place_reruns_the_stages_that_read_it_and_only_those(small_run, tmp_path):
    from mmadapt.data.sources import synth_file

    _, cfg, _ = small_run
    settings = OmegaConf.to_container(cfg.data.synth, resolve=True)
    train, test = tmp_path / "train.jsonl", tmp_path / "test.tsv"
    train.write_bytes(synth_file("synth:multinli_1.0/multinli_1.0_train.jsonl", settings).read_bytes())
    test.write_bytes(synth_file("synth:XNLI-1.0/xnli.test.tsv", settings).read_bytes())
    out = tmp_path / "run"
    overrides = [f"output_dir={out}", *SHRINK, "strategies=[{name: full}]", f"tasks.0.train_file={train}",
                 f"tasks.0.test_file={test}"]
    run_in_process(QUICKSTART, overrides)
    run = out / "full"
    outputs = {"adapt": run / "adapt" / "vo" / "embeddings.safetensors",
               "finetune": run / "finetune" / "xnli" / "model" / "model.safetensors",
               "source score": run / "finetune" / "xnli" / "source_test_scores.json",
               "transfer": run / "transfer" / "xnli" / "vo" / "stage_complete.json"}

    def rerun_after_dropping_last_line_of(edited):
        stamps = {name: path.stat().st_mtime_ns for name, path in outputs.items()}
        edited.write_text("".join(edited.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
        run_in_process(QUICKSTART, [*overrides, "rerun=true"])
        return {name for name, path in outputs.items() if path.stat().st_mtime_ns != stamps[name]}

    # XNLI's test file holds every language: the source score and each language's transfer read it
    assert rerun_after_dropping_last_line_of(test) == {"source score", "transfer"}
    assert rerun_after_dropping_last_line_of(train) == {"finetune", "source score", "transfer"}


def test_a_pipeline_killed_during_adapt_resumes_and_reports_the_same(tmp_path):
    env = clean_env()
    command = lambda out: mmadapt_command() + ["train", str(QUICKSTART), f"output_dir={out}", *SHRINK]  # noqa: E731
    unbroken = tmp_path / "unbroken"
    subprocess.run(command(unbroken), env=env, check=True, capture_output=True, cwd=RECIPES.parent)

    broken = tmp_path / "broken"
    proc = subprocess.Popen(command(broken), env=env, cwd=RECIPES.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    marker = broken / "full" / "adapt" / "vo" / "checkpoints" / "step_00000004" / "mmadapt_checkpoint.json"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists() and not (broken / "full" / "adapt" / "vo" / "stage_complete.json").exists()
    pretrain_stamp = (broken / "full" / "pretrain" / "big" / "model.safetensors").stat().st_mtime_ns

    again = subprocess.run(command(broken), env=env, capture_output=True, text=True, cwd=RECIPES.parent)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "pretrain: already complete" in again.stdout and "resumed from" in again.stdout
    assert (broken / "full" / "pretrain" / "big" / "model.safetensors").stat().st_mtime_ns == pretrain_stamp

    def comparable(path):
        rows = json.loads((path / "report.json").read_text())["rows"]
        for row in rows:
            for point in row["curve"]:
                point.pop("adapt_seconds")  # wall time differs; steps, FLOPs and scores must not
        return [{k: v for k, v in r.items() if k not in ("adapt_seconds", "adapt_init_seconds", "adapt_peak_memory_bytes",
                                                         "adapt_data_wait_fraction", "stage_metrics")} for r in rows]

    assert comparable(broken) == comparable(unbroken)


def _full_and_minipost_on_vo(tmp_path, *overrides: str):
    """The shrunken quickstart on `vo` alone at an adapt micro-batch of 64: its config, `full`'s and MiniPost's rows."""
    cfg, result = run_in_process(QUICKSTART, [f"output_dir={tmp_path}", *SHRINK, *overrides, "adapt.train.micro_batch_size=64",
                                              "languages={vo: {corpus: [synth:vo]}}", "tasks.0.languages=[src, vo]"])
    rows = {row["strategy"]: row for row in result.rows}
    return cfg, rows["full"], rows["minipost"]


def test_big_model_steps_come_first_for_a_mini_model_on_their_micro_batch_and_count_in_its_adapt_compute(tmp_path):
    cfg, full, mini = _full_and_minipost_on_vo(tmp_path, "adapt.big_model_steps=4", "adapt.big_model_micro_batch_size=32",
                                               "adapt.big_model_every=0")
    assert full["adapt_big_model_steps"] == 0  # full adapts over the big model anyway
    assert mini["adapt_big_model_steps"] == 4 and mini["adapt_steps"] == ADAPT_STEPS["minipost"]
    spent = mini["stage_metrics"]["adapt"]
    # 4 steps over the big model cost what 4 of full's steps cost (same model and vocabulary), on 32 sequences
    # per step instead of the adapt stage's micro-batch
    per_full_step = full["adapt_flops"] / full["adapt_steps"]
    assert full["adapt_tokens"] == full["adapt_steps"] * 64 * cfg.data.block_size  # the stage's own micro-batch
    share = 32 / 64
    assert spent["big_model_flops"] == pytest.approx(4 * per_full_step * share, rel=1e-6)
    assert (tmp_path / "minipost" / "adapt" / "vo" / "big_model_steps").is_dir()
    per_mini_step = (spent["flops"] - spent["big_model_flops"]) / spent["steps"]
    assert per_mini_step < full["adapt_flops"] / full["adapt_steps"]
    for point in mini["curve"][1:]:  # after the initial embeddings, the curve starts after the big-model steps' cost
        assert point["adapt_flops"] == pytest.approx(spent["big_model_flops"] + per_mini_step * point["step"], abs=1)
        assert point["adapt_seconds"] >= spent["big_model_seconds"]
    # without interleaving the fingerprint holds no `big_model_every`, as before the key existed
    marker = json.loads((tmp_path / "minipost" / "adapt" / "vo" / "stage_complete.json").read_text())
    assert "big_model_every" not in marker["settings"]["adapt"] and "big_model_interleaved" not in spent


def test_snapshot_target_scores_go_to_the_adapt_stages_tensorboard_at_their_steps(small_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, _ = small_run
    row = next(r for r in json.loads((out / "report.json").read_text())["rows"] if r["strategy"] == "full")
    tag = f"snapshot/target_score/{row['task']}/{row['language']}"
    found = []
    for tb_dir in out.rglob("tensorboard"):
        events = EventAccumulator(str(tb_dir))
        events.Reload()
        if tag in events.Tags()["scalars"]:
            found.append([e.step for e in events.Scalars(tag)])
    assert [p["step"] for p in row["curve"]] in found


def test_interleaved_big_model_steps_run_every_nth_step_on_their_micro_batch_and_count_in_the_adapt_compute(tmp_path):
    cfg, full, mini = _full_and_minipost_on_vo(tmp_path, "adapt.big_model_every=3", "adapt.big_model_micro_batch_size=16")
    spent, full_spent = mini["stage_metrics"]["adapt"], full["stage_metrics"]["adapt"]
    assert "big_model_interleaved" not in full_spent  # full adapts over the big model anyway
    assert spent["steps"] == ADAPT_STEPS["minipost"] and spent["big_model_interleaved"] == ADAPT_STEPS["minipost"] // 3
    block = cfg.data.block_size
    over_big, over_mini = spent["big_model_interleaved"], spent["steps"] - spent["big_model_interleaved"]
    assert spent["tokens"] == over_mini * 64 * block + over_big * 16 * block
    # the trainer's own count (its summary, the progress line's tokens/s) reads the big-model steps' 16 too
    summary = json.loads((tmp_path / "minipost" / "adapt" / "vo" / "train_summary.json").read_text())
    assert summary["tokens"] == spent["tokens"]
    # a big-model step costs what full's does per token (same model and vocabulary), on 16 of the 64 sequences
    expected = over_mini * 64 * block * spent["flops_per_token"] + over_big * 16 * block * full_spent["flops_per_token"]
    assert spent["flops"] - spent["init_flops"] == pytest.approx(expected, rel=1e-6)
    # the snapshots (every 5 steps) spread the interleaved steps' cost evenly over the curve
    per_step = (spent["flops"] - spent["init_flops"]) / spent["steps"]
    for point in mini["curve"][1:]:
        assert point["adapt_flops"] == pytest.approx(spent["init_flops"] + per_step * point["step"], abs=1)
    marker = json.loads((tmp_path / "minipost" / "adapt" / "vo" / "stage_complete.json").read_text())
    assert marker["settings"]["adapt"]["big_model_every"] == 3


def test_the_interleaving_setting_enters_only_the_mini_strategies_adapt_fingerprints(small_run):
    out, cfg, _ = small_run
    assert cfg.adapt.big_model_every == 2  # the recipe's
    for marker in out.glob("*/adapt/*/stage_complete.json"):
        settings = json.loads(marker.read_text())["settings"]["adapt"]
        assert settings.get("big_model_every") == (None if marker.parts[-4] == "full" else 2), marker
