"""A seeded synthetic cross-lingual benchmark: the data mmadapt ships instead of downloads.

`generate_benchmark` writes corpora for a source language and derived new languages
plus three tasks in the real datasets' file formats: NLI (MultiNLI/XNLI), paraphrase
identification (PAWS-X) and extractive QA (SQuAD v1.1/MLQA), plus a bilingual dictionary
per new language; see `benchmark.py` for the layout and `describe()` for a summary. New
languages come from settings too (`custom.py`: word order, morphology, synonyms, script),
and `variants.py` draws other source grammars from the seed.
"""
from mmadapt.synth.benchmark import (DEFAULT_LANGUAGES, GENERATOR_VERSION, SynthBenchmark, describe, generate_benchmark,
                                     language_words, resolve_languages)
from mmadapt.synth.custom import spec_from_settings
from mmadapt.synth.languages import BUILTIN_LANGUAGES, SOURCE, LanguageSpec, WordOrder
from mmadapt.synth.variants import GrammarVariant, grammar_variant

__all__ = [
    "BUILTIN_LANGUAGES",
    "DEFAULT_LANGUAGES",
    "GENERATOR_VERSION",
    "GrammarVariant",
    "SOURCE",
    "LanguageSpec",
    "SynthBenchmark",
    "WordOrder",
    "describe",
    "generate_benchmark",
    "grammar_variant",
    "language_words",
    "resolve_languages",
    "spec_from_settings",
]
