"""The training loop shared by every strategy and stage.

Features and the recipe keys that turn them on:
- optimiser, LR warm-up + linear/cosine decay: `train.lr`, `train.warmup_steps`, `train.schedule`
- gradient accumulation and clipping: `train.grad_accum`, `train.max_grad_norm`
- ZeRO stage, offload and precision: `deepspeed.config`, `precision`
- periodic evaluation: `train.eval_every`, `train.eval_batches`
- logging (rank 0: a progress bar in a terminal, else one stdout line per `log_every` steps (see
  mmadapt.training.progress); metrics.jsonl, TensorBoard): `train.log_every`, `train.progress_bar`
- checkpoints and exact resumption: `train.save_every`, `train.keep_checkpoints`, `train.resume`
- a NaN/infinite loss or gradient norm stops the stage (or drops the batch): `train.nonfinite`,
  `train.max_nonfinite_skips`
- SIGTERM/SIGUSR1: every rank finishes its step, a checkpoint is saved, the run stops (mmadapt.training.stopping)
- per-step hooks for the caller: `before_step(step)` (e.g. adapt's interleaved big-model steps) and
  `on_step(step, seconds)` (e.g. adapt's embedding snapshots)

The module handed in maps a batch to a dict of scalar losses; `loss` is optimised and
every entry is logged (so MiniJoint can report its two heads separately).
"""
from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from omegaconf import OmegaConf

from mmadapt.data.mlm import MaskedBlocks, eval_batches, train_loader
from mmadapt.errors import MmadaptError
from mmadapt.files.atomic import write_text_atomic
from mmadapt.pipeline.context import StageContext
from mmadapt.training.checkpoint import (CHECKPOINTS, MARKER, find_resume_checkpoint, load_checkpoint, save_checkpoint,
                                         stage_checkpoints, step_tag)
from mmadapt.training.distributed import broadcast_object, max_across_ranks, mean_across_ranks, means_across_ranks
from mmadapt.training.engine import build_engine
from mmadapt.training.memory import PeakMemory
from mmadapt.training.metrics import MetricsLogger
from mmadapt.training.plateau import PlateauWatch
from mmadapt.training.progress import TrainingProgress
from mmadapt.training.stopping import (EXIT_PREEMPTED, Diverged, NonFiniteGuard, PreemptionWatch, Preempted,
                                       diverged_message)


#: written into the stage directory at the end of training: `TrainResult.summary()`
TRAIN_SUMMARY = "train_summary.json"


@dataclass
class TrainResult:
    """What a finished training run reports."""

    steps: int
    resumed_from: int
    wall_seconds: float
    last_metrics: dict[str, float] = field(default_factory=dict)
    engine: Any = None
    #: input positions trained on in this run (all ranks; steps before a resume not included)
    tokens: int = 0
    #: peak memory during the loop, largest rank, and how it was measured (see mmadapt.training.memory)
    peak_memory_bytes: int = 0
    peak_memory_source: str = ""
    #: seconds spent waiting in `next(batches)`, and their share of the loop's wall time (rank mean)
    data_wait_seconds: float = 0.0
    data_wait_fraction: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The stage-metrics view: steps, seconds, tokens, peak memory, data-wait share, final loss."""
        return {"steps": self.steps, "seconds": round(self.wall_seconds, 3), "tokens": self.tokens,
                "peak_memory_bytes": self.peak_memory_bytes, "peak_memory_source": self.peak_memory_source,
                "data_wait_fraction": round(self.data_wait_fraction, 5), "final_loss": self.last_metrics.get("loss")}


def read_train_summary(stage_dir: Path) -> dict[str, Any]:
    """The `TrainResult.summary()` the last training in `stage_dir` wrote ({} when none did), for a stage
    whose code never sees the TrainResult: the pretrain stage, whose strategy returns only directories."""
    path = Path(stage_dir) / TRAIN_SUMMARY
    return json.loads(path.read_text()) if path.is_file() else {}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (callers offset the seed per rank)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Python's, NumPy's and torch's random state as they were before the block: work done inside a training run
    (a probe of its embeddings) leaves the run's random draws, and so its result, as they would have been."""
    state = _rng_state()
    try:
        yield
    finally:
        _set_rng_state(state)


@dataclass
class _LoopCounters:
    """What the loop counts on the host as it goes (no device sync needed)."""

    started: float = field(default_factory=time.perf_counter)
    data_wait: float = 0.0
    tokens: int = 0


class Trainer:
    """Runs `module` under a DeepSpeed engine over MLM-style batches.

    Losses stay on the device: each step's micro-batch losses are summed there (in float64,
    as the logged values always were) and averaged across ranks only at logging steps (every
    `log_every` steps and the last), so a GPU never waits for the host between steps.
    """

    def __init__(self, ctx: StageContext, module: torch.nn.Module, params: Iterable[torch.nn.Parameter],
                 train_data: MaskedBlocks, eval_data: MaskedBlocks | None = None, train_cfg: Any = None,
                 on_step: Callable[[int, float], None] | None = None, seed: int | None = None,
                 plateau: PlateauWatch | None = None, before_step: Callable[[int], None] | None = None):
        self.ctx = ctx
        #: the seed of this training's random state (default: the recipe's)
        self.seed = ctx.cfg.seed if seed is None else seed
        #: checks, at its step, that the loss has left its starting plateau (raises StuckOnPlateau when not)
        self.plateau = plateau
        #: called on every rank after each optimiser step with (step, seconds of training so far)
        self.on_step = on_step
        #: called on every rank before each optimiser step with the step's number (1 for the first)
        self.before_step = before_step
        self.cfg = train_cfg if train_cfg is not None else ctx.cfg.train
        self.module = module
        #: an objective that trains on part of a step's batch says which (`InterleavedMaskedLMObjective.step_batch`)
        self._step_batch = getattr(module, "step_batch", None)
        self.params = list(params)
        self.train_data = train_data
        self.eval_data = eval_data
        self.checkpoint_dir = ctx.stage_dir / CHECKPOINTS

    def train(self) -> TrainResult:
        """Train to `max_steps`, resuming from a checkpoint when there is one.

        Raises `Diverged` when a loss or gradient norm stops being finite (`train.nonfinite`) and
        `Preempted` after saving a checkpoint when SIGTERM or SIGUSR1 arrives (mmadapt.training.stopping).
        """
        ctx, cfg, dist = self.ctx, self.cfg, self.ctx.dist
        seed_everything(self.seed + dist.rank)
        engine = build_engine(self.module, self.params, OmegaConf.to_container(ctx.cfg.deepspeed.resolved), cfg, dist)
        logger = MetricsLogger(ctx.stage_dir, enabled=dist.is_main)
        step, skips = self._resume(engine)
        resumed_from = step
        logger.truncate_after(step)  # a fresh start (step 0) drops rows of any earlier attempt
        self.guard = NonFiniteGuard(cfg.nonfinite, int(cfg.max_nonfinite_skips), dist.device, skips)
        samples_seen = (step * cfg.grad_accum + skips) * cfg.micro_batch_size  # a dropped batch moved the data on
        batches = iter(train_loader(self.train_data, cfg.micro_batch_size, dist, samples_seen, ctx.cfg.data.num_workers))
        fixed_eval = (eval_batches(self.eval_data, cfg.micro_batch_size, dist, cfg.eval_batches)
                      if self.eval_data is not None and cfg.eval_every > 0 else [])
        progress = TrainingProgress(self.ctx.label, cfg.max_steps, step, dist.is_main, cfg.progress_bar,
                                    strategy=ctx.strategy)
        memory = PeakMemory(dist.device)
        memory.start()
        counters = _LoopCounters()
        last: dict[str, float] = {}
        engine.train()
        with PreemptionWatch(dist.device, dist.world_size) as preemption:
            while step < cfg.max_steps:
                if self.before_step is not None:
                    self.before_step(step + 1)
                losses = self._step(engine, batches, counters, step + 1)
                step += 1
                self.guard.after_step(step, losses["loss"], engine)
                last = self._observe(engine, step, losses, last, logger, progress, counters, fixed_eval)
                if self.plateau is not None:
                    self.plateau.after_step(step, losses["loss"], dist.device)
                if self.on_step is not None:
                    self.on_step(step, time.perf_counter() - counters.started)
                if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
                    self._check_finite()
                    self.save(engine, step)
                if preemption.requested():
                    self._stop_for(preemption, engine, step)
        self._check_finite()
        progress.close()
        logger.close()
        return self._result(engine, step, resumed_from, last, counters, memory)

    def _observe(self, engine: Any, step: int, losses: dict[str, torch.Tensor], last: dict[str, float],
                 logger: MetricsLogger, progress: TrainingProgress, counters: _LoopCounters,
                 fixed_eval: list[dict]) -> dict[str, float]:
        """Logging (losses read and checked for NaN only here), evaluation and progress after a step."""
        cfg, dist = self.cfg, self.ctx.dist
        if self._is_logging_step(step):
            self._check_finite()
            last = {**means_across_ranks(losses, dist.device), "lr": engine.get_lr()[0]}
            if cfg.log_every:
                logger.log(step, last)
                progress.report(step, last, counters.tokens * dist.world_size)
        if fixed_eval and step % cfg.eval_every == 0:
            last.update(self.evaluate(engine, fixed_eval))
            logger.log(step, {k: v for k, v in last.items() if k.startswith("eval_")})
            engine.train()
        progress.advance()
        return last

    def _check_finite(self) -> None:
        """Stop with one line naming the first non-finite step and the last good checkpoint (kept)."""
        bad = self.guard.first_bad_step()
        if bad is not None:
            self._stop_diverged(bad)

    def _stop_diverged(self, step: int, skips: int | None = None) -> None:
        found = stage_checkpoints(self.checkpoint_dir, self.ctx.fingerprint)
        raise Diverged(diverged_message(self.ctx.label, step, found[-1] if found else None, skips))

    def _stop_for(self, preemption: PreemptionWatch, engine: Any, step: int) -> None:
        """A preemption signal: save this step's checkpoint (finite weights only) and stop."""
        self._check_finite()
        path = self.checkpoint_dir / step_tag(step)
        if not (path / MARKER).is_file():
            path = self.save(engine, step)
        raise Preempted(f"{self.ctx.label}: {preemption.received} received: stopped after step {step} and saved "
                        f"the checkpoint {path}; run the same command to resume (exit code {EXIT_PREEMPTED})")

    def _resume(self, engine: Any) -> tuple[int, int]:
        """Load the checkpoint `train.resume` picks, if any; the step to continue from and the micro-batches
        dropped before it (`train.nonfinite: skip`)."""
        resume_from = self._resume_checkpoint()
        if resume_from is None:
            return 0, 0
        client = load_checkpoint(engine, resume_from)
        rng = client["rng"]
        _set_rng_state(rng[self.ctx.dist.rank] if isinstance(rng, list) else rng)
        if self.plateau is not None:
            self.plateau.load(client.get("plateau"))
        self.ctx.log(f"resumed from {resume_from} at step {int(client['step'])}")
        return int(client["step"]), int(client.get("nonfinite_skips", 0))

    def _resume_checkpoint(self) -> Path | None:
        """Rank 0 picks (and verifies) the checkpoint to resume from; every rank gets its choice."""
        choice: Any = None
        if self.ctx.dist.is_main:
            try:
                choice = find_resume_checkpoint(self.checkpoint_dir, self.cfg.resume, self.ctx.fingerprint,
                                                warn=lambda line: print(line, flush=True))
            except MmadaptError as exc:
                choice = ("error", str(exc))
        choice = broadcast_object(choice)
        if isinstance(choice, tuple):
            raise MmadaptError(choice[1])
        return choice

    def _step(self, engine: Any, batches: Iterator[dict], counters: _LoopCounters, step: int) -> dict[str, torch.Tensor]:
        """One optimiser step over `grad_accum` micro-batches; its losses, still on the device. With
        `train.nonfinite: skip` a micro-batch whose loss is not finite is dropped before its backward pass."""
        grad_accum, device = self.cfg.grad_accum, self.ctx.dist.device
        sums: dict[str, torch.Tensor] = {}
        done = 0
        while done < grad_accum:
            waiting = time.perf_counter()
            batch = next(batches)
            counters.data_wait += time.perf_counter() - waiting
            read = self._step_batch(batch) if self._step_batch else batch  # the part of it the step trains on
            counters.tokens += read["input_ids"].numel() if "input_ids" in read else 0
            losses = engine({k: v.to(device, non_blocking=True) for k, v in batch.items()})
            if self.guard.skipping and not self.guard.keep_micro_batch(losses["loss"]):
                if self.guard.exhausted:
                    self._stop_diverged(step, skips=self.guard.skips)
                continue
            engine.backward(losses["loss"])
            engine.step()
            accumulate(sums, losses, grad_accum)
            done += 1
        return sums

    def _is_logging_step(self, step: int) -> bool:
        """Losses are read (and averaged across ranks) only here: every `log_every` steps and the last."""
        every = self.cfg.log_every
        return step == self.cfg.max_steps or bool(every and step % every == 0)

    def _result(self, engine: Any, step: int, resumed_from: int, last: dict[str, float], counters: _LoopCounters,
                memory: PeakMemory) -> TrainResult:
        """The run's TrainResult (rank means and maxima), also written as `train_summary.json` by rank 0."""
        dist = self.ctx.dist
        wall = time.perf_counter() - counters.started
        data_wait = mean_across_ranks(counters.data_wait, dist.device)
        result = TrainResult(step, resumed_from, wall, last, engine, tokens=counters.tokens * dist.world_size,
                             peak_memory_bytes=int(max_across_ranks(memory.peak_bytes(), dist.device)),
                             peak_memory_source=memory.source, data_wait_seconds=data_wait,
                             data_wait_fraction=data_wait / wall if wall > 0 else 0.0)
        if dist.is_main:  # what the stage's record reports, for stages whose code never sees `result`
            write_text_atomic(self.ctx.stage_dir / TRAIN_SUMMARY, json.dumps(result.summary(), indent=1))
        return result

    def save(self, engine: Any, step: int) -> Path:
        """An atomic checkpoint holding step and every rank's RNG state."""
        rng = _rng_state()
        gathered = [None] * self.ctx.dist.world_size
        if torch.distributed.is_initialized():
            torch.distributed.all_gather_object(gathered, rng)
        else:
            gathered = [rng]
        client = {"step": step, "rng": gathered, "recipe_seed": self.ctx.cfg.seed, "seed": self.seed,
                  "nonfinite_skips": self.guard.skips}
        if self.plateau is not None:
            client["plateau"] = self.plateau.state()
        return save_checkpoint(engine, self.checkpoint_dir, step, client, self.cfg.keep_checkpoints, self.ctx.dist,
                               self.ctx.fingerprint)

    @torch.no_grad()
    def evaluate(self, engine: Any, batches: list[dict]) -> dict[str, float]:
        """Mean of every loss over the fixed evaluation batches, averaged across ranks."""
        engine.eval()
        sums: dict[str, torch.Tensor] = {}
        for batch in batches:
            accumulate(sums, engine({k: v.to(self.ctx.dist.device) for k, v in batch.items()}), len(batches))
        return {f"eval_{k}": v for k, v in means_across_ranks(sums, self.ctx.dist.device).items()}


def accumulate(sums: dict[str, torch.Tensor], losses: dict[str, torch.Tensor], parts: int) -> None:
    """Add each loss / `parts` into `sums`, on the device, in float64.

    float64 keeps the logged values what they were when each loss was read with `.item()` and
    summed in Python: the float32 loss widens exactly, and the division and sums are the same
    IEEE double operations.
    """
    for name, value in losses.items():
        share = value.detach().to(torch.float64) / parts
        sums[name] = sums[name] + share if name in sums else share
