"""What a pipeline stage gets to work with."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmadapt.training.distributed import DistInfo


@dataclass(frozen=True)
class StageContext:
    """The resolved recipe, plugins and process info for one stage, and where it writes.

    Frozen: a context is made for each stage (and each part of one, `dataclasses.replace`), never
    changed after, so no code reads a field another stage set.
    """

    cfg: DictConfig
    plugins: Any
    dist: DistInfo
    output_dir: Path
    stage_dir: Path
    #: digest of the settings that determine this stage's result; checkpoints carry it so a
    #: stage re-run with other settings never resumes from the old run's checkpoints. Given to the
    #: context a stage's work runs with (mmadapt.pipeline.lifecycle.run_stage); None before, and in
    #: contexts that only read data or settings
    fingerprint: str | None = None
    #: the strategy whose pass through the pipeline this stage is part of (None: a stage all share, `tokenizer`)
    strategy: str | None = None
    #: the run's `output_dir`, when `output_dir` is one strategy's folder in it (None: `output_dir` is the run's).
    #: Stage markers keep the paths under it relative (mmadapt.pipeline.lifecycle.RELATIVE_PATHS)
    run_root: Path | None = None

    @property
    def run_dir(self) -> Path:
        """The whole run's output directory (every strategy's folder and the tokenizers are in it)."""
        return self.run_root or self.output_dir

    @property
    def label(self) -> str:
        """The stage as log lines name it (`pretrain`, `adapt/de`, `finetune/xnli`): its directory in the run's."""
        try:
            return str(self.stage_dir.relative_to(self.output_dir))
        except ValueError:
            return self.stage_dir.name

    def log(self, message: str) -> None:
        """Print on rank 0 only, after the wall-clock time and the strategy (mmadapt.training.progress.line_prefix)."""
        if self.dist.is_main:
            from mmadapt.training.progress import line_prefix

            print(f"{line_prefix(self.strategy)} {message}", flush=True)
