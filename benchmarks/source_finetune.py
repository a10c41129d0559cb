"""The source fine-tune alone, re-run with other settings over finished runs' pretrained models.

    python benchmarks/source_finetune.py runs/dev/threads_1/seed_3 runs/qs/t1_s3 \\
        --setting 600=finetune.train.max_steps=600 --setting 1000=finetune.train.max_steps=1000

For each run directory and setting: the big model of the run's first strategy that fine-tunes (its
`pretrain/`, copied) is fine-tuned on the source task with the run's own resolved recipe and the setting's
overrides, into `--output-dir/<run>/<setting>`; then the fine-tuned model is scored on the source
language's dev and test files. Prints per run and setting: the dev and test accuracy and the first logged
step whose training loss is under 0.9 (where the loss leaves its ln 3 = 1.10 plateau), then per setting the
mean and minimum over the runs. The quickstart's `finetune.train` was chosen with it (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
PLATEAU_EXIT_LOSS = 0.9


def fine_tune(run: Path, out: Path, overrides: list[str]) -> tuple[dict, str]:
    """Fine-tune `run`'s pretrained big model into `out` with `overrides`; the strategy entry and task name."""
    recipe = OmegaConf.load(run / "recipe.yaml")
    entry = next(e for e in recipe.strategies if not e.get("reuse"))
    if out.exists():
        shutil.rmtree(out)
    (out / entry.name).mkdir(parents=True)
    shutil.copytree(run / entry.name / "pretrain", out / entry.name / "pretrain")
    strategy = json.dumps({k: v for k, v in OmegaConf.to_container(entry).items() if v is not None})
    command = [sys.executable, "-m", "mmadapt", "train", str(run / "recipe.yaml"), f"output_dir={out}",
               "stages=[pretrain, finetune]", f"strategies=[{strategy}]", "train.progress_bar=false", *overrides]
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return OmegaConf.to_container(entry), recipe.tasks[0].name


def source_accuracy(out: Path, strategy: str, task: str) -> dict[str, float]:
    """The fine-tuned model's source dev and test scores (the transfer stage's own scoring)."""
    from mmadapt.pipeline.context import StageContext
    from mmadapt.training.distributed import init_distributed
    from mmadapt.pipeline.outputs import FinetuneOutputs
    from mmadapt.pipeline.lifecycle import StageRecord, read_marker
    from mmadapt.pipeline.stages.transfer import source_scores
    from mmadapt.plugin_system.manager import get_plugins
    from mmadapt.recipe import load_recipe
    from mmadapt.pipeline.runner import _task_sections

    plugins, dist = get_plugins(), init_distributed()
    cfg = load_recipe(out / "recipe.yaml", [], plugins)
    marker = read_marker(out / strategy / "finetune" / task)
    finetuned = FinetuneOutputs.from_record(StageRecord(marker["fingerprint"], marker["outputs"], marker["metrics"]))
    section = _task_sections(cfg, dist)[0]
    scores = {}
    for split in ("dev", "test"):
        split_cfg = OmegaConf.merge(cfg, {"transfer": {"split": split}})
        ctx = StageContext(split_cfg, plugins, dist, out, out / strategy / "transfer" / task)
        scores[split] = source_scores(ctx, section, finetuned)[plugins.tasks.get(task).metric_names[0]]
    return scores


def plateau_exit(out: Path, strategy: str, task: str) -> int | None:
    """The first logged step whose training loss is under PLATEAU_EXIT_LOSS."""
    for line in (out / strategy / "finetune" / task / "metrics.jsonl").read_text().splitlines():
        point = json.loads(line)
        if point.get("loss") is not None and point["loss"] < PLATEAU_EXIT_LOSS:
            return point["step"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories (with recipe.yaml)")
    parser.add_argument("--setting", action="append", required=True,
                        help="NAME=OVERRIDE[;OVERRIDE...]: one fine-tune setting (NAME= alone: the run's own)")
    parser.add_argument("--output-dir", type=Path, default=REPO / "runs" / "bench_source_finetune")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    for run in args.runs:
        for setting in args.setting:
            name, _, given = setting.partition("=")
            out = args.output_dir / run.name / name
            entry, task = fine_tune(run.resolve(), out, [o for o in given.split(";") if o.strip()])
            result = {"run": str(run), **source_accuracy(out, entry["name"], task),
                      "plateau_exit": plateau_exit(out, entry["name"], task)}
            results.setdefault(name, []).append(result)
            print(f"{run}  {name:>10}  dev {result['dev']:.3f}  test {result['test']:.3f}  "
                  f"loss under {PLATEAU_EXIT_LOSS} from step {result['plateau_exit']}", flush=True)
    for name, rows in results.items():
        dev = [r["dev"] for r in rows]
        print(f"{name:>10}: dev mean {statistics.mean(dev):.3f}, min {min(dev):.3f} over {len(rows)} runs")


if __name__ == "__main__":
    main()
