"""A seeded synthetic cross-lingual benchmark: the data mmadapt ships instead of downloads.

`generate_benchmark` writes corpora for a source language and derived new languages
plus three tasks in the real datasets' file formats: NLI (MultiNLI/XNLI), paraphrase
identification (PAWS-X) and extractive QA (SQuAD v1.1/MLQA); see `benchmark.py` for the
layout and `describe()` for a summary.
"""
from mmadapt.synth.benchmark import (
    DEFAULT_LANGUAGES,
    GENERATOR_VERSION,
    SynthBenchmark,
    describe,
    generate_benchmark,
    language_words,
    resolve_languages,
)
from mmadapt.synth.languages import BUILTIN_LANGUAGES, SOURCE, LanguageSpec, WordOrder

__all__ = [
    "BUILTIN_LANGUAGES",
    "DEFAULT_LANGUAGES",
    "GENERATOR_VERSION",
    "SOURCE",
    "LanguageSpec",
    "SynthBenchmark",
    "WordOrder",
    "describe",
    "generate_benchmark",
    "language_words",
    "resolve_languages",
]
