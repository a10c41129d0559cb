"""Against what a user would do instead: Hugging Face `Trainer` MLM with the body frozen.

    python benchmarks/vs_hf_trainer.py                       # CPU-sized, ~3 min on 2 cores
    python benchmarks/vs_hf_trainer.py --deepspeed           # also Trainer + DeepSpeed ZeRO-2
    python benchmarks/vs_hf_trainer.py --shape xlmr-base --precision bf16 --steps 20   # on a GPU

The peer: the same model and new-language vocabulary, every parameter frozen except the word
embeddings (tied to the decoder) and the LM bias, `DataCollatorForLanguageModeling` masking 15%,
`transformers.Trainer` (AdamW, the same batch and learning rate). Against it: mmadapt's `full`
adapt (the same model) and mini-model adapt (`--mini`, default minijoint: only k layers loaded).
Each configuration runs in its own process (so peak memory is its own); warm-up steps are not
timed; configurations are interleaved over `--rounds` rounds and the best round counts. Needs the `bench` extra (`accelerate`). Targets: mmadapt full >= Trainer tokens/s;
mmadapt mini >= 3x Trainer tokens/s. Peak memory: peak RSS on CPU (VmHWM, reset just before
training), `torch.cuda.max_memory_allocated` on a GPU (see mmadapt/training/memory.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SHAPES, Shape, machine

HERE = Path(__file__).resolve().parent


def _tokenizer(vocab: int):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    ids = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{f"w{i}": i for i in range(4, vocab - 1)},
           "<mask>": vocab - 1}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(ids, unk_token="<unk>")),
                                   bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   mask_token="<mask>")


def run_hf_trainer(shape: Shape, warmup: int, steps: int, precision: str, deepspeed: bool) -> dict:
    """HF Trainer MLM with only the word embeddings and LM bias trainable."""
    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    from _common import build_big, random_blocks
    from mmadapt.training.memory import PeakMemory

    model = build_big(shape)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the new language's embeddings (same init as the mmadapt runs)
        model.get_input_embeddings().weight.copy_(
            torch.randn(shape.vocab, shape.hidden, generator=g) * model.config.initializer_range)
    for p in model.parameters():
        p.requires_grad_(False)
    model.get_input_embeddings().weight.requires_grad_(True)
    model.lm_head.bias.requires_grad_(True)
    tokenizer = _tokenizer(shape.vocab)
    train = [{"input_ids": row.tolist()} for row in random_blocks(shape)]

    class Clock(TrainerCallback):
        ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    ds_config = None
    if deepspeed:
        from mmadapt.recipe.deepspeed_json import SHIPPED_DIR

        ds_config = json.loads((SHIPPED_DIR / "zero2.json").read_text())
        ds_config["optimizer"]["params"]["torch_adam"] = True  # no JIT-built Adam on CPU
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="hf-bench-"), per_device_train_batch_size=shape.batch,
        max_steps=warmup + steps + 1, learning_rate=1e-3, weight_decay=0.01, warmup_steps=0, max_grad_norm=1.0,
        logging_steps=10_000, save_strategy="no", report_to=[], disable_tqdm=True, dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(), bf16=precision == "bf16", deepspeed=ds_config, seed=0)
    clock = Clock()
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15),
                      callbacks=[clock])
    memory = PeakMemory(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    memory.start()
    trainer.train()
    seconds = clock.ends[warmup - 1 + steps] - clock.ends[warmup - 1]
    return {"tokens_per_s": steps * shape.batch * shape.seq / seconds, "seconds_per_step": seconds / steps,
            "peak_memory_bytes": memory.peak_bytes(), "peak_memory_source": memory.source}


def run_one(name: str, shape: Shape, warmup: int, steps: int, precision: str) -> dict:
    """One configuration, in this process."""
    from _common import adapt_model, ensure_single_rank_env, masked_blocks, prepare_adapt, random_blocks, run_mmadapt

    ensure_single_rank_env()
    if name.startswith("hf-trainer"):
        return run_hf_trainer(shape, warmup, steps, precision, deepspeed=name.endswith("deepspeed"))
    strategy = name.split("-", 1)[1]
    objective, trainable = prepare_adapt(adapt_model(strategy, shape), shape.vocab)
    return run_mmadapt(objective, trainable, masked_blocks(shape, random_blocks(shape)), shape, warmup, steps,
                       precision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all configurations; best one counts")
    parser.add_argument("--mini", choices=["minijoint", "minipost"], default="minijoint")
    parser.add_argument("--deepspeed", action="store_true", help="also run Trainer with DeepSpeed ZeRO-2")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration, print JSON
    args = parser.parse_args()
    shape = SHAPES[args.shape]
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, shape, args.warmup, args.steps, args.precision)))
        return
    names = ["hf-trainer"] + (["hf-trainer-deepspeed"] if args.deepspeed else []) + ["mmadapt-full",
                                                                                    f"mmadapt-{args.mini}"]
    results: dict[str, dict] = {}
    rounds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):  # interleaved, so a busy spell on the machine hits every configuration
        for name in names:
            command = [sys.executable, str(Path(__file__).resolve()), "--one", name, "--shape", args.shape,
                       "--precision", args.precision, "--steps", str(args.steps), "--warmup", str(args.warmup)]
            proc = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"})
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            result = json.loads(line[len("RESULT "):])
            print(f"  {name:<22} {result['tokens_per_s']:10.1f} tokens/s", file=sys.stderr, flush=True)
            rounds[name].append(result["tokens_per_s"])
            old = results.get(name)
            peak = max(result["peak_memory_bytes"], old["peak_memory_bytes"] if old else 0)
            if old is None or result["tokens_per_s"] > old["tokens_per_s"]:
                results[name] = result
            results[name]["peak_memory_bytes"] = peak  # the largest peak of any round

    base = results["hf-trainer"]
    print(f"vs HF Trainer: shape {args.shape} ({shape.layers} layers, hidden {shape.hidden}, vocab {shape.vocab}), "
          f"batch {shape.batch} x {shape.seq}, mini = {args.mini} (k={shape.k}), {args.precision}, body frozen, "
          f"embeddings trainable; {machine()}; best of {args.rounds} rounds of {args.steps} timed steps after "
          f"{args.warmup}")
    print(f"{'configuration':<22} {'tokens/s':>10} {'vs Trainer':>10} {'peak memory':>12}  target")
    targets = {"mmadapt-full": 1.0, f"mmadapt-{args.mini}": 3.0}
    for name in names:
        r = results[name]
        ratio = r["tokens_per_s"] / base["tokens_per_s"]
        target = targets.get(name)
        verdict = "" if target is None else f">= {target:.1f}x: {'ok' if ratio >= target else 'MISSED'}"
        print(f"{name:<22} {r['tokens_per_s']:10.1f} {ratio:9.2f}x {r['peak_memory_bytes'] / 2**30:9.2f} GiB  "
              f"{verdict}")
        r["vs_trainer"] = ratio
    print(f"peak memory: {base['peak_memory_source']} (see mmadapt/training/memory.py)")
    # Per round, configurations ran back to back: these ratios share the machine's state.
    for i in range(args.rounds):
        ratios = ", ".join(f"{n} {rounds[n][i] / rounds['hf-trainer'][i]:.2f}x" for n in names[1:])
        print(f"round {i + 1} vs Trainer: {ratios}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"shape": args.shape, "precision": args.precision, "machine": machine(), "results": results},
                      fh, indent=1)


if __name__ == "__main__":
    main()
