"""`generate_benchmark`: the whole synthetic cross-lingual benchmark in one directory.

Layout (paths relative to the output directory, all listed in ``manifest.json``)::

    manifest.json                         seed, settings, languages, files, version
    corpus/<lang>.txt                     MLM text, one sentence per line, per language
    lexicon/<lang>.txt                    every word form of the language, one per line
    multinli_1.0/multinli_1.0_train.jsonl NLI training data, source language only
    XNLI-1.0/xnli.dev.tsv                 NLI dev set, every language (translations)
    XNLI-1.0/xnli.test.tsv                NLI test set, every language (translations)
"""
from __future__ import annotations

import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence, Union

from mmadapt.errors import did_you_mean
from mmadapt.synth import writers
from mmadapt.synth.grammar import Grammar
from mmadapt.synth.languages import BUILTIN_LANGUAGES, SOURCE, Language, LanguageSpec
from mmadapt.synth.lexicon import SCRIPTS, build_lexicon, build_meanings
from mmadapt.synth.nli import LABELS, NliGenerator

# Bump whenever the same seed and settings would produce different files.
GENERATOR_VERSION = "1"
DEFAULT_LANGUAGES = ("src", "vo", "wo")
LanguageLike = Union[str, LanguageSpec]


@dataclass(frozen=True)
class SynthBenchmark:
    """Where `generate_benchmark` put each file."""

    root: Path
    manifest: Path
    corpora: dict[str, Path]
    lexicons: dict[str, Path]
    nli_train: Path
    nli_dev: Path
    nli_test: Path


def generate_benchmark(
    out_dir: Path,
    *,
    seed: int = 0,
    languages: Sequence[LanguageLike] = DEFAULT_LANGUAGES,
    corpus_sentences: int = 20000,
    nli_train: int = 3000,
    nli_dev: int = 300,
    nli_test: int = 600,
) -> SynthBenchmark:
    """Generate the synthetic benchmark into `out_dir` and return its paths.

    `languages` are codes of `BUILTIN_LANGUAGES` (``src``, ``vo``, ``wo``, ``vso``) or
    `LanguageSpec`s; the source language ``src`` must be among them. The directory is
    built beside `out_dir` and renamed into place (replacing an older one), and the same
    seed and settings always give byte-identical files.
    """
    specs = resolve_languages(languages)
    sizes = {"corpus_sentences": corpus_sentences, "nli_train": nli_train, "nli_dev": nli_dev, "nli_test": nli_test}
    bad = [f"{name}={value}" for name, value in sizes.items() if not isinstance(value, int) or value < 1]
    if bad:
        raise ValueError(f"benchmark sizes must be positive integers: {', '.join(bad)}")
    out_dir = Path(out_dir)
    meanings = build_meanings(seed)
    langs = [Language(spec, build_lexicon(spec.code, SCRIPTS[spec.script], meanings, seed)) for spec in specs]
    grammar = Grammar(meanings)
    nli = NliGenerator(grammar)
    splits = {
        name: nli.examples(random.Random(f"{seed}:nli:{name}"), size)
        for name, size in (("train", nli_train), ("dev", nli_dev), ("test", nli_test))
    }

    files = {
        "corpus": {lang.code: f"corpus/{lang.code}.txt" for lang in langs},
        "lexicon": {lang.code: f"lexicon/{lang.code}.txt" for lang in langs},
        "nli": {
            "train": "multinli_1.0/multinli_1.0_train.jsonl",
            "dev": "XNLI-1.0/xnli.dev.tsv",
            "test": "XNLI-1.0/xnli.test.tsv",
        },
    }
    staged = writers.staging_dir(out_dir)
    try:
        for lang in langs:
            rng = random.Random(f"{seed}:corpus:{lang.code}")
            writers.write_lines(staged / files["corpus"][lang.code],
                                (lang.text(grammar.sentence(rng)) for _ in range(corpus_sentences)))
            writers.write_lines(staged / files["lexicon"][lang.code], lang.lexicon.words())
        source = next(lang for lang in langs if lang.code == SOURCE)
        writers.write_multinli_jsonl(staged / files["nli"]["train"], splits["train"], source)
        writers.write_xnli_tsv(staged / files["nli"]["dev"], splits["dev"], langs)
        writers.write_xnli_tsv(staged / files["nli"]["test"], splits["test"], langs)
        writers.write_json(staged / "manifest.json", _manifest(seed, sizes, langs, files))
        writers.publish_dir(staged, out_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return SynthBenchmark(
        root=out_dir,
        manifest=out_dir / "manifest.json",
        corpora={code: out_dir / rel for code, rel in files["corpus"].items()},
        lexicons={code: out_dir / rel for code, rel in files["lexicon"].items()},
        nli_train=out_dir / files["nli"]["train"],
        nli_dev=out_dir / files["nli"]["dev"],
        nli_test=out_dir / files["nli"]["test"],
    )


def resolve_languages(languages: Sequence[LanguageLike]) -> list[LanguageSpec]:
    """The specs for `languages`, checked: known codes, source included, no repeats, one script each."""
    specs = []
    for lang in languages:
        if isinstance(lang, LanguageSpec):
            specs.append(lang)
        elif lang in BUILTIN_LANGUAGES:
            specs.append(BUILTIN_LANGUAGES[lang])
        else:
            raise ValueError(f"unknown synthetic language {lang!r}{did_you_mean(lang, BUILTIN_LANGUAGES)}; "
                             f"built-in: {', '.join(BUILTIN_LANGUAGES)}")
    codes = [s.code for s in specs]
    if SOURCE not in codes:
        raise ValueError(f"languages {codes} must include the source language {SOURCE!r}")
    if len(set(codes)) != len(codes):
        raise ValueError(f"languages {codes} name a language twice")
    scripts = [s.script for s in specs]
    if len(set(scripts)) != len(scripts):
        # Shared letters would let new-language words coincide with source words.
        raise ValueError(f"each language needs its own script; got {dict(zip(codes, scripts))}")
    unknown = sorted(set(scripts) - set(SCRIPTS))
    if unknown:
        raise ValueError(f"unknown script(s) {unknown}; available: {', '.join(SCRIPTS)}")
    return specs


def language_words(seed: int = 0, languages: Sequence[LanguageLike] = DEFAULT_LANGUAGES) -> dict[str, list[str]]:
    """Every word form of each language (sorted), as `generate_benchmark` with `seed` writes them."""
    meanings = build_meanings(seed)
    return {
        spec.code: build_lexicon(spec.code, SCRIPTS[spec.script], meanings, seed).words()
        for spec in resolve_languages(languages)
    }


def describe(languages: Sequence[LanguageLike] = tuple(BUILTIN_LANGUAGES)) -> str:
    """A few paragraphs on the benchmark for the CLI: languages, tasks and files."""
    lines = [
        f"Synthetic cross-lingual benchmark (generator version {GENERATOR_VERSION}).",
        "A seeded probabilistic grammar (nouns with number, agreeing verbs, adjectives, adverbs,",
        "prepositional phrases, relative clauses, negation, 'and'/'because' clauses) gives the",
        "source language; new languages render the same meanings with their own invented words",
        "(another script each, so no word or letter is shared with the source) and word order.",
        "",
        "Languages:",
    ]
    lines += [f"  {spec.code:<4} {spec.description}" for spec in resolve_languages(languages)]
    lines += [
        "",
        f"NLI task ({' / '.join(LABELS)}, balanced): the hypothesis is the premise with one edit",
        "(drop/add a modifier or clause, noun to class word or back, negation, antonym); a negated",
        "premise reverses the drop/add directions. Trained on the source (MultiNLI layout),",
        "evaluated on the same test examples rendered in every language (XNLI layout).",
        "",
        "Files: manifest.json, corpus/<lang>.txt, lexicon/<lang>.txt,",
        "multinli_1.0/multinli_1.0_train.jsonl, XNLI-1.0/xnli.{dev,test}.tsv",
    ]
    return "\n".join(lines)


def _manifest(seed: int, sizes: dict, langs: list[Language], files: dict) -> dict:
    return {
        "generator": "mmadapt.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "settings": {**sizes, "languages": [lang.code for lang in langs]},
        "source_language": SOURCE,
        "languages": {
            lang.code: {
                "description": lang.spec.description,
                "script": lang.spec.script,
                "word_order": asdict(lang.spec.order),
                "vocabulary_size": len(lang.lexicon.words()),
            }
            for lang in langs
        },
        "tasks": {"nli": {"labels": list(LABELS), "train_language": SOURCE}},
        "files": files,
    }
