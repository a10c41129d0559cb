"""Do better starting embeddings compound with mini-models? Initialisers x strategies, variants x seeds.

    python benchmarks/init_compounding.py                                  # vo,na,pre x seeds 0,1,2 (about 30 min)
    python benchmarks/init_compounding.py --variants vo --seeds 0          # one cell
    python benchmarks/init_compounding.py --summarise-only                 # re-read finished runs
    python benchmarks/init_compounding.py train.max_steps=300              # recipe overrides pass on

Per seed, one output directory and one `mmadapt train` of the recipe (default: the quickstart from scratch)
per initialiser, each adapting every variant language. Pretraining, the tokenizers and
fine-tuning are the same settings in every run, so the later runs skip them (the stages'
fingerprints); only `adapt` and `transfer` run again. Each run's report is kept as
`report_<init>.json`. Seed i sets the run's `seed`, the synthetic data's seed and its source
`grammar_variant`, as in `transfer_robustness.py`.

The data: the initialisers learn from half of each language's dictionary
(`data.synth.dictionary_fraction`, `languages.<v>.init_dictionary`), and a tenth of the noun
lemmas are written alike in every language (`data.synth.shared_words`: the tokens `focus`
combines); `alignment_at_1` is measured on the full dictionary. Every strategy adapts without
`adapt.big_model_steps` (a good start is what those steps were buying).

Prints, for each initialiser x strategy over the variants and seeds: the adapt compute to reach
95% of `full` with `random` initialisation's final target score, the initialiser's own cost
included (it is step 0 of each curve), as full+random's compute over it (above 1: cheaper; a
cell never reached counts 0 in the mean), the same in seconds, the final target score and its
gap to full+random, and `alignment_at_1` of the initial embeddings. Then the issue's targets.
"""
from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the same pipeline runs, one per seed
from transfer_robustness import _fmt, _mean, grid_parser, print_verdict, run_seed  # noqa: E402

from mmadapt.pipeline.curves import REACH_FRACTION, first_reaching

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = ("vo", "na", "pre")
BASELINE = ("random", "full")
#: initialiser -> the strategies it runs with (`full` reuses MiniJoint's pretraining, so MiniJoint is always listed)
#: (the grid fits the machine: about 10 minutes a seed on 2 CPU cores; add strategies for a fuller table)
GRID = {
    "random": ("minijoint", "full"),
    "dictionary": ("minijoint",),
    "focus": ("minijoint",),
}
STRATEGIES = {"minijoint": "{name: minijoint, k: 2}", "full": "{name: full, reuse: minijoint}",
              "minipost": "{name: minipost, k: 2, new_layers: 1, distill: 1.0, reuse: minijoint, "
                          "train: {max_steps: 200}}"}
DICTIONARY_FRACTION = 0.5
#: the quickstart design this benchmark was measured on (docs/benchmarks.md): 4 layers, 200 adapt steps of 128
#: sequences, a snapshot every 25; later overrides on the command line win
MEASURED_DESIGN = ("model.config.num_hidden_layers=4", "adapt.snapshot_every=25", "adapt.train.max_steps=200",
                   "adapt.train.micro_batch_size=128")
SHARED_WORDS = 0.1


def run_init(recipe: Path, output_dir: Path, seed: int, variants: list[str], init: str, overrides: list[str]) -> Path:
    """One pipeline run with initialiser `init`; its report kept as report_<init>.json."""
    synth = (f"data.synth={{seed: {seed}, grammar_variant: {seed}, languages: [src, {', '.join(variants)}], "
             f"nli_test: 1000, dictionary_fraction: {DICTIONARY_FRACTION}, shared_words: {SHARED_WORDS}}}")
    init_dictionaries = [f"languages.{v}.init_dictionary=synth:dictionaries/src-{v}.train.txt" for v in variants]
    strategies = f"strategies=[{', '.join(STRATEGIES[s] for s in GRID[init])}]"
    # the run's own compute_to_reach needs a baseline among its strategies; this script measures against full+random
    baseline = [] if "full" in GRID[init] else ["report.baseline=minijoint"]
    report = run_seed(recipe, output_dir, seed, variants, [
        *MEASURED_DESIGN, synth, *init_dictionaries, strategies, f"adapt.init={{name: {init}}}",
        "adapt.big_model_steps=0", *baseline, *overrides])
    kept = output_dir / f"report_{init}.json"
    shutil.copyfile(report, kept)
    return kept


def collect(reports: dict[tuple[int, str], Path]) -> dict[tuple[str, str], list[dict]]:
    """(init, strategy) -> one record per (seed, variant): compute and seconds ratios, score, gap, alignment."""
    rows = {}
    for (seed, init), path in reports.items():
        for row in json.loads(path.read_text())["rows"]:
            rows[seed, init, row["strategy"], row["language"]] = row
    table: dict[tuple[str, str], list[dict]] = {}
    for (seed, init, strategy, language), row in sorted(rows.items()):
        base = rows.get((seed, *BASELINE, language))
        if base is None:
            continue
        goal = REACH_FRACTION * base["target_score"]
        base_point, point = first_reaching(base["curve"], goal), first_reaching(row["curve"], goal)
        reached = point is not None and base_point is not None
        table.setdefault((init, strategy), []).append({
            "seed": seed, "variant": language, "target": row["target_score"],
            "gap": row["target_score"] - base["target_score"],
            "compute": base_point["adapt_flops"] / max(point["adapt_flops"], 1) if reached else 0.0,
            "seconds": base_point["adapt_seconds"] / max(point["adapt_seconds"], 1e-9) if reached else 0.0,
            "reach_step": point["step"] if point else None, "init_flops": row.get("adapt_init_flops", 0),
            "init_alignment": row["curve"][0].get("alignment_at_1"), "control": row["control_score"]})
    return table


def summarise(table: dict[tuple[str, str], list[dict]]) -> list[str]:
    """The initialiser x strategy table and the per-variant detail; returns the failed targets."""
    print(f"\n{'init':<10} {'strategy':<9} {'cells':>5} {'compute mean':>12} {'compute min':>11} {'seconds mean':>12} "
          f"{'target mean':>11} {'gap mean':>8} {'gap min':>8} {'step-0 score':>12} {'init align@1':>12} "
          f"{'init FLOPs':>10}")
    means = {}
    for (init, strategy), records in sorted(table.items()):
        computes, gaps = [r["compute"] for r in records], [r["gap"] for r in records]
        means[init, strategy] = (statistics.fmean(computes), statistics.fmean(gaps), min(computes))
        print(f"{init:<10} {strategy:<9} {len(records):>5} {statistics.fmean(computes):>12.2f} {min(computes):>11.2f} "
              f"{statistics.fmean(r['seconds'] for r in records):>12.2f} "
              f"{statistics.fmean(r['target'] for r in records):>11.3f} {statistics.fmean(gaps):>+8.3f} "
              f"{min(gaps):>+8.3f} {statistics.fmean(r['control'] for r in records):>12.3f} "
              f"{_fmt(_mean([r['init_alignment'] for r in records])):>12} "
              f"{statistics.fmean(r['init_flops'] for r in records):>10.3g}")
    print("\nper variant, compute ratio (reach step) / final target, seeds in order:")
    for (init, strategy), records in sorted(table.items()):
        for variant in sorted({r["variant"] for r in records}):
            cells = [f"{r['compute']:.2f} ({r['reach_step']}) / {r['target']:.3f}"
                     for r in sorted(records, key=lambda r: r["seed"]) if r["variant"] == variant]
            print(f"  {init:<10} {strategy:<9} {variant:<5} " + " | ".join(cells))
    minis = {key: value for key, value in means.items() if key[1] != "full"}
    if not minis:
        return ["no mini-strategy rows"]
    best = max(minis, key=lambda key: minis[key][0])
    compute, gap, worst = minis[best]
    print(f"\nbest initialiser x mini strategy: {best[0]} x {best[1]}: {compute:.2f}x less adapt compute than "
          f"full+random to reach {REACH_FRACTION:.0%} of its final score (worst cell {worst:.2f}x), mean final-score "
          f"gap {gap:+.3f}")
    failures = []
    if compute < 5:
        failures.append(f"{best[0]} x {best[1]}: {compute:.2f}x (< 5x)")
    if gap < 0:
        failures.append(f"{best[0]} x {best[1]}: mean final score {gap:+.3f} below full+random")
    return failures


def main() -> None:
    parser = grid_parser(__doc__, DEFAULT_VARIANTS, REPO / "runs" / "bench_init")
    parser.add_argument("--inits", default=",".join(GRID), help="initialisers to run (random is the baseline)")
    parser.add_argument("--summarise-only", action="store_true", help="read the reports of finished runs")
    parser.add_argument("overrides", nargs="*", help="recipe overrides (key=value) for every run")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    reports = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        out = args.output_dir / f"seed_{seed}"
        for init in (i for i in args.inits.split(",") if i):
            reports[seed, init] = (out / f"report_{init}.json" if args.summarise_only
                                   else run_init(args.recipe, out, seed, variants, init, args.overrides))
    print_verdict("targets", summarise(collect({key: path for key, path in reports.items() if path.is_file()})))


if __name__ == "__main__":
    main()
