"""The engine and loop: ZeRO stages, launchers, exact resumption, export."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import RECIPES, clean_env, mmadapt_command, run_in_process, tiny_overrides
from mmadapt.errors import MmadaptError
from mmadapt.training.distributed import free_port, shm_buffer_path
from mmadapt.training.metrics import read_metrics

TINY = RECIPES / "tiny_full.yaml"


def losses(run_dir):
    return [row["loss"] for row in read_metrics(run_dir / "pretrain" / "metrics.jsonl") if "loss" in row]


def test_tiny_full_learns_evaluates_and_writes_a_loadable_model(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    cfg, result = run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=40", "train.lr=3e-3",
                                                      f"data.eval=[{tiny_corpus}]", "train.eval_every=20",
                                                      "train.eval_batches=2"))
    history = losses(out)
    assert len(history) == 40
    assert sum(history[-5:]) / 5 < sum(history[:5]) / 5 - 0.3
    evals = [r for r in read_metrics(out / "pretrain" / "metrics.jsonl") if "eval_loss" in r]
    assert [r["step"] for r in evals] == [20, 40]
    assert evals[-1]["eval_loss"] < history[0] - 0.3  # held-out loss well below the untrained loss
    assert (out / "recipe.yaml").is_file() and (out / "pretrain" / "tensorboard").is_dir()
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    big = result.outputs["pretrain"]["big"]
    model = AutoModelForMaskedLM.from_pretrained(big)
    assert model.config.num_hidden_layers == 4 and type(model).__name__ == "XLMRobertaForMaskedLM"
    assert AutoTokenizer.from_pretrained(big).mask_token_id == model.config.vocab_size - 1


def test_a_finished_stage_is_skipped_when_run_again_with_the_same_settings(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    run_in_process(TINY, tiny_overrides(tiny_corpus, out))
    stamp = (out / "pretrain" / "big" / "model.safetensors").stat().st_mtime_ns
    _, again = run_in_process(TINY, tiny_overrides(tiny_corpus, out))
    assert again.skipped == ["pretrain"]
    assert (out / "pretrain" / "big" / "model.safetensors").stat().st_mtime_ns == stamp


def test_a_recipe_copied_to_another_directory_without_a_deepspeed_section_runs(tiny_corpus, tmp_path, monkeypatch):
    text = TINY.read_text()
    project = tmp_path / "project"
    project.mkdir()
    (project / "recipe.yaml").write_text(text[:text.index("deepspeed:")])
    monkeypatch.chdir(project)
    cfg, _ = run_in_process(project / "recipe.yaml", tiny_overrides(tiny_corpus, "runs/copied", "train.max_steps=2"))
    assert cfg.deepspeed.config == "zero2" and cfg.deepspeed.resolved.zero_optimization.stage == 2
    assert len(losses(project / "runs" / "copied")) == 2
    assert (project / "runs" / "copied" / "pretrain" / "big" / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def single_process_losses(tiny_corpus, tmp_path_factory):
    """Loss curves of the same tiny run under ZeRO 0-3 in one process."""
    curves = {}
    for stage in (0, 1, 2, 3, "3_offload"):
        out = tmp_path_factory.mktemp(f"zero{stage}")
        run_in_process(TINY, tiny_overrides(tiny_corpus, out, f"deepspeed.config=ds_configs/zero{stage}.json"))
        curves[stage] = losses(out)
    return curves


@pytest.mark.parametrize("stage", [1, 2, 3, "3_offload"])
def test_every_zero_stage_gives_the_same_losses_as_stage_0(single_process_losses, stage):
    assert len(single_process_losses[stage]) == 8
    assert single_process_losses[stage] == pytest.approx(single_process_losses[0], rel=1e-4)


def test_a_single_cpu_process_builds_no_shared_memory_all_reduce_op_on_a_fresh_machine(tmp_path):
    extensions = tmp_path / "extensions"  # as on a machine that never built a DeepSpeed op
    script = ("from deepspeed.comm import comm\n"
              "from mmadapt.training.distributed import init_distributed, shutdown_distributed\n"
              "info = init_distributed()\n"
              "print('world', info.world_size, 'shm op', comm.cdb.shm_comm_op)\n"
              "shutdown_distributed()\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=clean_env(TORCH_EXTENSIONS_DIR=str(extensions)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world 1 shm op None" in proc.stdout and "built successfully" not in proc.stdout + proc.stderr
    assert not extensions.exists() or not any(extensions.rglob("*.so"))


@pytest.mark.slow
@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_two_processes_under_the_deepspeed_launcher_train_with_each_zero_stage_and_free_their_shared_memory(
        tiny_corpus, tmp_path, stage):
    out, port = tmp_path / "run", str(free_port())
    command = ["deepspeed", "--num_gpus", "2", "--master_port", port, "--module", "mmadapt", "train",
               str(TINY), *tiny_overrides(tiny_corpus, out, f"deepspeed.config=ds_configs/zero{stage}.json")]
    proc = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=300, cwd=RECIPES.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(losses(out)) == 8 and all(l == l for l in losses(out))
    resolved = json.loads((out / "deepspeed.json").read_text())
    assert resolved["train_batch_size"] == 16  # 8 per rank x 2 ranks
    ranks = {f.name for f in (out / "pretrain" / "big").iterdir()}
    assert "model.safetensors" in ranks
    # DeepSpeed's CPU all-reduce buffers (69 MB of RAM a rank) are gone with the run
    assert not [rank for rank in (0, 1) if shm_buffer_path(rank, "127.0.0.1", port).exists()]


@pytest.mark.slow
def test_two_processes_under_torchrun_train(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    command = ["torchrun", "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "mmadapt", "train", str(TINY),
               *tiny_overrides(tiny_corpus, out)]
    proc = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=300, cwd=RECIPES.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(losses(out)) == 8
    assert json.loads((out / "deepspeed.json").read_text())["train_batch_size"] == 16


def _train_command(corpus, out):
    return mmadapt_command() + ["train", str(TINY), *tiny_overrides(
        corpus, out, "train.max_steps=40", "train.save_every=10", "train.keep_checkpoints=2",
        "data.block_size=64", "train.micro_batch_size=16")]


@pytest.mark.slow
def test_a_killed_run_resumes_with_the_same_losses_as_an_unbroken_one(tiny_corpus, tmp_path):
    env = clean_env()
    unbroken, broken = tmp_path / "unbroken", tmp_path / "broken"
    subprocess.run(_train_command(tiny_corpus, unbroken), env=env, check=True, capture_output=True, cwd=RECIPES.parent)

    proc = subprocess.Popen(_train_command(tiny_corpus, broken), env=env, cwd=RECIPES.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    marker = broken / "pretrain" / "checkpoints" / "step_00000020" / "mmadapt_checkpoint.json"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(losses(broken))
    assert 20 <= killed_at < 40, "the run must be killed after a checkpoint and before it finished"
    assert not (broken / "pretrain" / "big").exists()

    resumed = subprocess.run(_train_command(tiny_corpus, broken), env=env, capture_output=True, text=True,
                             cwd=RECIPES.parent)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    assert losses(broken) == losses(unbroken)  # bit-exact, step for step
    assert [r["step"] for r in read_metrics(broken / "pretrain" / "metrics.jsonl")] == list(range(1, 41))


def test_a_half_written_checkpoint_is_never_resumed_from(tmp_path):
    from mmadapt.training.checkpoint import MARKER, find_resume_checkpoint

    root = tmp_path / "checkpoints"
    (root / "step_00000010").mkdir(parents=True)
    (root / "step_00000010" / MARKER).write_text("{}")
    (root / "step_00000020").mkdir()  # no marker: interrupted while publishing
    (root / ".tmp-step_00000030").mkdir()
    assert find_resume_checkpoint(root, "auto") == root / "step_00000010"
    assert find_resume_checkpoint(root, "never") is None
    with pytest.raises(MmadaptError, match="not a complete mmadapt checkpoint"):
        find_resume_checkpoint(root, str(root / "step_00000020"))


def _tiny_model(vocab=40):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=40)
    return XLMRobertaForMaskedLM(config)


@pytest.mark.parametrize("stage", [2, 3])
def test_the_exported_model_gives_the_engines_logits(tmp_path, stage):
    from omegaconf import OmegaConf
    from transformers import AutoModelForMaskedLM

    from mmadapt.training.distributed import init_distributed
    from mmadapt.training.engine import build_engine, trainable_parameters
    from mmadapt.model.export import gathered, save_pretrained_atomic
    from mmadapt.training.objectives import MaskedLMObjective
    from mmadapt.recipe import load_recipe

    cfg = load_recipe(TINY, [f"deepspeed.config=ds_configs/zero{stage}.json", "train.micro_batch_size=2"])
    dist = init_distributed()
    model = _tiny_model()
    objective = MaskedLMObjective(model)
    engine = build_engine(objective, trainable_parameters(objective),
                          OmegaConf.to_container(cfg.deepspeed.resolved), cfg.train, dist)
    ids = torch.randint(5, 40, (2, 12))
    for _ in range(3):
        loss = engine({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids})["loss"]
        engine.backward(loss)
        engine.step()
    engine.eval()
    with torch.no_grad():
        expected = engine.module.model(input_ids=ids).logits
    save_pretrained_atomic(model, tmp_path / "big", dist)
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "big").eval()
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, expected)
    with gathered(model):
        assert model.get_input_embeddings().weight.shape == (40, 32)


def test_an_all_frozen_model_gets_a_clear_error_instead_of_deepspeeds():
    from mmadapt.training.distributed import init_distributed
    from mmadapt.training.engine import build_engine
    from mmadapt.recipe import load_recipe

    cfg = load_recipe(TINY)
    with pytest.raises(MmadaptError, match="nothing to train"):
        build_engine(_tiny_model(), [], {}, cfg.train, init_distributed())


def test_a_stage_rerun_with_other_settings_never_resumes_from_the_old_checkpoints(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "run"
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.save_every=4"))
    assert (out / "pretrain" / "checkpoints" / "step_00000004").is_dir()
    first = losses(out)
    capsys.readouterr()
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.save_every=4", "train.lr=0.002", "rerun=true"))
    assert "resumed from" not in capsys.readouterr().out
    second = losses(out)
    assert len(second) == 8 and second[0] == pytest.approx(first[0], abs=1e-6) and second[-1] != first[-1]


def test_a_finished_stage_whose_model_was_deleted_is_refused_by_name_before_any_work_and_rerun_remakes_it(
        tiny_corpus, tmp_path):
    import shutil

    from mmadapt.pipeline.lifecycle import FinishedStageOutputsMissing

    out = tmp_path / "run"
    run_in_process(TINY, tiny_overrides(tiny_corpus, out))
    shutil.rmtree(out / "pretrain" / "big")
    rows = len(losses(out))
    with pytest.raises(FinishedStageOutputsMissing) as refused:
        run_in_process(TINY, tiny_overrides(tiny_corpus, out))
    lines = str(refused.value).splitlines()
    assert lines[0].startswith(f"pretrain finished in {out / 'pretrain'}, but outputs it wrote are gone; pass --rerun")
    assert lines[1:] == [f"  big: {out / 'pretrain' / 'big'} is gone (deleted or moved since the stage finished)"]
    assert len(losses(out)) == rows  # nothing trained
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "rerun=true"))
    assert (out / "pretrain" / "big" / "model.safetensors").is_file() and len(losses(out)) == rows


def test_changing_a_finished_stages_steps_is_refused_before_any_work_and_keeps_the_finished_model(tiny_corpus,
                                                                                                 tmp_path):
    from mmadapt.pipeline.lifecycle import FinishedStageChanged

    out = tmp_path / "run"
    run_in_process(TINY, tiny_overrides(tiny_corpus, out))
    model = out / "pretrain" / "big" / "model.safetensors"
    stamp, rows = model.stat().st_mtime_ns, len(losses(out))
    with pytest.raises(FinishedStageChanged) as refused:
        run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=6"))
    assert "  train.max_steps: 8 -> 6" in str(refused.value).splitlines()
    assert model.stat().st_mtime_ns == stamp and len(losses(out)) == rows
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=6", "rerun=true"))
    assert model.stat().st_mtime_ns != stamp and len(losses(out)) == 6  # metrics.jsonl holds the new run alone
