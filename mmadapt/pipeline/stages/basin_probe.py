"""`adapt.restart`: part-way through a mini strategy's adaptation, read whether its embeddings transfer.

A mini strategy's embeddings can settle where the mini-model reads them well and the big model does not: they
then transfer at chance however long they train on (docs/benchmarks.md, "Restarting an adaptation that missed the
big model's basin"). Going on with more of the big model's data from there did not bring them back; starting again
with every big-model step on the adapt stage's whole micro-batch did. The probe tells the two cases apart without
the baseline and without target labels: at `adapt.restart.at_step` the embeddings are swapped into the task's
fine-tuned model, which answers the target language's evaluation inputs (`transfer.split`), and `source_kappa`
(mmadapt.pipeline.diagnostics.collapse) compares those answers with its answers to the same examples in the source
language. Below `adapt.restart.min_source_kappa` the adapt stage starts again (mmadapt.pipeline.stages.adapt).

Rank 0 evaluates; every rank gets the reading. The probe leaves the training's random state as it found it, so
an adaptation it lets go on is the one it would have been without it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmadapt.errors import MmadaptError
from mmadapt.files.digests import digest
from mmadapt.model.surgery import swap_vocabulary
from mmadapt.pipeline.building_blocks import model_family
from mmadapt.pipeline.context import StageContext
from mmadapt.pipeline.diagnostics.collapse import source_kappa
from mmadapt.pipeline.outputs import FinetuneOutputs
from mmadapt.pipeline.stages.transfer import predict, source_predictions_path, source_scores
from mmadapt.training.distributed import broadcast_object
from mmadapt.training.flops import config_forward_flops_per_token
from mmadapt.training.trainer import preserved_rng

#: the target predictions of the probe, in the adapt stage's directory
PROBE_PREDICTIONS = "restart_probe_predictions"


@dataclass(frozen=True)
class ProbeReading:
    """What one probe read (`source_kappa`: None where every answer was the same) and spent."""

    source_kappa: float | None
    flops: int
    seconds: float


class SourceKappaProbe:
    """Reads `source_kappa` of a language's embeddings over a task's fine-tuned model."""

    def __init__(self, ctx: StageContext, task_section: Any, finetuned: FinetuneOutputs, language: str,
                 tokenizer_dir: Path):
        self.ctx, self.task_section, self.finetuned, self.language = ctx, task_section, finetuned, language
        self.tokenizer_dir = tokenizer_dir
        self.task = ctx.plugins.tasks.get(task_section.name)
        source_scores(ctx, task_section, finetuned)  # the source-language answers (cached beside the model)

    @property
    def fingerprint(self) -> str:
        """What the reading depends on besides the embeddings: the fine-tuned model, the task, the split."""
        return digest("source_kappa_probe", self.finetuned.fingerprint, self.task_section.name,
                      self.ctx.cfg.transfer.split, self.ctx.cfg.transfer.source_language)

    def read(self, weight: torch.Tensor, bias: torch.Tensor | None, stage_dir: Path) -> ProbeReading:
        """The reading of these embeddings; their predictions go to `stage_dir` (`PROBE_PREDICTIONS`). Every rank
        gets it, or the same MmadaptError."""
        reading, problem = None, None
        if self.ctx.dist.is_main:
            started = time.perf_counter()
            try:
                with preserved_rng():
                    kappa, flops = self._read(weight, bias, stage_dir)
                reading = ProbeReading(kappa, flops, round(time.perf_counter() - started, 3))
            except MmadaptError as exc:
                problem = str(exc)
        reading, problem = broadcast_object((reading, problem))
        if problem:
            raise MmadaptError(problem)
        return reading

    def _read(self, weight: torch.Tensor, bias: torch.Tensor | None, stage_dir: Path) -> tuple[float | None, int]:
        """(`source_kappa` or None, the forward passes' FLOPs), on this rank."""
        family = model_family(self.ctx)
        model = self.task.build_model(family, str(self.finetuned.model))
        swap_vocabulary(model, weight, bias)
        tokenizer = family.load_tokenizer(str(self.tokenizer_dir))
        path = Path(stage_dir) / f"{PROBE_PREDICTIONS}.{self.task.predictions_suffix}"
        tokens = _TokenCount()
        hook = model.register_forward_pre_hook(tokens, with_kwargs=True)
        try:
            predict(self.ctx, self.task, self.task_section, model, tokenizer, self.language, path)
        finally:
            hook.remove()
        source = self.task.read_predictions(source_predictions_path(self.finetuned, self.task))
        measured = source_kappa(self.task.read_predictions(path), source)
        if measured is None:
            raise MmadaptError(f"adapt.restart: the {self.task_section.name} evaluation examples of "
                               f"{self.language!r} and of the source language share too few ids to compare answers; "
                               "the probe needs evaluation sets that translate one another (or set "
                               "adapt.restart.at_step: 0)")
        length = self.task.option_value(self.task_section, self.task.sequence_length_option)
        length = int(length) if isinstance(length, int) else int(self.ctx.cfg.data.block_size)
        # the tokens the model's forward passes read, padding included; per token an MLM head in place of the task's
        # and attention over the task's whole sequence length: at most what they cost
        flops = tokens.count * config_forward_flops_per_token(model.config, model.config.num_hidden_layers, length)
        return measured.get("source_kappa"), int(flops)


class _TokenCount:
    """A forward pre-hook counting the input tokens (padding included) of every forward pass of a model."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.count += int(ids.numel()) if ids is not None else 0
