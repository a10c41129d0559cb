"""What a pipeline stage gets to work with."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mmadapt.distributed import DistInfo


@dataclass
class StageContext:
    """The resolved recipe, plugins and process info for one stage, and where it writes."""

    cfg: DictConfig
    plugins: Any
    dist: DistInfo
    output_dir: Path
    stage_dir: Path
    #: digest of the settings that determine this stage's result; checkpoints carry it so a
    #: stage re-run with other settings never resumes from the old run's checkpoints
    fingerprint: str | None = None
    #: the strategy whose pass through the pipeline this stage is part of (None: a stage all share, `tokenizer`)
    strategy: str | None = None

    def log(self, message: str) -> None:
        """Print on rank 0 only, after the wall-clock time and the strategy (mmadapt.progress.line_prefix)."""
        if self.dist.is_main:
            from mmadapt.progress import line_prefix

            print(f"{line_prefix(self.strategy)} {message}", flush=True)
