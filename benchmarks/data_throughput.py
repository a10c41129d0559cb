"""Corpus preparation at scale: mmadapt's block packing against `datasets` `.map` + `group_texts`.

    python benchmarks/data_throughput.py                                # 0.1, 0.4, 1.6 GB; ~35 min on 2 cores
    python benchmarks/data_throughput.py --sizes 0.1,0.4 --datasets-up-to 0.4
    python benchmarks/data_throughput.py --end-to-end-only              # the 400 MB `mmadapt train` check
    taskset -c 1 python benchmarks/data_throughput.py --end-to-end-only --shape paragraphs --sentences 0 --threads 1
                                        # the same on the machine's own text, one paragraph per line, one core

Text is generated on the machine (Zipf-distributed words over a 100,000-word synthetic
vocabulary, short frequent words, commas and full stops, ~180-byte paragraphs, one per line)
into `--workdir` and deleted afterwards; the smaller corpora are prefixes of the largest. With
`--shape paragraphs` the text is the Python sources and docs on the machine instead, one paragraph
per line (~250 bytes, as OSCAR-style documents), repeated to the size asked for. Then:

1. tokenizer training on the 0.4 GB corpus, as stage `tokenizer` does it (SentencePiece unigram,
   `--vocab` pieces, `input_sentence_size` = `--sentences` lines sampled with the seed, every core);
2. for each size, in a fresh process each: mmadapt's `build_blocks` (blocks of `--block-size`,
   `data.prepare_processes` = 0: every core) and `datasets` `load_dataset("text")` + `.map(tokenize,
   batched=True, num_proc=cores)` + `.map(group_texts, batched=True, num_proc=cores)` with the
   same tokenizer; tokens/s (tokens of the corpus / wall seconds, the same token count for both)
   and peak memory: the largest single process (ru_maxrss) and the whole process tree (the sum of
   every process's proportional set size, PSS, sampled every 0.25 s);
3. one `mmadapt train` of a tiny model on the 0.4 GB corpus with an empty cache: tokenizer training
   and block packing included, under `/usr/bin/time -v`.

Targets (issue 16): mmadapt's peak memory flat within 1.5x from the smallest to the largest corpus;
its tokens/s at least `datasets`'s; tokenizer training on 0.4 GB under 4 minutes; the 400 MB run
under 8 minutes and 3 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]


# --- text -------------------------------------------------------------------------------------

def make_vocabulary(rng, types: int = 100_000) -> list[str]:
    """Synthetic word types built from syllables, shortest first (frequent words are short)."""
    onsets = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
              "br", "st", "tr", "ch", "sh", "gr", "pl", "kr"]
    nuclei = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "ie", "y"]
    codas = ["", "", "", "n", "r", "s", "l", "t", "m", "nd", "st", "rk"]
    seen: set[str] = set()
    words: list[str] = []
    while len(words) < types:
        syllables = 1 + min(4, int(rng.poisson(0.3 + 0.32 * len(str(len(words) + 10)))))
        word = "".join(onsets[rng.integers(len(onsets))] + nuclei[rng.integers(len(nuclei))]
                       + codas[rng.integers(len(codas))] for _ in range(syllables))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return sorted(words, key=lambda w: len(w) + rng.random() * 6)


def generate_text(path: Path, nbytes: int, seed: int = 0) -> int:
    """At least `nbytes` of text in `path`: Zipf(1.07) words, 5% commas, 2.5% full stops, paragraphs
    of ~40 words, one per line. Vectorised: about 20 MB/s."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = make_vocabulary(rng)
    pieces = [w.encode() + b" " for w in words] + [b". ", b", ", b".\n"]
    types = len(words)
    cdf = np.cumsum(1.0 / np.arange(1, types + 1) ** 1.07)
    cdf /= cdf[-1]
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    table = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    written = 0
    with open(path, "wb") as f:
        while written < nbytes:
            n = 1_000_000
            idx = np.searchsorted(cdf, rng.random(n)).clip(0, types - 1)
            u = rng.random(n)
            idx[u < 0.05] = types + 1
            idx[(u >= 0.05) & (u < 0.075)] = types
            idx[u >= 0.975] = types + 2
            size = lengths[idx]
            ends = np.cumsum(size)
            pos = np.arange(ends[-1]) - np.repeat(ends - size, size) + np.repeat(offsets[idx], size)
            data = table[pos].tobytes()
            f.write(data)
            written += len(data)
    return written


PARAGRAPH_SOURCES = ("*.py", "*.txt", "*.rst", "*.md")


def text_roots() -> list[Path]:
    """Where text already on the machine lies: the standard library and the installed packages."""
    import site
    import sysconfig

    roots = {Path(sysconfig.get_paths()["stdlib"]), *(Path(p) for p in site.getsitepackages())}
    return sorted(r for r in roots if r.is_dir())


def paragraphs_of(path: Path) -> Iterator[str]:
    """The paragraphs of a text file (runs of non-blank lines), each joined into one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    for block in re.split(r"\n\s*\n", text):
        line = " ".join(block.split())
        if line:
            yield line


def generate_paragraphs(path: Path, nbytes: int, min_chars: int = 40) -> int:
    """At least `nbytes` of text in `path`, one paragraph per line, made from the Python sources and
    docs on the machine (`text_roots`): each paragraph's lines joined into one, short paragraphs joined
    to the next until a line has `min_chars` characters (OSCAR-style documents: ~250 bytes a
    line), the whole repeated until `nbytes` are written."""
    files = sorted(f for root in text_roots() for pattern in PARAGRAPH_SOURCES for f in root.rglob(pattern)
                   if f.is_file())
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < nbytes:
            before = written
            pending = ""
            for source in files:
                for paragraph in paragraphs_of(source):
                    pending = f"{pending} {paragraph}" if pending else paragraph
                    if len(pending) >= min_chars:
                        written += len(pending.encode()) + 1
                        f.write(pending + "\n")
                        pending = ""
                if written >= nbytes:
                    return written
            if written == before:
                raise RuntimeError(f"no text found under {', '.join(map(str, text_roots()))}")
    return written


def prefix_file(source: Path, target: Path, nbytes: int) -> None:
    """The first `nbytes` of `source` (extended to the end of the line) in `target`."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        left = nbytes
        while left > 0:
            data = src.read(min(left, 64 << 20))
            if not data:
                return
            dst.write(data)
            left -= len(data)
        dst.write(src.readline())


# --- measurements in child processes ---------------------------------------------------------

def measure(argv: list[str], env: dict | None = None) -> dict:
    """Run `argv`; its wall seconds, largest single-process RSS and peak PSS summed over the process tree, and the
    JSON object it printed last (if any)."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    peak_tree = [0]
    stop = threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:  # PSS: pages shared between processes (libraries, forked memory) counted once
                        total += p.memory_full_info().pss
                    except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
                        pass
            except psutil.NoSuchProcess:
                return
            peak_tree[0] = max(peak_tree[0], total)
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    readers = [threading.Thread(target=lambda s, b: b.append(s.read()), args=(proc.stdout, out_chunks)),
               threading.Thread(target=lambda s, b: b.append(s.read()), args=(proc.stderr, err_chunks))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stop.set()
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = "".join(out_chunks), "".join(err_chunks)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-3000:]}")
    printed = [line for line in stdout.splitlines() if line.startswith("{")]
    # ru_maxrss of the waited child: the largest of it and its own waited children (KiB on Linux)
    return {"seconds": seconds, "peak_process_bytes": usage.ru_maxrss * 1024, "peak_tree_bytes": peak_tree[0],
            **(json.loads(printed[-1]) if printed else {}), "stdout": stdout, "stderr": stderr}


def child_tokenizer(corpus: str, out: str, vocab: int, sentences: int) -> None:
    from mmadapt.data.sources import TextSource
    from mmadapt.pipeline.building_blocks import train_tokenizer_on

    settings = {"vocab_size": vocab, "model_type": "unigram", "num_threads": 0,
                **({"input_sentence_size": sentences} if sentences else {})}
    train_tokenizer_on([TextSource(corpus)], Path(out), settings, seed=0)


def child_mmadapt(corpus: str, tokenizer_dir: str, block_size: int, cache: str) -> None:
    from transformers import AutoTokenizer

    from mmadapt.data.mlm import build_blocks
    from mmadapt.data.sources import TextSource

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    started = time.perf_counter()
    blocks = build_blocks([TextSource(corpus)], tokenizer, block_size, Path(cache))
    info = json.loads((Path(blocks.filename).parent / "info.json").read_text())
    print(json.dumps({"tokens": info["tokens"], "blocks": len(blocks), "inner_seconds": time.perf_counter() - started}))


def child_datasets(corpus: str, tokenizer_dir: str, block_size: int, cache: str) -> None:
    import datasets
    from transformers import AutoTokenizer

    from mmadapt.model.tokenizer_training import available_cores

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    cores = available_cores()
    started = time.perf_counter()
    raw = datasets.load_dataset("text", data_files={"train": corpus}, cache_dir=cache)["train"]

    def tokenize(batch):
        return tokenizer(batch["text"])

    def group_texts(examples):  # as transformers' run_mlm.py does
        concatenated = {k: sum(examples[k], []) for k in examples}
        total = len(concatenated["input_ids"]) // block_size * block_size
        return {k: [t[i: i + block_size] for i in range(0, total, block_size)] for k, t in concatenated.items()}

    tokenized = raw.map(tokenize, batched=True, num_proc=cores, remove_columns=["text"])
    grouped = tokenized.map(group_texts, batched=True, num_proc=cores)
    print(json.dumps({"blocks": len(grouped), "inner_seconds": time.perf_counter() - started}))


# --- the benchmark ---------------------------------------------------------------------------

def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def end_to_end(corpus: Path, work: Path, sentences: int, vocab: int, threads: int = 0) -> dict:
    """One `mmadapt train` of a tiny model on `corpus` with an empty cache, under /usr/bin/time -v."""
    cache = work / "e2e-cache"
    out = work / "e2e-run"
    argv = ["/usr/bin/time", "-v", sys.executable, "-m", "mmadapt", "train", "--rerun",  # the run dir may hold an older run
            str(REPO / "recipes" / "tiny_full.yaml"),
            f"data.train=[{corpus}]", f"output_dir={out}", f"model.train_tokenizer.vocab_size={vocab}",
            f"model.train_tokenizer.num_threads={threads}", "train.max_steps=5", "train.log_every=1",
            "train.save_every=0", "train.progress_bar=false"]
    if sentences:
        argv.append(f"model.train_tokenizer.input_sentence_size={sentences}")
    result = measure(argv, env={"MMADAPT_CACHE": str(cache)})
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", result["stderr"]).group(1)
    maxrss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result["stderr"]).group(1))
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "time_v_max_rss_bytes": maxrss * 1024, "peak_tree_bytes": result["peak_tree_bytes"],
            "log": [line for line in result["stdout"].splitlines() if "blocks of" in line or "tokenizer" in line]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0.1,0.4,1.6", help="corpus sizes in GB (10^9 bytes)")
    parser.add_argument("--datasets-up-to", type=float, default=1.6,
                        help="measure `datasets` only on corpora up to this many GB (it is the slow one)")
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--shape", choices=("zipf", "paragraphs"), default="zipf",
                        help="zipf: synthetic words, ~180-byte lines; paragraphs: the machine's Python sources "
                             "and docs, one paragraph per line (~250 bytes)")
    parser.add_argument("--sentences", type=int, default=300_000,
                        help="tokenizer.input_sentence_size for the tokenizer trainings (0: the recipe's default)")
    parser.add_argument("--threads", type=int, default=0,
                        help="tokenizer.num_threads for the tokenizer trainings (0: every core)")
    parser.add_argument("--tokenizer-corpus", type=float, default=0.4,
                        help="GB of text the tokenizer (and the end-to-end run) trains on")
    parser.add_argument("--workdir", help="where the generated text goes (default: a temporary directory)")
    parser.add_argument("--end-to-end-only", action="store_true", help="only the 400 MB `mmadapt train` check")
    parser.add_argument("--no-end-to-end", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    sizes = [] if args.end_to_end_only else [float(s) for s in args.sizes.split(",")]
    base = args.tokenizer_corpus
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mmadapt-data-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    results: dict = {"machine": machine(), "sizes": {}}
    try:
        started = time.perf_counter()
        largest = work / "corpus-largest.txt"
        target = max(sizes + [base])
        (generate_paragraphs if args.shape == "paragraphs" else generate_text)(largest, int(target * 1e9))
        print(f"generated {gib(largest.stat().st_size)} of text in {time.perf_counter() - started:.0f} s", flush=True)
        corpora = {}
        for size in sorted(set(sizes + [base])):
            corpora[size] = work / f"corpus-{size}GB.txt"
            prefix_file(largest, corpora[size], int(size * 1e9))
        largest.unlink()
        if not args.end_to_end_only:
            tokenizer_dir = work / "tokenizer"
            tok = measure(me + ["_tokenizer", str(corpora[base]), str(tokenizer_dir), str(args.vocab), str(args.sentences)])
            results[f"tokenizer_{base}GB"] = {k: tok[k] for k in ("seconds", "peak_process_bytes", "peak_tree_bytes")}
            print(f"tokenizer training on {base} GB ({args.sentences:,} lines sampled, {args.vocab} pieces): "
                  f"{tok['seconds']:.0f} s, peak {gib(tok['peak_tree_bytes'])}", flush=True)
            for size in sizes:
                row = {}
                for tool in ("mmadapt", "datasets"):
                    if tool == "datasets" and size > args.datasets_up_to:
                        continue
                    cache = work / f"cache-{tool}"
                    got = measure(me + [f"_{tool}", str(corpora[size]), str(tokenizer_dir), str(args.block_size),
                                        str(cache)])
                    shutil.rmtree(cache, ignore_errors=True)
                    tokens = got.get("tokens") or row["mmadapt"]["tokens"]
                    row[tool] = {"tokens": tokens, "seconds": got["seconds"], "tokens_per_s": tokens / got["seconds"],
                                 "peak_process_bytes": got["peak_process_bytes"],
                                 "peak_tree_bytes": got["peak_tree_bytes"], "blocks": got.get("blocks")}
                    print(f"{size} GB {tool}: {tokens:,} tokens in {got['seconds']:.0f} s = "
                          f"{row[tool]['tokens_per_s']:,.0f} tokens/s; peak {gib(got['peak_process_bytes'])} "
                          f"(largest process), {gib(got['peak_tree_bytes'])} (all processes, PSS)", flush=True)
                results["sizes"][size] = row
        if not args.no_end_to_end:
            e2e = end_to_end(corpora[base], work, args.sentences, args.vocab, args.threads)
            results[f"end_to_end_{base}GB"] = e2e
            print(f"mmadapt train, tiny model, {base} GB corpus, empty cache: {e2e['seconds']:.0f} s, "
                  f"max RSS {gib(e2e['time_v_max_rss_bytes'])} (time -v), {gib(e2e['peak_tree_bytes'])} (all processes, PSS)",
                  flush=True)
        print(summary(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for path in work.glob("corpus-*.txt"):
                path.unlink()


def summary(results: dict) -> str:
    lines = [f"machine: {results['machine']}", "",
             "| corpus | mmadapt tokens/s | datasets tokens/s | ratio | mmadapt peak (all processes, PSS) | "
             "datasets peak (all processes, PSS) |", "|---|---|---|---|---|---|"]
    for size, row in results["sizes"].items():
        m, d = row["mmadapt"], row.get("datasets")
        ratio = f"{m['tokens_per_s'] / d['tokens_per_s']:.2f}x" if d else "-"
        d_rate = f"{d['tokens_per_s']:,.0f}" if d else "-"
        d_peak = gib(d["peak_tree_bytes"]) if d else "-"
        lines.append(f"| {size} GB | {m['tokens_per_s']:,.0f} | {d_rate} | {ratio} | {gib(m['peak_tree_bytes'])} | {d_peak} |")
    peaks = [row["mmadapt"]["peak_tree_bytes"] for row in results["sizes"].values()]
    if len(peaks) > 1:
        lines.append(f"\nmmadapt peak memory, largest / smallest corpus: {max(peaks) / min(peaks):.2f}x (target <= 1.5x)")
    return "\n".join(lines)


def machine() -> str:
    from mmadapt.model.tokenizer_training import available_cores

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{available_cores()} cores, {mem / 2**30:.0f} GiB, Python {sys.version.split()[0]}"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        {"_tokenizer": lambda a: child_tokenizer(a[0], a[1], int(a[2]), int(a[3])),
         "_mmadapt": lambda a: child_mmadapt(a[0], a[1], int(a[2]), a[3]),
         "_datasets": lambda a: child_datasets(a[0], a[1], int(a[2]), a[3])}[sys.argv[1]](sys.argv[2:])
    else:
        main()
