"""What a run shows while it trains: log lines for cluster logs, quiet third-party bars, few host syncs."""
from __future__ import annotations

import contextlib
import io
import re

import pytest

from conftest import RECIPES, run_in_process, tiny_overrides
from mmadapt.training.metrics import read_metrics
from mmadapt.training.progress import TrainingProgress, format_duration, log_line, quiet_third_party_bars

TINY = RECIPES / "tiny_full.yaml"
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[full\] "  # the wall-clock time and the strategy
                  r"pretrain step (\d+)/(\d+) loss (\d+\.\d{4}) mlm_loss \d+\.\d{4} lr \d\.\d\de-\d\d "
                  r"tokens/s [\d,]+ elapsed \d+:\d\d:\d\d remaining \d+:\d\d:\d\d$")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_durations_read_as_hours_minutes_seconds():
    assert format_duration(0) == "0:00:00"
    assert format_duration(83.4) == "0:01:23"
    assert format_duration(31 * 3600 + 5 * 60) == "31:05:00"


def test_a_log_line_holds_step_every_loss_lr_throughput_and_times():
    line = log_line("adapt/de", 40, 300, {"lr": 9.8e-4, "mlm_loss_mini": 5.5, "loss": 5.12345}, 12345.6, 83, 539)
    assert line == ("adapt/de step 40/300 loss 5.1235 mlm_loss_mini 5.5000 lr 9.80e-04 tokens/s 12,346 "
                    "elapsed 0:01:23 remaining 0:08:59")


def test_a_stage_log_line_starts_with_the_wall_clock_time_and_its_strategy():

    from mmadapt.training.progress import line_prefix

    prefix = line_prefix("minijoint")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[minijoint\]", prefix)
    stream = io.StringIO()
    progress = TrainingProgress("adapt/de", 10, 0, True, False, stream=stream, strategy="minipost")
    progress.report(5, {"loss": 2.0}, 100)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[minipost\] adapt/de step 5/10 loss 2.0000 ", stream.getvalue())


@pytest.mark.parametrize("progress_bar, stream, prints", [
    (False, _Terminal(), True),     # bars off: lines even in a terminal
    (True, io.StringIO(), True),    # stdout redirected to a log: lines
    (True, _Terminal(), False),     # a terminal with bars on: the bar only
])
def test_lines_are_printed_when_bars_are_off_or_stdout_is_not_a_terminal(progress_bar, stream, prints):
    progress = TrainingProgress("pretrain", 10, 0, enabled=True, progress_bar=progress_bar, stream=stream)
    progress.report(5, {"loss": 2.0, "lr": 1e-3}, tokens=640)
    progress.close()
    assert ("pretrain step 5/10 loss 2.0000 lr 1.00e-03" in stream.getvalue()) is prints


def test_only_rank_0_prints():
    stream = io.StringIO()
    TrainingProgress("pretrain", 10, 0, enabled=False, progress_bar=False, stream=stream).report(5, {"loss": 2.0}, 1)
    assert stream.getvalue() == ""


def test_remaining_time_counts_from_the_resumed_step():
    stream = io.StringIO()
    progress = TrainingProgress("pretrain", 100, 50, enabled=True, progress_bar=False, stream=stream)
    progress.started -= 10.0  # ten seconds for the 25 steps since resuming at 50
    progress.report(75, {"loss": 1.0}, tokens=1000)
    assert "remaining 0:00:10" in stream.getvalue()


def test_transformers_loading_and_saving_bars_stay_quiet(tmp_path):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM
    from transformers.utils import logging as hf_logging

    model = XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=32))
    try:
        quiet_third_party_bars()
        out = io.StringIO()
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
            model.save_pretrained(tmp_path)
            XLMRobertaForMaskedLM.from_pretrained(tmp_path)
        assert "Writing model shards" not in out.getvalue() and "Loading weights" not in out.getvalue()
        assert out.getvalue() == ""
    finally:
        hf_logging.enable_progress_bar()


def test_with_bars_off_a_training_prints_one_line_per_log_every_and_reads_losses_only_then(
        tiny_corpus, tmp_path, capsys, monkeypatch):
    import mmadapt.training.trainer

    reductions = []
    real = mmadapt.training.trainer.means_across_ranks

    def counting(values, device):
        reductions.append(sorted(values))
        return real(values, device)

    monkeypatch.setattr(mmadapt.training.trainer, "means_across_ranks", counting)
    out = tmp_path / "every3"
    run_in_process(TINY, tiny_overrides(tiny_corpus, out, "train.max_steps=7", "train.log_every=3",
                                        "train.grad_accum=2"))
    lines = [m for m in (LINE.match(l) for l in capsys.readouterr().out.splitlines()) if m]
    assert [(int(m[1]), int(m[2])) for m in lines] == [(3, 7), (6, 7), (7, 7)]
    # one cross-rank reduction per logging step (3, 6 and the last), none at the other steps
    assert reductions == [["loss", "mlm_loss"]] * 3
    rows = [r for r in read_metrics(out / "pretrain" / "metrics.jsonl") if "loss" in r]
    assert [f"{r['loss']:.4f}" for r in rows] == [m[3] for m in lines]

    # the values logged at steps 3 and 6 are those an every-step run logs there, bit for bit
    every = tmp_path / "every1"
    run_in_process(TINY, tiny_overrides(tiny_corpus, every, "train.max_steps=7", "train.log_every=1",
                                        "train.grad_accum=2"))
    by_step = {r["step"]: r for r in read_metrics(every / "pretrain" / "metrics.jsonl") if "loss" in r}
    assert len(by_step) == 7
    for row in rows:
        assert {k: v for k, v in row.items() if k != "time"} == {k: v for k, v in by_step[row["step"]].items()
                                                                  if k != "time"}
