"""Adapt-stage tokens/s: full vs minijoint vs minipost, measured side by side against the FLOP model.

    python benchmarks/adapt_throughput.py                                   # CPU-sized, ~3 min on 2 cores
    python benchmarks/adapt_throughput.py --shape xlmr-large --precision bf16 --steps 20   # on a GPU

Every configuration trains new-language word embeddings exactly as stage `adapt` does (mmadapt's
Trainer and DeepSpeed engine, `MaskedLMObjective`, everything but the embeddings and LM bias
frozen) on the same random token blocks with the same batch. Mini strategies train over a model
that holds only the mini-model's layers. A fifth configuration runs `full` with the LM head at
every position (the usual framework default) to measure what masked-only logits gain.

Configurations are interleaved over `--rounds` rounds; each reports its best round (least
disturbed by other work on the machine). Target: measured speedup over `full` >= 85% of the
analytic FLOP ratio (`mmadapt.training.flops`).
"""
from __future__ import annotations

import argparse
import gc
import json
import sys

from _common import (SHAPES, Shape, adapt_model, ensure_single_rank_env, machine, masked_blocks, prepare_adapt,
                     random_blocks, run_mmadapt)

TARGET = 0.85


def analytic_flops_per_token(strategy: str, shape: Shape, new_layers: int, masked_only: bool, mlm: float) -> float:
    from mmadapt.training.flops import ModelShape, adapt_flops_per_token

    layers = {"full": shape.layers, "minijoint": shape.k, "minipost": shape.k + new_layers}[strategy]
    big = ModelShape(shape.hidden, shape.intermediate, shape.layers, shape.vocab)
    return adapt_flops_per_token(big, layers, shape.seq, masked_fraction=mlm if masked_only else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per configuration and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, help="sequences per step (default: the shape's)")
    parser.add_argument("--k", type=int, help="mini-model layers taken from the big model (default: the shape's)")
    parser.add_argument("--new-layers", type=int, default=2, help="minipost's new layers")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    shape = SHAPES[args.shape]
    shape = Shape(**{**shape.__dict__, **({"batch": args.batch} if args.batch else {}),
                     **({"k": args.k} if args.k else {})})
    ensure_single_rank_env()
    mlm = 0.15
    data = masked_blocks(shape, random_blocks(shape), mlm)
    configs = [("full", True), ("minijoint", True), ("minipost", True), ("full", False)]
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for strategy, masked_only in configs:
            name = strategy if masked_only else "full/all-logits"
            objective, trainable = prepare_adapt(adapt_model(strategy, shape, args.new_layers), shape.vocab, masked_only)
            result = run_mmadapt(objective, trainable, data, shape, args.warmup, args.steps, args.precision)
            print(f"  {name:<16} {result['tokens_per_s']:10.1f} tokens/s", file=sys.stderr, flush=True)
            if name not in best or result["tokens_per_s"] > best[name]["tokens_per_s"]:
                best[name] = result
            del objective, trainable
            gc.collect()

    print(f"adapt throughput: shape {args.shape} ({shape.layers} layers, hidden {shape.hidden}, vocab {shape.vocab}), "
          f"batch {shape.batch} x {shape.seq}, k={shape.k}, minipost new layers {args.new_layers}, {args.precision}; "
          f"{machine()}; best of {args.rounds} rounds of {args.steps} steps")
    full = best["full"]["tokens_per_s"]
    f_full = analytic_flops_per_token("full", shape, args.new_layers, True, mlm)
    print(f"{'configuration':<16} {'tokens/s':>10} {'FLOPs/token':>12} {'speedup':>8} {'analytic':>9} "
          f"{'measured/analytic':>18} {'data wait':>9}")
    rows = []
    for strategy, masked_only in configs:
        name = strategy if masked_only else "full/all-logits"
        r = best[name]
        flops = analytic_flops_per_token(strategy, shape, args.new_layers, masked_only, mlm)
        speedup, analytic = r["tokens_per_s"] / full, f_full / flops
        efficiency = speedup / analytic
        verdict = "" if name in ("full", "full/all-logits") else ("  ok" if efficiency >= TARGET else "  MISSED")
        print(f"{name:<16} {r['tokens_per_s']:10.1f} {flops:12.4g} {speedup:8.2f}x {analytic:8.2f}x "
              f"{efficiency:17.0%} {r['data_wait_fraction']:9.1%}{verdict}")
        rows.append({"configuration": name, "flops_per_token": flops, "speedup": speedup, "analytic": analytic, **r})
    gain = full / best["full/all-logits"]["tokens_per_s"]
    analytic_gain = (analytic_flops_per_token("full", shape, args.new_layers, False, mlm) / f_full)
    print(f"masked-only logits vs logits at every position (full): {gain:.2f}x measured, {analytic_gain:.2f}x analytic")
    print(f"target: minijoint and minipost speedup >= {TARGET:.0%} of the analytic ratio")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"shape": args.shape, "precision": args.precision, "machine": machine(), "rows": rows,
                       "masked_only_gain": gain, "masked_only_gain_analytic": analytic_gain}, fh, indent=1)


if __name__ == "__main__":
    main()
