"""`generate_benchmark`: the whole synthetic cross-lingual benchmark in one directory.

Layout (paths relative to the output directory, all listed in ``manifest.json``)::

    manifest.json                         seed, settings, languages, tasks, files, version
    corpus/<lang>.txt                     MLM text, one sentence per line, per language
    lexicon/<lang>.txt                    every word form of the language, one per line
    multinli_1.0/multinli_1.0_train.jsonl NLI training data, source language only
    XNLI-1.0/xnli.dev.tsv                 NLI dev set, every language (translations)
    XNLI-1.0/xnli.test.tsv                NLI test set, every language (translations)
    paws-x/train.tsv                      paraphrase training data, source language only
    paws-x/<lang>/dev_2k.tsv              paraphrase dev set per language (translations)
    paws-x/<lang>/test_2k.tsv             paraphrase test set per language (translations)
    squad/train-v1.1.json                 extractive QA training data, source language only
    mlqa/dev/dev-context-<lang>-question-<lang>.json    QA dev set per language (translations)
    mlqa/test/test-context-<lang>-question-<lang>.json  QA test set per language (translations)
    dictionaries/src-<lang>.txt           bilingual dictionary per new language (MUSE layout), diagnostics
    dictionaries/src-<lang>.train.txt     with `dictionary_fraction` < 1: that share of its pairs, for initialisers

Every task's evaluation examples are the same meanings rendered in each language, so
ids and labels (and answers, up to translation) are parallel across languages. Languages
are built-in codes, `LanguageSpec`s or settings mappings (`custom.py`); `grammar_variant`
picks another source grammar (`variants.py`).
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from mmadapt.errors import did_you_mean
from mmadapt.files.atomic import write_dir_atomic
from mmadapt.synth import writers
from mmadapt.synth.clausal import (CLAUSAL_INVENTORY, CLAUSAL_WEIGHTS, DEFAULT_FAMILY, FAMILIES, ClausalGrammar,
                                   ClausalNliGenerator, family_seed, hard_share)
from mmadapt.synth.custom import spec_from_settings
from mmadapt.synth.grammar import Grammar
from mmadapt.synth.languages import BUILTIN_LANGUAGES, SOURCE, Language, LanguageSpec
from mmadapt.synth.lexicon import SCRIPTS, build_meanings, dictionary_pairs, shared_lemmas, with_shared_forms
from mmadapt.synth.nli import LABELS, NliGenerator
from mmadapt.synth.paraphrase import LABELS as PARAPHRASE_LABELS
from mmadapt.synth.paraphrase import ParaphraseGenerator, render_words
from mmadapt.synth.qa import SEPARATOR as QA_SEPARATOR
from mmadapt.synth.qa import QaGenerator
from mmadapt.synth.variants import GrammarVariant, grammar_variant as draw_grammar_variant

# Bump whenever the same seed and settings would produce different files.
# 2: question words, questions in the corpora, PAWS-X and SQuAD/MLQA tasks.
# 3: Zipfian word frequencies and selectional preferences (`usage.py`), so words are identifiable.
# 4: paraphrase sentences of at most 14 words, so a pair fits a 32-token input untruncated; paraphrase
#    pairs in the "and" frame only by default (`pawsx_frames`).
# 5: bilingual dictionaries (dictionaries/src-<lang>.txt) and each language's typology and the grammar in
#    the manifest; typology settings and grammar variants. With the default settings every other file is
#    byte-identical to version 4's, but a version-4 directory lacks the new files (caches are keyed on this).
GENERATOR_VERSION = "5"
# Share of extra corpus lines that are questions (on top of `corpus_sentences` statements),
# so each language's question words occur in its MLM text.
CORPUS_QUESTION_SHARE = 0.05
DEFAULT_LANGUAGES = ("src", "vo", "wo")
# The quickstart's 4-layer model learns "and"-frame pairs (76% of source dev pairs after 2000
# fine-tuning steps on 15000 of them) but not the relative-clause frame (55%), and with both frames
# mixed it stays at chance: so "and" only, unless `pawsx_frames` asks for the harder frame too.
DEFAULT_PAWSX_FRAMES = ("and",)
LanguageLike = Union[str, LanguageSpec, Mapping[str, Any]]
TASK_DESCRIPTIONS = {
    "nli": "the hypothesis is the premise with one edit (drop/add a modifier or clause, noun to class "
           "word or back, negation, antonym); a negated premise reverses the drop/add directions.",
    "paraphrase": "PAWS-style word scrambling: both sentences hold exactly the same words. Paraphrases swap "
                  "the conjuncts of an 'and' sentence (or, in the 'relative' frame, exchange a relative clause "
                  "with the main predicate); non-paraphrases exchange subjects, objects, verbs or modifiers "
                  "between clauses, subject and object, or move an adjective to another noun.",
    "qa": "a context of 3-5 clauses (one per line) with 1-3 questions; a question restates one clause "
          "with its subject, object or PP noun phrase replaced by a question word (left in place), and "
          "the answer is that noun phrase, a span occurring once in the context.",
}


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
    pawsx_train: Path
    pawsx_dev: dict[str, Path]
    pawsx_test: dict[str, Path]
    qa_train: Path
    qa_dev: dict[str, Path]
    qa_test: dict[str, Path]
    dictionaries: dict[str, Path]  # new language -> its src-<lang> dictionary
    #: new language -> its src-<lang>.train dictionary (`dictionary_fraction` < 1; else empty)
    train_dictionaries: dict[str, Path]


def generate_benchmark(
    out_dir: Path,
    *,
    seed: int = 0,
    languages: Sequence[LanguageLike] = DEFAULT_LANGUAGES,
    corpus_sentences: int = 20000,
    nli_train: int = 3000, nli_dev: int = 300, nli_test: int = 600,
    pawsx_train: int = 15000, pawsx_dev: int = 300, pawsx_test: int = 600,
    qa_train: int = 3000, qa_dev: int = 200, qa_test: int = 400,
    pawsx_frames: Sequence[str] = DEFAULT_PAWSX_FRAMES,
    grammar_variant: int | None = 0,
    dictionary_fraction: float = 1.0,
    shared_words: float = 0.0,
    family: str = DEFAULT_FAMILY,
    nli_difficulty: str | float = "easy",
) -> SynthBenchmark:
    """Generate the synthetic benchmark into `out_dir` and return its paths.

    `languages` are codes of `BUILTIN_LANGUAGES` (see `describe()`), `LanguageSpec`s or
    settings mappings (`mmadapt.synth.custom`); the source language ``src`` must be among
    them. Sizes count statements per corpus (plus `CORPUS_QUESTION_SHARE` as many
    questions), NLI and paraphrase pairs, and QA questions; `pawsx_frames` picks the
    paraphrase frames ("and", "relative": see `mmadapt.synth.paraphrase`);
    `grammar_variant` k > 0 draws another source grammar from the seed (0 or None: the
    source grammar; see `mmadapt.synth.variants`). `dictionary_fraction` below 1 also writes, per
    new language, `dictionaries/src-<lang>.train.txt`: that share of its dictionary's pairs, drawn
    from the seed, for an initialiser to learn from (the full dictionary stays for `alignment_at_1`).
    `shared_words` is the share of noun lemmas every new language writes as the source does (as
    real language pairs share names and loanwords; 0: none). The directory is built beside `out_dir`
    and renamed into place (replacing an older one), and the same seed and settings
    always give byte-identical files.
    """
    specs = resolve_languages(languages)
    sizes = {"corpus_sentences": corpus_sentences, "nli_train": nli_train, "nli_dev": nli_dev, "nli_test": nli_test,
             "pawsx_train": pawsx_train, "pawsx_dev": pawsx_dev, "pawsx_test": pawsx_test,
             "qa_train": qa_train, "qa_dev": qa_dev, "qa_test": qa_test}
    _check_settings(sizes, dictionary_fraction, family)
    out_dir = Path(out_dir)
    hard = hard_share(nli_difficulty)
    user_seed, seed = seed, family_seed(seed, family)
    variant = _family_variant(seed, family, grammar_variant)
    meanings = build_meanings(seed, variant.inventory, variant.variant)
    langs = _build_languages(specs, meanings, seed, shared_words)
    source = next(lang for lang in langs if lang.code == SOURCE)
    grammar = ClausalGrammar(meanings, variant.weights) if family == "clausal" else Grammar(meanings, variant.weights)
    nli = ClausalNliGenerator(grammar, hard) if family == "clausal" else NliGenerator(grammar)
    paws = ParaphraseGenerator(grammar, render_words(source), pawsx_frames)  # checks the frames before any work
    files = _layout([lang.code for lang in langs], with_train_dictionaries=dictionary_fraction < 1)
    settings = _recorded_settings(sizes, pawsx_frames, variant.variant, dictionary_fraction, shared_words, family,
                                  nli_difficulty)

    def write(staged: Path) -> None:
        _write_corpora(staged, files, langs, grammar, seed, corpus_sentences)
        _write_tasks(staged, files, langs, nli, paws, seed, sizes)
        _write_dictionaries(staged, files, langs, dictionary_fraction, seed)
        writers.write_json(staged / "manifest.json", _manifest(user_seed, settings, langs, files, variant))

    write_dir_atomic(out_dir, write)
    return _benchmark_paths(out_dir, files)


def _check_settings(sizes: dict[str, int], dictionary_fraction: float, family: str) -> None:
    """Raise ValueError for a size, dictionary share or family the generator cannot take."""
    _check_sizes(sizes)
    if not 0 < dictionary_fraction <= 1:
        raise ValueError(f"dictionary_fraction must be in (0, 1]; got {dictionary_fraction!r}")
    if family not in FAMILIES:
        raise ValueError(f"unknown grammar family {family!r}{did_you_mean(family, FAMILIES)}; "
                         f"available: {', '.join(FAMILIES)}")


def _build_languages(specs: Sequence[Any], meanings: Any, seed: int, shared_words: float) -> list[Language]:
    """Every language's lexicon; with `shared_words`, that share of noun lemmas written as the source writes them."""
    langs = [Language.build(spec, meanings, seed) for spec in specs]
    source = next(lang for lang in langs if lang.code == SOURCE)
    shared = shared_lemmas(meanings, shared_words, seed)
    if not shared:
        return langs
    return [lang if lang is source else Language(lang.spec, with_shared_forms(lang.lexicon, source.lexicon, shared))
            for lang in langs]


def _recorded_settings(sizes: dict[str, int], pawsx_frames: Sequence[str], grammar_variant: int,
                       dictionary_fraction: float, shared_words: float, family: str,
                       nli_difficulty: str | float) -> dict[str, Any]:
    """The settings the manifest records; optional ones only when set, so the default manifest stays as it was."""
    settings = {**sizes, "pawsx_frames": list(pawsx_frames), "grammar_variant": grammar_variant}
    if dictionary_fraction != 1:
        settings["dictionary_fraction"] = dictionary_fraction
    if shared_words:
        settings["shared_words"] = shared_words
    if family != DEFAULT_FAMILY:
        settings.update(family=family, nli_difficulty=nli_difficulty)
    return settings


def _family_variant(seed: int, family: str, grammar_variant: int | None) -> GrammarVariant:
    """The grammar of `family`: `basic` and its variants, or the clausal family's own inventory and weights."""
    if family == DEFAULT_FAMILY:
        return draw_grammar_variant(seed, grammar_variant)
    if grammar_variant:
        raise ValueError(f"grammar_variant applies to the basic family only; got {grammar_variant!r} with "
                         f"family {family!r}")
    return GrammarVariant(0, CLAUSAL_INVENTORY, CLAUSAL_WEIGHTS)


def _benchmark_paths(out_dir: Path, files: dict) -> SynthBenchmark:
    """The `SynthBenchmark` of a directory with the `_layout` `files`."""

    def paths(rel: dict[str, str]) -> dict[str, Path]:
        return {code: out_dir / p for code, p in rel.items()}

    return SynthBenchmark(
        root=out_dir,
        manifest=out_dir / "manifest.json",
        corpora=paths(files["corpus"]),
        lexicons=paths(files["lexicon"]),
        nli_train=out_dir / files["nli"]["train"],
        nli_dev=out_dir / files["nli"]["dev"],
        nli_test=out_dir / files["nli"]["test"],
        pawsx_train=out_dir / files["paraphrase"]["train"],
        pawsx_dev=paths(files["paraphrase"]["dev"]),
        pawsx_test=paths(files["paraphrase"]["test"]),
        qa_train=out_dir / files["qa"]["train"],
        qa_dev=paths(files["qa"]["dev"]),
        qa_test=paths(files["qa"]["test"]),
        dictionaries=paths(files["dictionary"]),
        train_dictionaries=paths(files.get("train_dictionary", {})),
    )


def _check_sizes(sizes: dict) -> None:
    bad = [f"{name}={value}" for name, value in sizes.items() if not isinstance(value, int) or value < 1]
    if bad:
        raise ValueError(f"benchmark sizes must be positive integers: {', '.join(bad)}")


def _write_dictionaries(root: Path, files: dict, langs: list[Language], fraction: float, seed: int) -> None:
    """Each new language's MUSE-layout dictionary: `source_word target_word` per line, sorted; and with
    `fraction` < 1 its training part, that share of the pairs drawn from the seed."""
    source = next(lang for lang in langs if lang.code == SOURCE)
    for lang in langs:
        if lang.code != SOURCE:
            pairs = dictionary_pairs(source.lexicon, lang.lexicon)
            writers.write_lines(root / files["dictionary"][lang.code], (f"{s} {t}" for s, t in pairs))
            if fraction < 1:
                part = sorted(random.Random(f"{seed}:dictionary:{lang.code}").sample(pairs, round(fraction * len(pairs))))
                writers.write_lines(root / files["train_dictionary"][lang.code], (f"{s} {t}" for s, t in part))


def _write_tasks(root: Path, files: dict, langs: list[Language], nli: NliGenerator, paws: ParaphraseGenerator,
                 seed: int, sizes: dict) -> None:
    """The NLI, paraphrase and QA files: training data in the source language, evaluation data in every one."""
    source = next(lang for lang in langs if lang.code == SOURCE)
    grammar = nli.g
    nli_splits = {split: nli.examples(random.Random(f"{seed}:nli:{split}"), sizes[f"nli_{split}"])
                  for split in ("train", "dev", "test")}
    writers.write_multinli_jsonl(root / files["nli"]["train"], nli_splits["train"], source)
    writers.write_xnli_tsv(root / files["nli"]["dev"], nli_splits["dev"], langs)
    writers.write_xnli_tsv(root / files["nli"]["test"], nli_splits["test"], langs)
    qa = QaGenerator(grammar)
    for split in ("train", "dev", "test"):
        pairs = paws.pairs(random.Random(f"{seed}:paraphrase:{split}"), sizes[f"pawsx_{split}"])
        paragraphs = qa.paragraphs(random.Random(f"{seed}:qa:{split}"), sizes[f"qa_{split}"])
        for lang in [source] if split == "train" else langs:
            where = files["paraphrase"][split] if split == "train" else files["paraphrase"][split][lang.code]
            writers.write_pawsx_tsv(root / where, pairs, lang)
            where = files["qa"][split] if split == "train" else files["qa"][split][lang.code]
            writers.write_squad_json(root / where, paragraphs, lang, split)


def _layout(codes: list[str], with_train_dictionaries: bool = False) -> dict:
    """Every file's path relative to the benchmark root, as listed in the manifest."""
    train = {"train_dictionary": {code: f"dictionaries/{SOURCE}-{code}.train.txt" for code in codes if code != SOURCE}}
    return {
        "corpus": {code: f"corpus/{code}.txt" for code in codes},
        "lexicon": {code: f"lexicon/{code}.txt" for code in codes},
        "nli": {
            "train": "multinli_1.0/multinli_1.0_train.jsonl",
            "dev": "XNLI-1.0/xnli.dev.tsv",
            "test": "XNLI-1.0/xnli.test.tsv",
        },
        "paraphrase": {
            "train": "paws-x/train.tsv",
            "dev": {code: f"paws-x/{code}/dev_2k.tsv" for code in codes},
            "test": {code: f"paws-x/{code}/test_2k.tsv" for code in codes},
        },
        "qa": {
            "train": "squad/train-v1.1.json",
            **{split: {code: f"mlqa/{split}/{split}-context-{code}-question-{code}.json" for code in codes}
               for split in ("dev", "test")},
        },
        "dictionary": {code: f"dictionaries/{SOURCE}-{code}.txt" for code in codes if code != SOURCE},
        **(train if with_train_dictionaries else {}),
    }


def _write_corpora(root: Path, files: dict, langs: list[Language], grammar: Grammar, seed: int,
                   statements: int) -> None:
    """Each language's corpus (statements with questions spread among them) and lexicon."""
    questions = round(statements * CORPUS_QUESTION_SHARE)
    qa = QaGenerator(grammar)
    for lang in langs:
        # Two streams: the statements are the same lines, in the same order, as before questions existed.
        rng, question_rng = random.Random(f"{seed}:corpus:{lang.code}"), random.Random(f"{seed}:questions:{lang.code}")

        def lines():
            asked = 0
            for i in range(statements):
                yield lang.text(grammar.sentence(rng))
                # Question k goes after statement (k + 1) * statements // (questions + 1) - 1: evenly spread.
                while asked < questions and (asked + 1) * statements // (questions + 1) <= i + 1:
                    yield lang.text(qa.ask(question_rng))
                    asked += 1

        writers.write_lines(root / files["corpus"][lang.code], lines())
        writers.write_lines(root / files["lexicon"][lang.code], lang.lexicon.words())


def resolve_languages(languages: Sequence[LanguageLike]) -> list[LanguageSpec]:
    """The specs for `languages`, checked: known codes or valid settings, source included, no repeats,
    one script each."""
    specs = []
    for lang in languages:
        if isinstance(lang, LanguageSpec):
            specs.append(lang)
        elif isinstance(lang, Mapping):
            specs.append(spec_from_settings(lang))
        elif not isinstance(lang, str):
            raise ValueError(f"a synthetic language is a built-in code or a mapping of settings; got {lang!r}")
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


def language_words(seed: int = 0, languages: Sequence[LanguageLike] = DEFAULT_LANGUAGES,
                   grammar_variant: int | None = 0, family: str = DEFAULT_FAMILY) -> dict[str, list[str]]:
    """Every word form of each language (sorted), as `generate_benchmark` with these settings writes them."""
    seed = family_seed(seed, family)
    variant = _family_variant(seed, family, grammar_variant)
    meanings = build_meanings(seed, variant.inventory, variant.variant)
    return {spec.code: Language.build(spec, meanings, seed).lexicon.words() for spec in resolve_languages(languages)}


def describe(languages: Sequence[LanguageLike] = tuple(BUILTIN_LANGUAGES)) -> str:
    """A few paragraphs on the benchmark for the CLI: languages, tasks and files."""
    lines = [
        f"Synthetic cross-lingual benchmark (generator version {GENERATOR_VERSION}).",
        "A seeded probabilistic grammar (nouns with number, agreeing verbs, adjectives, adverbs,",
        "prepositional phrases, relative clauses, negation, 'and'/'because' clauses) gives the",
        "source language; new languages render the same meanings with their own invented words",
        "(another script each, so no word or letter is shared with the source), word order and",
        "morphology (suffixes or prefixes glued to the stem; synonyms in some).",
        "Word frequencies are Zipfian and words prefer their partners (verbs their subjects and",
        "objects, nouns their adjectives, ...), so each word's contexts identify it.",
        "",
        "Languages:",
    ]
    specs = resolve_languages(languages)
    width = max(len(spec.code) for spec in specs)
    lines += [f"  {spec.code:<{width}} {spec.description}" for spec in specs]
    lines += [
        "",
        "More languages from settings: languages: [src, {code: x1, script: hebrew, order: {clause: SOV,",
        "  determiner_after_noun: true}, morphology: prefix, synonyms: 0.3}]",
        "(a script not used by another language: " + ", ".join(SCRIPTS) + ").",
        "Other source grammars: grammar_variant: k (k > 0) draws the inventory sizes and construction",
        "weights from the seed; 0, the default, is the grammar above.",
        "",
        f"NLI task ({' / '.join(LABELS)}, balanced): {TASK_DESCRIPTIONS['nli']}",
        "",
        f"Paraphrase task (0 / 1, balanced): {TASK_DESCRIPTIONS['paraphrase']}",
        "",
        f"QA task (extractive): {TASK_DESCRIPTIONS['qa']}",
        "",
        "Each task trains on the source language and evaluates the same examples rendered in",
        "every language.",
        "",
        "Files: manifest.json, corpus/<lang>.txt, lexicon/<lang>.txt,",
        "multinli_1.0/multinli_1.0_train.jsonl, XNLI-1.0/xnli.{dev,test}.tsv,",
        "paws-x/train.tsv, paws-x/<lang>/{dev,test}_2k.tsv, squad/train-v1.1.json,",
        "mlqa/{dev,test}/{dev,test}-context-<lang>-question-<lang>.json,",
        "dictionaries/src-<lang>.txt (every source word form and its translations, one pair a line)",
    ]
    return "\n".join(lines)


def _manifest(seed: int, settings: dict, langs: list[Language], files: dict, grammar: GrammarVariant) -> dict:
    return {
        "generator": "mmadapt.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "settings": {**settings, "languages": [lang.code for lang in langs]},
        "source_language": SOURCE,
        "grammar": grammar.as_dict(),
        "languages": {
            lang.code: {
                "description": lang.spec.description,
                "script": lang.spec.script,
                "word_order": asdict(lang.spec.order),
                "morphology": lang.spec.morphology,
                "synonyms": lang.spec.synonyms,
                "vocabulary_size": len(lang.lexicon.words()),
            }
            for lang in langs
        },
        "tasks": {
            "nli": {"format": "MultiNLI 1.0 train, XNLI 1.0 dev/test", "labels": list(LABELS),
                    "train_language": SOURCE, "description": TASK_DESCRIPTIONS["nli"]},
            "paraphrase": {"format": "PAWS-X", "labels": list(PARAPHRASE_LABELS), "train_language": SOURCE,
                           "description": TASK_DESCRIPTIONS["paraphrase"]},
            "qa": {"format": "SQuAD v1.1 train, MLQA dev/test (context and question in the same language)",
                   "train_language": SOURCE, "context_separator": QA_SEPARATOR,
                   "description": TASK_DESCRIPTIONS["qa"]},
        },
        "files": files,
    }
