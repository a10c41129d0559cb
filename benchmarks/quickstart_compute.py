"""End to end on the quickstart data: adapt compute and wall time each mini strategy needs to reach
95% of `full`'s final target score, as a ratio to what `full` needs.

    python benchmarks/quickstart_compute.py                        # runs recipes/quickstart.yaml (~10 min, 2 cores)
    python benchmarks/quickstart_compute.py --report runs/quickstart/report.json   # score an existing run
    python benchmarks/quickstart_compute.py adapt.snapshot_every=25   # recipe overrides are passed on

It runs the quickstart (every strategy, every language, the target score evaluated at each
adapt snapshot through the swap-and-evaluate path of stage `transfer`) and reads the
`compute_to_reach` entries of its report.json. Each ratio compares points on the two curves
that reach the same score, so both strategies are measured the same way. The paper reports
2.3x less compute on average; our target is at least that.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAPER_RATIO = 2.3


def run_quickstart(output_dir: Path, overrides: list[str]) -> Path:
    command = [sys.executable, "-m", "mmadapt", "train", "--rerun", str(REPO / "recipes" / "quickstart.yaml"),
               f"output_dir={output_dir}", "train.progress_bar=false", *overrides]
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)
    return output_dir / "report.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, help="read this report.json instead of running the quickstart")
    parser.add_argument("--output-dir", type=Path, default=REPO / "runs" / "bench_quickstart")
    parser.add_argument("overrides", nargs="*", help="recipe overrides (key=value) for the quickstart run")
    args = parser.parse_args()
    report_path = args.report or run_quickstart(args.output_dir, args.overrides)
    report = json.loads(report_path.read_text())
    entries = report.get("compute_to_reach") or []
    if not entries:
        sys.exit(f"{report_path} has no compute_to_reach entries: run with adapt.snapshot_every > 0")
    rows = {(r["strategy"], r["task"], r["language"]): r for r in report["rows"]}
    print(f"\nreport: {report_path}")
    print(f"{'strategy':<10} {'task':<6} {'lang':<5} {'source':>6} {'final':>6} {'goal':>6} {'adapt FLOPs':>12} "
          f"{'seconds':>8} {'FLOPs ratio':>11} {'time ratio':>10}")
    ratios: dict[str, list] = {}
    for e in entries:
        row = rows[(e["strategy"], e["task"], e["language"])]
        flops = "-" if e["adapt_flops"] is None else f"{e['adapt_flops']:.3g}"
        seconds = "-" if e["adapt_seconds"] is None else f"{e['adapt_seconds']:.1f}"
        flops_ratio = "not reached" if e["flops_ratio"] is None else f"{e['flops_ratio']:.2f}x"
        time_ratio = "-" if e["seconds_ratio"] is None else f"{e['seconds_ratio']:.2f}x"
        print(f"{e['strategy']:<10} {e['task']:<6} {e['language']:<5} {row['source_score']:>6.3f} "
              f"{row['target_score']:>6.3f} {e['goal_score']:>6.3f} {flops:>12} {seconds:>8} {flops_ratio:>11} "
              f"{time_ratio:>10}")
        if e["strategy"] != "full":
            ratios.setdefault(e["strategy"], []).append(e["flops_ratio"])
    # A strategy that fine-tunes its own big model (MiniJoint) has its own source score: when its big
    # model is the better one, part of its ratio comes from that model, not from cheaper adapt steps.
    print()
    for strategy, values in ratios.items():
        reached = [r for r in values if r is not None]
        summary = (f"mean {sum(reached) / len(reached):.2f}x, lowest {min(reached):.2f}x" if reached else "-")
        print(f"{strategy}: reaches 95% of full on {len(reached)} of {len(values)}; full/{strategy} adapt FLOPs {summary}")
    every = [r for values in ratios.values() for r in values]
    reached = [r for r in every if r is not None]
    if reached:
        mean = sum(reached) / len(reached)
        each = min(reached) >= PAPER_RATIO and len(reached) == len(every)
        print(f"mean over every mini strategy and language: {mean:.2f}x ({'meets' if mean >= PAPER_RATIO else 'misses'} "
              f"the {PAPER_RATIO}x target); every one at {PAPER_RATIO}x or more: {'yes' if each else 'no'}")


if __name__ == "__main__":
    main()
