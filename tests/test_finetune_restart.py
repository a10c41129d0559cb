"""`finetune.restart`: a fine-tune still on the loss it started at is started again with another seed."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import RECIPES, run_in_process
from mmadapt.errors import RecipeError
from mmadapt.training.plateau import PlateauWatch, StuckOnPlateau

CPU = torch.device("cpu")
QUICKSTART = RECIPES / "quickstart_from_scratch.yaml"
#: pretrain (a few steps of a tiny model) and the source fine-tune only
SHRINK = ["train.progress_bar=false", "train.max_steps=6", "train.save_every=0", "train.log_every=2",
          "model.config.num_hidden_layers=2", "model.config.hidden_size=32", "model.config.intermediate_size=64",
          "model.config.num_attention_heads=2", "data.block_size=32", "model.config.max_position_embeddings=34",
          "data.synth={seed: 3, languages: [src, vo], corpus_sentences: 600, nli_train: 120, nli_dev: 30, nli_test: 30}",
          "finetune.train={max_steps: 12, lr: 1.0e-9, warmup_steps: 0, micro_batch_size: 8, save_every: 4, log_every: 2}",
          "tasks.0.max_length=32", "tasks.0.languages=[src, vo]", "languages={vo: {corpus: [synth:vo]}}",
          "strategies=[{name: full}]", "stages=[pretrain, finetune]"]
#: checked at step 8 over windows of 4 steps; with a learning rate of 1e-9 the loss never leaves where it started
RESTART = ["finetune.restart={at_step: 8, window: 4, loss_fraction: 0.9, max_restarts: 2}"]


def _losses(*values: float) -> list[torch.Tensor]:
    return [torch.tensor(v) for v in values]


def test_a_loss_still_at_its_start_at_the_check_step_raises_with_both_window_means():
    watch = PlateauWatch(at_step=4, window=2, loss_fraction=0.9)
    with pytest.raises(StuckOnPlateau) as stuck:
        for step, loss in enumerate(_losses(1.10, 1.12, 1.08, 1.06), start=1):
            watch.after_step(step, loss, CPU)
    assert (stuck.value.step, stuck.value.first, stuck.value.latest) == (4, pytest.approx(1.11), pytest.approx(1.07))


def test_a_loss_that_left_its_start_passes_the_check_and_the_steps_after_it_are_not_watched():
    watch = PlateauWatch(at_step=4, window=2, loss_fraction=0.9)
    for step, loss in enumerate(_losses(1.10, 1.12, 0.9, 0.8, 5.0, 5.0), start=1):
        watch.after_step(step, loss, CPU)
    assert not watch.stuck() and watch.latest == pytest.approx(0.85)


def test_the_last_attempt_is_only_recorded_as_stuck_never_stopped():
    watch = PlateauWatch(at_step=4, window=2, loss_fraction=0.9, raise_when_stuck=False)
    for step, loss in enumerate(_losses(1.1, 1.1, 1.1, 1.1), start=1):
        watch.after_step(step, loss, CPU)
    assert watch.stuck()


def test_a_watch_resumed_from_a_checkpoint_compares_with_the_first_window_it_saved():
    before = PlateauWatch(at_step=6, window=2, loss_fraction=0.9)
    for step, loss in enumerate(_losses(2.0, 2.0, 1.0), start=1):
        before.after_step(step, loss, CPU)
    resumed = PlateauWatch(at_step=6, window=2, loss_fraction=0.9)
    resumed.load(before.state())
    with pytest.raises(StuckOnPlateau) as stuck:
        for step, loss in ((5, torch.tensor(1.9)), (6, torch.tensor(1.9))):
            resumed.after_step(step, loss, CPU)
    assert stuck.value.first == pytest.approx(2.0)


def test_windows_that_overlap_are_refused_naming_the_key(tmp_path):
    with pytest.raises(RecipeError) as refused:
        run_in_process(QUICKSTART, [f"output_dir={tmp_path}", *SHRINK,
                                    "finetune.restart={at_step: 6, window: 4}"])
    assert "finetune.restart.at_step" in str(refused.value) and "at least 8" in str(refused.value)


def test_a_stuck_fine_tune_restarts_with_the_next_seeds_keeps_each_curve_and_counts_every_attempts_flops(
        tmp_path, capsys):
    out = tmp_path / "stuck"
    cfg, _ = run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK, *RESTART])
    stage = out / "full" / "finetune" / "xnli"
    marker = json.loads((stage / "stage_complete.json").read_text())
    restarts = json.loads((stage / "restarts.json").read_text())["restarts"]
    assert [r["seed"] for r in restarts] == [cfg.seed, cfg.seed + 1000] and all(r["step"] == 8 for r in restarts)
    assert marker["metrics"]["restarts"] == 2 and marker["metrics"]["seed"] == cfg.seed + 2000
    # the stuck attempts' curves are kept; each attempt's curve is its own 12 or 8 steps
    for n in (1, 2):
        rows = [json.loads(line) for line in (stage / f"metrics_attempt_{n}.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6, 8]
    tokens_per_step = 8 * 32
    assert marker["metrics"]["flops"] == round((12 + 8 + 8) * tokens_per_step * marker["metrics"]["flops_per_token"])
    printed = capsys.readouterr().out
    assert printed.count("the fine-tune has not left the loss it started at; starting again") == 2
    assert "after 2 restart(s): the model may not have learned the task" in printed

    # stopped after the second restart was recorded: the run goes on with the third attempt, not the first
    (stage / "stage_complete.json").unlink()
    run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK, *RESTART])
    again = json.loads((stage / "stage_complete.json").read_text())
    assert again["metrics"]["seed"] == cfg.seed + 2000 and again["metrics"]["restarts"] == 2
    assert "starting again" not in capsys.readouterr().out


def test_a_check_that_does_not_fire_leaves_the_fine_tuned_model_bit_for_bit_and_off_leaves_the_fingerprint(tmp_path):
    trained = {}
    for name, extra in (("off", ["finetune.restart.at_step=0"]),
                        ("on", ["finetune.restart={at_step: 8, window: 4, loss_fraction: 100.0}"])):
        out = tmp_path / name
        run_in_process(QUICKSTART, [f"output_dir={out}", *SHRINK, "finetune.train.lr=0.001", *extra])
        stage = out / "full" / "finetune" / "xnli"
        trained[name] = load_file(stage / "model" / "model.safetensors")
        marker = json.loads((stage / "stage_complete.json").read_text())
        assert marker["metrics"]["restarts"] == 0 and not (stage / "restarts.json").exists()
        assert ("restart" in marker["settings"]["finetune"]) == (name == "on")
    assert trained["on"].keys() == trained["off"].keys()
    assert all(torch.equal(trained["on"][k], trained["off"][k]) for k in trained["on"])
