"""What each stage unit hands the units after it, as typed values.

A stage's work returns one of these; the stage lifecycle (mmadapt.pipeline.lifecycle) writes it to
`stage_complete.json` through `to_record()` and reads a finished unit's marker back through
`from_record()`, so the marker's format is the `StageRecord`'s and readers use attributes, never
key strings. Every type carries the unit's `fingerprint` (what later units' fingerprints and
snapshot and checkpoint matching hold) and `skipped` (found complete by this run).

The pretrain and finetune metrics are reported as they are (`stage_metrics` in report rows) and
read by no later stage, so they stay a dict; the adapt stage's cost, which transfer curves, report
rows and language packs read, is an `AdaptCost`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mmadapt.pipeline.lifecycle import StageRecord


def _path(value: Any) -> Path | None:
    return None if value is None else Path(value)


def _strings(outputs: dict[str, Path | None]) -> dict[str, str]:
    """Outputs as a marker holds them: paths as strings, absent ones left out."""
    return {key: str(value) for key, value in outputs.items() if value is not None}


@dataclass(frozen=True)
class TokenizerOutputs:
    """A language's tokenizer stage: the tokenizer directory."""

    fingerprint: str
    tokenizer: Path
    skipped: bool = False

    @classmethod
    def from_record(cls, record: StageRecord) -> TokenizerOutputs:
        return cls(record.fingerprint, Path(record.outputs["tokenizer"]), record.skipped)

    def to_record(self) -> StageRecord:
        return StageRecord(self.fingerprint, _strings({"tokenizer": self.tokenizer}), {}, self.skipped)


@dataclass(frozen=True)
class PretrainOutputs:
    """A strategy's pretrain stage (or the big model it takes as given): the `save_pretrained` directories."""

    fingerprint: str
    #: the model tasks are fine-tuned on
    big: Path
    #: the model `adapt` trains over instead of `big`, when the strategy made one
    mini: Path | None = None
    #: what the strategy's training measured (its `train_summary.json`) and its analytic FLOPs; reported as is
    metrics: dict[str, Any] = field(default_factory=dict)
    #: any other directories the strategy returned besides `big` and `mini`, kept in the marker as they came
    other_dirs: dict[str, Path] = field(default_factory=dict)
    skipped: bool = False

    @property
    def adapt_model(self) -> Path:
        """The model embeddings are trained over: the mini-model if the strategy made one."""
        return self.mini or self.big

    @classmethod
    def from_record(cls, record: StageRecord) -> PretrainOutputs:
        dirs = {key: Path(value) for key, value in record.outputs.items()}
        return cls(record.fingerprint, dirs.pop("big"), dirs.pop("mini", None), dict(record.metrics), dirs,
                   record.skipped)

    def to_record(self) -> StageRecord:
        outputs = _strings({"big": self.big, "mini": self.mini, **self.other_dirs})
        return StageRecord(self.fingerprint, outputs, dict(self.metrics), self.skipped)


@dataclass(frozen=True)
class FinetuneOutputs:
    """A task's finetune stage: the fine-tuned model directory."""

    fingerprint: str
    model: Path
    #: the Trainer's summary, the analytic FLOPs and the number of training features; reported as is
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False

    @classmethod
    def from_record(cls, record: StageRecord) -> FinetuneOutputs:
        return cls(record.fingerprint, Path(record.outputs["model"]), dict(record.metrics), record.skipped)

    def to_record(self) -> StageRecord:
        return StageRecord(self.fingerprint, _strings({"model": self.model}), dict(self.metrics), self.skipped)


@dataclass(frozen=True)
class InitCost:
    """The embedding initialiser's own cost (mmadapt.pipeline.stages.initialisation); zero: none."""

    flops: int = 0
    seconds: float = 0.0
    #: the booked FLOPs by what they were spent on (`InitInputs.spend`)
    parts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BigModelSteps:
    """What `adapt.big_model_steps` spent over the big model before the mini-model's steps; zero: none."""

    steps: int = 0
    flops: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class BasinRestart:
    """What `adapt.restart` measured and spent (mmadapt.pipeline.stages.basin_probe).

    The probe ran at mini-model step `at_step` and read `source_kappa` (None: undefined, every answer the same).
    Without a restart its forward passes (`probe_flops`, `probe_seconds`) were spent at that step of the run;
    with one (`restarted`), the abandoned attempt's whole cost, its probe's included, comes before the new
    attempt's first step (`abandoned_*`) and the new attempt is not probed again.
    """

    at_step: int
    source_kappa: float | None
    restarted: bool
    probe_flops: int = 0
    probe_seconds: float = 0.0
    abandoned_flops: int = 0
    abandoned_seconds: float = 0.0
    abandoned_tokens: int = 0


@dataclass(frozen=True)
class AdaptCost:
    """What a language's adapt stage measured and spent (its marker's `metrics`).

    `seconds`, `tokens` and `flops` are totals: the initialiser's cost and the big-model steps'
    included; `steps` are the stage's training steps after the first big-model steps (`big_model`),
    `big_model_interleaved` of them over the big model (`adapt.big_model_every`).
    """

    steps: int
    seconds: float
    tokens: int
    flops: int
    flops_per_token: float
    peak_memory_bytes: int | None
    peak_memory_source: str | None
    data_wait_fraction: float | None
    model_layers: int
    final_loss: float | None
    #: None: no big-model steps (the marker then holds no `big_model_*` keys)
    big_model: BigModelSteps | None = None
    #: None only in markers written before the initialiser's cost was recorded (no `init_*` keys)
    init: InitCost | None = None
    #: how many of `steps` ran over the big model (`adapt.big_model_every`); None: none (and no marker key)
    big_model_interleaved: int | None = None
    #: `adapt.restart`'s probe and what it spent (counted in the totals); None: no probe (and no marker key)
    restart: BasinRestart | None = None

    @property
    def init_spent(self) -> InitCost:
        """The initialiser's cost (zero where the marker predates its recording)."""
        return self.init or InitCost()

    @property
    def big_model_spent(self) -> BigModelSteps:
        """The big-model steps' cost (zero without them)."""
        return self.big_model or BigModelSteps()

    def with_big_model_steps(self, start: AdaptCost) -> AdaptCost:
        """This cost with the big-model steps' (`start`, measured as an adapt cost of its own) added."""
        return replace(self, seconds=round(self.seconds + start.seconds, 3), tokens=self.tokens + start.tokens,
                       flops=self.flops + start.flops,
                       peak_memory_bytes=max(self.peak_memory_bytes or 0, start.peak_memory_bytes or 0),
                       big_model=BigModelSteps(start.steps, start.flops, start.seconds))

    def with_restart(self, restart: BasinRestart) -> AdaptCost:
        """This cost with `adapt.restart`'s probe and (if it restarted) the abandoned attempt's cost added."""
        return replace(self, seconds=round(self.seconds + restart.abandoned_seconds, 3),  # the probe's: in the wall
                       tokens=self.tokens + restart.abandoned_tokens,
                       flops=self.flops + restart.probe_flops + restart.abandoned_flops, restart=restart)

    def with_init(self, init: InitCost) -> AdaptCost:
        """This cost with the initialiser's own added (it comes first: step 0 of the score curve)."""
        return replace(self, seconds=round(self.seconds + init.seconds, 3), flops=self.flops + init.flops, init=init)

    def metrics(self) -> dict[str, Any]:
        """The cost as the marker (and the report's `stage_metrics`) holds it, keys in the order it always had."""
        optional = ("big_model", "init", "big_model_interleaved", "restart")
        plain = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in optional}
        if self.big_model is not None:
            plain.update(big_model_steps=self.big_model.steps, big_model_flops=self.big_model.flops,
                         big_model_seconds=self.big_model.seconds)
        if self.init is not None:
            plain.update(init_flops=self.init.flops, init_seconds=self.init.seconds,
                         init_flops_parts=self.init.parts)
        if self.big_model_interleaved is not None:
            plain["big_model_interleaved"] = self.big_model_interleaved
        if self.restart is not None:
            plain["restart"] = asdict(self.restart)
        return plain

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> AdaptCost:
        """The cost a marker's `metrics` hold (keys an older mmadapt did not write are None)."""
        big_model = (BigModelSteps(metrics["big_model_steps"], metrics["big_model_flops"],
                                   metrics["big_model_seconds"]) if "big_model_steps" in metrics else None)
        init = (InitCost(metrics["init_flops"], metrics["init_seconds"], metrics.get("init_flops_parts", {}))
                if "init_flops" in metrics else None)
        restart = BasinRestart(**metrics["restart"]) if "restart" in metrics else None
        plain = {f.name: metrics.get(f.name) for f in fields(cls) if f.name not in ("big_model", "init", "restart")}
        return cls(**plain, big_model=big_model, init=init, restart=restart)


@dataclass(frozen=True)
class AdaptOutputs:
    """A language's adapt stage: its embeddings, the tokenizer they go with, its snapshots and pack, its cost."""

    fingerprint: str
    #: the trained embeddings (and LM-head bias)
    embeddings: Path
    #: the initialiser's embeddings: the transfer stage's control, step 0 of the curves
    initial_embeddings: Path
    #: the language's tokenizer directory (the tokenizer stage's)
    tokenizer: Path
    #: the language pack (mmadapt.model.packs); None in markers written before packs
    pack: Path | None
    #: the embedding snapshots (mmadapt.pipeline.stages.snapshots); None without `adapt.snapshot_every`
    snapshots: Path | None
    cost: AdaptCost
    skipped: bool = False

    @classmethod
    def from_record(cls, record: StageRecord) -> AdaptOutputs:
        out = record.outputs
        return cls(record.fingerprint, Path(out["embeddings"]), Path(out["initial_embeddings"]),
                   Path(out["tokenizer"]), _path(out.get("pack")), _path(out.get("snapshots")),
                   AdaptCost.from_metrics(record.metrics), record.skipped)

    def to_record(self) -> StageRecord:
        outputs = _strings({"embeddings": self.embeddings, "initial_embeddings": self.initial_embeddings,
                            "tokenizer": self.tokenizer, "pack": self.pack, "snapshots": self.snapshots})
        return StageRecord(self.fingerprint, outputs, self.cost.metrics(), self.skipped)


@dataclass(frozen=True)
class TransferOutputs:
    """A (task, language) transfer stage: the target model and its scores."""

    fingerprint: str
    #: the fine-tuned model with the language's embeddings and tokenizer swapped in
    model: Path
    #: the task's first metric, and all its metrics, with the initial embeddings (the control)
    control_score: float
    control_metrics: dict[str, float]
    #: the same with the trained embeddings
    target_score: float
    target_metrics: dict[str, float]
    #: score against adapt compute, one point per snapshot (mmadapt.pipeline.stages.transfer); None without snapshots
    curve: list[dict[str, Any]] | None = None
    skipped: bool = False

    @classmethod
    def from_record(cls, record: StageRecord) -> TransferOutputs:
        m = record.metrics
        return cls(record.fingerprint, Path(record.outputs["model"]), m["control_score"], m["control_metrics"],
                   m["target_score"], m["target_metrics"], m.get("curve"), record.skipped)

    def to_record(self) -> StageRecord:
        metrics = {"control_score": self.control_score, "control_metrics": self.control_metrics,
                   "target_score": self.target_score, "target_metrics": self.target_metrics,
                   **({"curve": self.curve} if self.curve is not None else {})}
        return StageRecord(self.fingerprint, _strings({"model": self.model}), metrics, self.skipped)
