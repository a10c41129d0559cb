"""Tests for mmadapt.synth: determinism, grammar, languages, task semantics and file formats."""
from __future__ import annotations

import collections
import csv
import json
import random
from dataclasses import replace

import pytest

from mmadapt.synth import BUILTIN_LANGUAGES, describe, generate_benchmark, language_words
from mmadapt.synth import lexicon as lx
from mmadapt.synth.grammar import Clause, Grammar, NounPhrase, RelativeClause, Sentence
from mmadapt.synth.languages import Language
from mmadapt.synth.lexicon import SCRIPTS, build_lexicon, build_meanings
from mmadapt.synth.nli import LABELS, NliGenerator
from mmadapt.synth.writers import XNLI_COLUMNS

SMALL = dict(corpus_sentences=300, nli_train=150, nli_dev=30, nli_test=60, pawsx_train=100, pawsx_dev=20,
             pawsx_test=40, qa_train=60, qa_dev=20, qa_test=40)
ALL = tuple(BUILTIN_LANGUAGES)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return generate_benchmark(tmp_path_factory.mktemp("synth") / "bench", seed=7, languages=ALL, **SMALL)


@pytest.fixture(scope="module")
def langs():
    meanings = build_meanings(7)
    return {code: Language.build(spec, meanings, 7) for code, spec in BUILTIN_LANGUAGES.items()}


def _read_xnli(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_and_settings_give_byte_identical_files(tmp_path):
    first = generate_benchmark(tmp_path / "a", seed=3, **SMALL)
    second = generate_benchmark(tmp_path / "b", seed=3, **SMALL)
    files = _files(first.root)
    assert files == _files(second.root)
    assert {"paws-x/train.tsv", "paws-x/wo/test_2k.tsv", "squad/train-v1.1.json",
            "mlqa/test/test-context-wo-question-wo.json"} <= set(files)
    other = _files(generate_benchmark(tmp_path / "c", seed=4, **SMALL).root)
    for rel in ("corpus/src.txt", "XNLI-1.0/xnli.test.tsv", "paws-x/vo/dev_2k.tsv",
                "mlqa/dev/dev-context-wo-question-wo.json"):
        assert other[rel] != files[rel]


def test_regenerating_replaces_the_directory_and_leaves_no_temp_dirs(tmp_path):
    out = tmp_path / "bench"
    generate_benchmark(out, **SMALL)
    (out / "stale.txt").write_text("left from an earlier run")
    generate_benchmark(out, **SMALL)
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bench"]


def test_present_tense_verbs_and_determiners_agree_in_number(bench, langs):
    # In the source order the first noun of a clause is its subject, and a relative
    # clause's verb agrees with that same noun, so every present verb matches it.
    for code in ("src", "vo"):
        analyse = langs[code].lexicon.analyse()
        conjunctions = {langs[code].lexicon.form(lx.AND), langs[code].lexicon.form(lx.BECAUSE)}
        question_words = {langs[code].lexicon.form(w) for w in lx.QUESTION_WORDS}
        checked = 0
        for line in bench.corpora[code].read_text(encoding="utf-8").splitlines():
            if question_words & set(line.split()):
                continue  # a question word may stand for the subject, which then has no noun
            clause: list[tuple[str, str]] = []
            for word in line.split() + [None]:
                if word is None or word in conjunctions:
                    nouns = [infl for lemma, infl in clause if infl in (lx.NOUN_SG, lx.NOUN_PL)]
                    verbs = [infl for lemma, infl in clause if infl in (lx.PRES_SG, lx.PRES_PL)]
                    expected = lx.PRES_PL if nouns[0] == lx.NOUN_PL else lx.PRES_SG
                    assert all(v == expected for v in verbs), line
                    checked += len(verbs)
                    clause = []
                else:
                    clause.append(analyse[word])
            words = [analyse[w] for w in line.split()]
            for i, (lemma, _) in enumerate(words):
                if lemma in (lx.DET_DEF_SG, lx.DET_INDEF_SG, lx.DET_DEF_PL, lx.DET_INDEF_PL):
                    noun = next(infl for _, infl in words[i + 1:] if infl in (lx.NOUN_SG, lx.NOUN_PL))
                    assert (noun == lx.NOUN_PL) == lemma.endswith("_PL"), line
        assert checked > 100


def test_new_language_words_share_no_word_or_letter_with_the_source():
    words = language_words(seed=7, languages=ALL)
    letters = {code: set("".join(ws)) for code, ws in words.items()}
    for code in ALL:
        if code == "src":
            continue
        assert not set(words[code]) & set(words["src"])
        assert not letters[code] & letters["src"]
    assert len(words["src"]) > 300
    for code, ws in words.items():
        # Synonyms add a second form to a share of the content lemmas' forms; nothing else changes the count.
        more = BUILTIN_LANGUAGES[code].synonyms > 0
        assert len(ws) > len(words["src"]) if more else len(ws) == len(words["src"]), code


def test_corpora_use_only_their_language_words(bench):
    words = language_words(seed=7, languages=ALL)
    for code, path in bench.corpora.items():
        used = set(path.read_text(encoding="utf-8").split())
        assert used <= set(words[code])
        assert len(used) > 150  # a 300-sentence corpus already uses most of the lexicon


def test_word_forms_map_one_to_one_between_languages(langs):
    for lang in langs.values():
        assert len(set(lang.lexicon.forms.values())) == len(lang.lexicon.forms)
        assert lang.lexicon.forms.keys() == langs["src"].lexicon.forms.keys()


def test_vocabulary_only_language_keeps_the_order_word_for_word(langs):
    to_vo = {langs["src"].lexicon.forms[k]: v for k, v in langs["vo"].lexicon.forms.items()}
    sentences = Grammar(build_meanings(7)).sentence
    rng = random.Random(0)
    for _ in range(200):
        s = sentences(rng)
        assert langs["vo"].text(s) == " ".join(to_vo[w] for w in langs["src"].text(s).split())


def test_word_order_language_moves_verb_adjective_adposition_and_negation(langs):
    subject = NounPhrase("n_an0.1", plural=True, adj="adj0a")
    obj = NounPhrase("n_th0.2", definite=False, adj="adj1b")
    clause = Clause(subject, "vt0a", obj, neg=True, adv="adv0", pp=("p0", NounPhrase("n_th1.0")))
    src, wo = langs["src"], langs["wo"]

    def w(lang, lemma, infl=""):
        return lang.lexicon.form(lemma, infl)

    s, o = src.text(Sentence((clause,))).split(), wo.text(Sentence((clause,))).split()
    # Source: DET ADJ N NEG V DET ADJ N P DET N ADV
    assert s == [w(src, lx.DET_DEF_PL), w(src, "adj0a"), w(src, "n_an0.1", "pl"), w(src, lx.NEG),
                 w(src, "vt0a", "pres_pl"), w(src, lx.DET_INDEF_SG), w(src, "adj1b"), w(src, "n_th0.2", "sg"),
                 w(src, "p0"), w(src, lx.DET_DEF_SG), w(src, "n_th1.0", "sg"), w(src, "adv0")]
    # Word order language: DET N ADJ DET N ADJ DET N POSTP ADV V NEG (verb-final)
    assert o == [w(wo, lx.DET_DEF_PL), w(wo, "n_an0.1", "pl"), w(wo, "adj0a"), w(wo, lx.DET_INDEF_SG),
                 w(wo, "n_th0.2", "sg"), w(wo, "adj1b"), w(wo, lx.DET_DEF_SG), w(wo, "n_th1.0", "sg"),
                 w(wo, "p0"), w(wo, "adv0"), w(wo, "vt0a", "pres_pl"), w(wo, lx.NEG)]


def test_word_order_language_puts_relative_and_cause_clauses_first(langs):
    src, wo = langs["src"], langs["wo"]
    rel = Clause(NounPhrase("n_an0.1", rel=RelativeClause("vt0a", NounPhrase("n_th0.2"))), "vi0a")
    effect, cause = Clause(NounPhrase("n_an1.0"), "vi1a"), Clause(NounPhrase("n_an2.0"), "vi2b")
    f = lambda lang, lemma, infl="": lang.lexicon.form(lemma, infl)  # noqa: E731
    assert wo.text(Sentence((rel,))).split()[1:5] == [f(wo, lx.DET_DEF_SG), f(wo, "n_th0.2", "sg"),
                                                      f(wo, "vt0a", "pres_sg"), f(wo, lx.REL)]
    assert src.text(Sentence((rel,))).split()[1:4] == [f(src, "n_an0.1", "sg"), f(src, lx.REL), f(src, "vt0a", "pres_sg")]
    because = Sentence((effect, cause), lx.BECAUSE)
    assert src.text(because) == f"{src.text(Sentence((effect,)))} {f(src, lx.BECAUSE)} {src.text(Sentence((cause,)))}"
    assert wo.text(because) == f"{wo.text(Sentence((cause,)))} {f(wo, lx.BECAUSE)} {wo.text(Sentence((effect,)))}"


def test_every_word_order_language_sentence_ends_in_its_verb(bench, langs):
    analyse = langs["wo"].lexicon.analyse()
    src_analyse = langs["src"].lexicon.analyse()
    verb_or_neg = {lx.PRES_SG, lx.PRES_PL, lx.PAST}
    wo_lines = bench.corpora["wo"].read_text(encoding="utf-8").splitlines()
    src_lines = bench.corpora["src"].read_text(encoding="utf-8").splitlines()
    assert all(analyse[line.split()[-1]][1] in verb_or_neg or analyse[line.split()[-1]][0] == lx.NEG
               for line in wo_lines)
    src_verb_final = sum(src_analyse[line.split()[-1]][1] in verb_or_neg for line in src_lines)
    assert src_verb_final < 0.5 * len(src_lines)


def test_xnli_files_parse_as_xnli_with_parallel_labels(bench):
    for path, size in ((bench.nli_dev, SMALL["nli_dev"]), (bench.nli_test, SMALL["nli_test"])):
        with open(path, encoding="utf-8") as f:
            assert f.readline().rstrip("\n").split("\t") == list(XNLI_COLUMNS)
        rows = _read_xnli(path)
        assert len(rows) == size * len(ALL)
        assert all(None not in row and len(row) == len(XNLI_COLUMNS) for row in rows)
        by_pair = collections.defaultdict(dict)
        for row in rows:
            by_pair[row["pairID"]][row["language"]] = row
        assert len(by_pair) == size
        for versions in by_pair.values():
            assert set(versions) == set(ALL)
            assert len({row["gold_label"] for row in versions.values()}) == 1
            assert len({row["sentence1"] for row in versions.values()}) == len(ALL)  # really translated
        counts = collections.Counter(row["gold_label"] for row in rows if row["language"] == "src")
        assert sorted(counts) == sorted(LABELS) and max(counts.values()) - min(counts.values()) <= 1


def test_xnli_target_rows_are_translations_of_the_source_rows(bench, langs):
    to_vo = {langs["src"].lexicon.forms[k]: v for k, v in langs["vo"].lexicon.forms.items()}
    rows = _read_xnli(bench.nli_test)
    src = {r["pairID"]: r for r in rows if r["language"] == "src"}
    for row in (r for r in rows if r["language"] == "vo"):
        assert row["sentence2"].split() == [to_vo[w] for w in src[row["pairID"]]["sentence2"].split()]


def test_multinli_train_has_multinli_keys_and_balanced_labels(bench, langs):
    keys = {"gold_label", "sentence1", "sentence2", "pairID", "promptID", "genre", "sentence1_binary_parse",
            "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "annotator_labels"}
    records = [json.loads(line) for line in bench.nli_train.read_text(encoding="utf-8").splitlines()]
    assert len(records) == SMALL["nli_train"]
    src_words = set(langs["src"].lexicon.words())
    for r in records:
        assert set(r) == keys
        assert r["annotator_labels"] == [r["gold_label"]]
        assert set(r["sentence1"].split()) <= src_words
        # The binary parse holds the same words, bracketed.
        assert r["sentence1_binary_parse"].replace("(", " ").replace(")", " ").split() == r["sentence1"].split()
        assert r["sentence2_parse"].startswith("(ROOT (S ")
    counts = collections.Counter(r["gold_label"] for r in records)
    assert counts == {label: SMALL["nli_train"] // 3 for label in LABELS}


def test_hypothesis_length_alone_does_not_give_the_label():
    gen = NliGenerator(Grammar(build_meanings(0)))
    examples = gen.examples(random.Random(0), 1500)
    lang = Language(BUILTIN_LANGUAGES["src"], build_lexicon("src", SCRIPTS["latin"], build_meanings(0), 0))

    def key(ex):
        return len(lang.text(ex.hypothesis).split()) - len(lang.text(ex.premise).split())

    by_diff = collections.defaultdict(collections.Counter)
    for ex in examples[:1000]:
        by_diff[key(ex)][ex.label] += 1
    held_out = examples[1000:]
    correct = sum(by_diff[key(ex)] and by_diff[key(ex)].most_common(1)[0][0] == ex.label for ex in held_out)
    assert correct / len(held_out) < 0.55


def test_labels_follow_the_edit_semantics():
    meanings = build_meanings(0)
    gen = NliGenerator(Grammar(meanings))
    for ex in gen.examples(random.Random(1), 600):
        p, h = ex.premise.clauses[0], ex.hypothesis.clauses[0]
        if ex.edit == "negate":
            assert ex.label == "contradiction" and h.neg != p.neg and h == replace(p, neg=h.neg)
        elif ex.edit == "generalize":
            changed = [(a.noun, b.noun) for a, b in ((p.subj, h.subj), (p.obj, h.obj)) if a is not None and a != b]
            assert len(changed) == 1 and meanings.hypernym[changed[0][0]] == changed[0][1]
            assert ex.label == ("neutral" if p.neg else "entailment")
        elif ex.edit == "antonym_verb":
            assert h.verb == meanings.antonym[p.verb] and ex.label == "contradiction"
        elif ex.edit == "swap_because":
            assert ex.hypothesis.clauses == ex.premise.clauses[::-1] and ex.label == "neutral"


def test_manifest_lists_languages_files_and_sizes(bench):
    manifest = json.loads(bench.manifest.read_text(encoding="utf-8"))
    assert manifest["seed"] == 7 and manifest["settings"]["languages"] == list(ALL)
    assert {k: manifest["settings"][k] for k in SMALL} == SMALL
    assert manifest["languages"]["wo"]["word_order"]["clause"] == "SOV"
    assert all(manifest["languages"][c]["vocabulary_size"] == len(language_words(7, ALL)[c]) for c in ALL)
    rel_paths = [*manifest["files"]["corpus"].values(), *manifest["files"]["lexicon"].values(),
                 *manifest["files"]["nli"].values()]
    assert all((bench.root / p).is_file() for p in rel_paths)
    assert manifest["version"]


def test_bad_language_settings_are_rejected():
    with pytest.raises(ValueError, match="did you mean 'wo'"):
        language_words(languages=("src", "woo"))
    with pytest.raises(ValueError, match="source language 'src'"):
        language_words(languages=("vo", "wo"))


def test_describe_names_every_language_and_the_files():
    text = describe()
    assert all(f"  {code} " in text for code in BUILTIN_LANGUAGES)
    assert "xnli" in text and "multinli_1.0_train.jsonl" in text


def test_a_dictionary_fraction_writes_that_share_of_each_dictionary_for_initialisers_and_keeps_the_full_one(tmp_path):
    plain = generate_benchmark(tmp_path / "plain", seed=3, languages=("src", "vo"), **SMALL)
    part = generate_benchmark(tmp_path / "part", seed=3, languages=("src", "vo"), dictionary_fraction=0.25, **SMALL)
    assert plain.train_dictionaries == {} and not (plain.root / "dictionaries" / "src-vo.train.txt").exists()
    full = plain.dictionaries["vo"].read_text(encoding="utf-8").splitlines()
    assert part.dictionaries["vo"].read_text(encoding="utf-8").splitlines() == full  # the diagnostic's, unchanged
    train = part.train_dictionaries["vo"].read_text(encoding="utf-8").splitlines()
    assert len(train) == round(0.25 * len(full)) and set(train) < set(full) and train == sorted(train)
    assert _files(plain.root).keys() == _files(part.root).keys() - {"dictionaries/src-vo.train.txt"}
    with pytest.raises(ValueError, match="dictionary_fraction must be in"):
        generate_benchmark(tmp_path / "bad", dictionary_fraction=0, **SMALL)


def test_shared_words_give_a_share_of_the_nouns_the_source_forms_in_every_new_language(tmp_path):
    bench = generate_benchmark(tmp_path / "b", seed=3, languages=("src", "vo", "na"), shared_words=0.25, **SMALL)
    lexicons = {code: set(bench.lexicons[code].read_text(encoding="utf-8").split()) for code in ("src", "vo", "na")}
    nouns = len(build_meanings(3).nouns)
    for code in ("vo", "na"):
        assert len(lexicons["src"] & lexicons[code]) == 2 * round(0.25 * nouns)  # singular and plural forms
    assert lexicons["src"] & lexicons["vo"] == lexicons["src"] & lexicons["na"]
    pairs = [line.split() for line in bench.dictionaries["vo"].read_text(encoding="utf-8").splitlines()]
    assert sum(s == t for s, t in pairs) == 2 * round(0.25 * nouns)
    corpus = bench.corpora["vo"].read_text(encoding="utf-8").split()
    assert any(word in lexicons["src"] for word in corpus)
