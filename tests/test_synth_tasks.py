"""Tests for the synthetic benchmark's paraphrase (PAWS-X) and extractive QA (SQuAD/MLQA) tasks."""
from __future__ import annotations

import collections
import csv
import json
import math
import random

import pytest

from mmadapt.synth import BUILTIN_LANGUAGES, describe, generate_benchmark, language_words
from mmadapt.synth import lexicon as lx
from mmadapt.synth.grammar import Clause, Grammar, NounPhrase, Sentence
from mmadapt.synth.languages import Language
from mmadapt.synth.lexicon import SCRIPTS, build_lexicon, build_meanings
from mmadapt.synth.paraphrase import FRAMES, ParaphraseGenerator, facts, render_words
from mmadapt.synth.qa import question_clause
from mmadapt.synth.writers import PAWSX_COLUMNS

SIZES = dict(corpus_sentences=200, nli_train=30, nli_dev=9, nli_test=9, pawsx_train=200, pawsx_dev=40,
             pawsx_test=60, qa_train=120, qa_dev=30, qa_test=50)
ALL = tuple(BUILTIN_LANGUAGES)
NEW = tuple(code for code in ALL if code != "src")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return generate_benchmark(tmp_path_factory.mktemp("synth-tasks") / "bench", seed=5, languages=ALL, **SIZES)


@pytest.fixture(scope="module")
def langs():
    meanings = build_meanings(5)
    return {code: Language.build(spec, meanings, 5) for code, spec in BUILTIN_LANGUAGES.items()}


def _read_pawsx(path):
    # As PAWS-X's own loaders read it.
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _questions(path):
    """(context, qa) for every question of a SQuAD/MLQA JSON file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == "1.1"
    return [(p["context"], qa) for article in data["data"] for p in article["paragraphs"] for qa in p["qas"]]


def _pawsx_files(bench):
    return {"train": {"src": bench.pawsx_train}, "dev": bench.pawsx_dev, "test": bench.pawsx_test}


def _qa_files(bench):
    return {"train": {"src": bench.qa_train}, "dev": bench.qa_dev, "test": bench.qa_test}


# Paraphrase (PAWS-X).

def test_pawsx_files_have_the_pawsx_header_ids_and_balanced_labels(bench):
    for split, by_lang in _pawsx_files(bench).items():
        assert set(by_lang) == ({"src"} if split == "train" else set(ALL))
        for path in by_lang.values():
            with open(path, encoding="utf-8") as f:
                assert f.readline() == "\t".join(PAWSX_COLUMNS) + "\n"
            rows = _read_pawsx(path)
            assert len(rows) == SIZES[f"pawsx_{split}"]
            assert all(None not in row and len(row) == 4 for row in rows)
            assert [row["id"] for row in rows] == [str(i) for i in range(1, len(rows) + 1)]
            counts = collections.Counter(row["label"] for row in rows)
            assert set(counts) == {"0", "1"} and abs(counts["0"] - counts["1"]) <= 1


def test_pawsx_rows_are_translations_with_the_same_ids_and_labels(bench, langs):
    for split in ("dev", "test"):
        rows = {code: _read_pawsx(path) for code, path in _pawsx_files(bench)[split].items()}
        for code in NEW:
            assert [(r["id"], r["label"]) for r in rows[code]] == [(r["id"], r["label"]) for r in rows["src"]]
            assert all(r["sentence1"] != s["sentence1"] for r, s in zip(rows[code], rows["src"]))
        to_vo = {langs["src"].lexicon.forms[k]: v for k, v in langs["vo"].lexicon.forms.items()}
        for r, s in zip(rows["vo"], rows["src"]):  # same order, word for word
            assert r["sentence2"].split() == [to_vo[w] for w in s["sentence2"].split()]


def test_both_sentences_of_every_pair_hold_the_same_words_in_every_language(bench):
    for by_lang in _pawsx_files(bench).values():
        for path in by_lang.values():
            rows = _read_pawsx(path)
            for row in rows:
                assert row["sentence1"] != row["sentence2"]
                assert collections.Counter(row["sentence1"].split()) == collections.Counter(row["sentence2"].split())
            assert {row["label"] for row in rows} == {"0", "1"}  # so this holds for both labels


def test_paraphrase_labels_follow_meaning_and_frames_are_balanced_per_label():
    meanings = build_meanings(0)
    src = Language(BUILTIN_LANGUAGES["src"], build_lexicon("src", SCRIPTS["latin"], meanings, 0))
    pairs = ParaphraseGenerator(Grammar(meanings), render_words(src)).pairs(random.Random(0), 400)
    assert collections.Counter((p.label, p.frame) for p in pairs) == {(lab, f): 100 for lab in (0, 1) for f in FRAMES}
    for p in pairs:
        assert (facts(p.sentence1) == facts(p.sentence2)) == (p.label == 1)
        if p.frame == "and" and p.label == 1:
            assert p.sentence2.clauses == p.sentence1.clauses[::-1]


def test_every_paraphrase_pair_fits_a_32_token_input_in_every_language(bench):
    for by_lang in _pawsx_files(bench).values():
        for path in by_lang.values():
            for row in _read_pawsx(path):
                # <s> sentence1 </s></s> sentence2 </s>, one token per word with the quickstart's word tokenizers
                assert len(row["sentence1"].split()) + len(row["sentence2"].split()) + 4 <= 32, (path, row["id"])


def test_paraphrase_frames_are_chosen_by_the_generator_setting(tmp_path):
    meanings = build_meanings(0)
    src = Language(BUILTIN_LANGUAGES["src"], build_lexicon("src", SCRIPTS["latin"], meanings, 0))
    only_and = ParaphraseGenerator(Grammar(meanings), render_words(src), ["and"]).pairs(random.Random(0), 40)
    assert {p.frame for p in only_and} == {"and"}
    with pytest.raises(ValueError, match="paraphrase frames must be a non-empty selection of and, relative; "
                                         "got \\['because'\\]"):
        generate_benchmark(tmp_path / "b", languages=["src"], pawsx_frames=["because"])
    assert not (tmp_path / "b").exists()
    bench = generate_benchmark(tmp_path / "default", languages=["src"], **SIZES)
    manifest = json.loads(bench.manifest.read_text())
    assert manifest["settings"]["pawsx_frames"] == ["and"]
    conjunction = src.lexicon.form("AND")
    assert all(conjunction in row["sentence1"].split() for row in _read_pawsx(bench.pawsx_train))


def test_a_bag_of_words_model_cannot_predict_paraphrase_labels():
    # Naive Bayes over the first sentence's words (the second holds the same ones): the first
    # sentence is sampled before the label, so its words carry no signal.
    meanings = build_meanings(1)
    src = Language(BUILTIN_LANGUAGES["src"], build_lexicon("src", SCRIPTS["latin"], meanings, 1))
    pairs = ParaphraseGenerator(Grammar(meanings), render_words(src)).pairs(random.Random(1), 3000)
    train, test = pairs[:2000], pairs[2000:]
    counts = {0: collections.Counter(), 1: collections.Counter()}
    for p in train:
        counts[p.label].update(src.text(p.sentence1).split() + src.text(p.sentence2).split())
    totals = {lab: sum(c.values()) for lab, c in counts.items()}

    def score(p, lab):
        words = src.text(p.sentence1).split() + src.text(p.sentence2).split()
        return sum(math.log((counts[lab][w] + 1) / (totals[lab] + 1000)) for w in words)

    accuracy = sum((score(p, 1) > score(p, 0)) == (p.label == 1) for p in test) / len(test)
    assert 0.44 < accuracy < 0.56


# Extractive QA (SQuAD v1.1 / MLQA).

def test_qa_files_have_the_squad_layout_and_the_requested_sizes(bench):
    for split, by_lang in _qa_files(bench).items():
        assert set(by_lang) == ({"src"} if split == "train" else set(ALL))
        for code, path in by_lang.items():
            if split != "train":
                assert path.name == f"{split}-context-{code}-question-{code}.json" and path.parent.name == split
            data = json.loads(path.read_text(encoding="utf-8"))
            assert set(data) == {"version", "data"} and data["version"] == "1.1"
            for article in data["data"]:
                assert isinstance(article["title"], str) and article["paragraphs"]
                for paragraph in article["paragraphs"]:
                    assert set(paragraph) == {"context", "qas"} and 1 <= len(paragraph["qas"]) <= 3
                    for qa in paragraph["qas"]:
                        assert set(qa) == {"id", "question", "answers"} and len(qa["answers"]) == 1
                        assert set(qa["answers"][0]) == {"text", "answer_start"}
                        assert type(qa["answers"][0]["answer_start"]) is int
            questions = _questions(path)
            assert len(questions) == SIZES[f"qa_{split}"]
            assert len({qa["id"] for _, qa in questions}) == len(questions)


def test_every_answer_start_indexes_its_answer_exactly_in_every_language(bench):
    checked = 0
    for by_lang in _qa_files(bench).values():
        for path in by_lang.values():
            for context, qa in _questions(path):
                answer = qa["answers"][0]
                start, text = answer["answer_start"], answer["text"]
                assert context[start:start + len(text)] == text
                # A whole-word span that occurs once, so the offset is the only right one.
                assert start == 0 or context[start - 1] in " \n"
                assert start + len(text) == len(context) or context[start + len(text)] in " \n"
                words, answer_words = context.split(), text.split()
                hits = [i for i in range(len(words)) if words[i:i + len(answer_words)] == answer_words]
                assert len(hits) == 1, (context, text)
                checked += 1
    assert checked == SIZES["qa_train"] + len(ALL) * (SIZES["qa_dev"] + SIZES["qa_test"])


def test_qa_files_are_parallel_translations_across_languages(bench, langs):
    for split in ("dev", "test"):
        by_lang = {code: _questions(path) for code, path in _qa_files(bench)[split].items()}
        src = by_lang["src"]
        for code in NEW:
            assert [qa["id"] for _, qa in by_lang[code]] == [qa["id"] for _, qa in src]
            translate = {langs["src"].lexicon.forms[k]: v for k, v in langs[code].lexicon.forms.items()}
            analyse, src_analyse = langs[code].lexicon.analyse(), langs["src"].lexicon.analyse()
            for (context, qa), (src_context, src_qa) in zip(by_lang[code], src):
                # The same (lemma, inflection)s, reordered as the language's grammar says (vo keeps the order),
                # each written as one of its forms (synonyms in `syn`).
                for mine, theirs in ((context, src_context), (qa["question"], src_qa["question"]),
                                     (qa["answers"][0]["text"], src_qa["answers"][0]["text"])):
                    assert sorted(analyse[w] for w in mine.split()) == sorted(src_analyse[w] for w in theirs.split())
                    if code == "vo":
                        assert mine.split() == [translate[w] for w in theirs.split()]
                assert context.count("\n") == src_context.count("\n")


def test_each_question_holds_one_question_word_of_its_language(bench, langs):
    for code, path in bench.qa_test.items():
        wh = {langs[code].lexicon.form(w) for w in lx.QUESTION_WORDS}
        for context, qa in _questions(path):
            assert sum(w in wh for w in qa["question"].split()) == 1
            assert not wh & set(context.split())


def test_word_order_language_asks_in_place_with_its_own_order(langs):
    src, wo = langs["src"], langs["wo"]
    clause = Clause(NounPhrase("n_an0.1"), "vi0a", pp=("p0", NounPhrase("n_th1.0")))
    f = lambda lang, lemma, infl="": lang.lexicon.form(lemma, infl)  # noqa: E731
    asked = Sentence((question_clause(clause, "pp", lx.WHAT),))
    # "the dog sleeps near what" / "the dog what near sleeps"
    assert src.text(asked).split() == [f(src, lx.DET_DEF_SG), f(src, "n_an0.1", "sg"), f(src, "vi0a", "pres_sg"),
                                       f(src, "p0"), f(src, lx.WHAT)]
    assert wo.text(asked).split() == [f(wo, lx.DET_DEF_SG), f(wo, "n_an0.1", "sg"), f(wo, lx.WHAT), f(wo, "p0"),
                                      f(wo, "vi0a", "pres_sg")]
    plural_subject = Sentence((question_clause(clause.with_subj(plural=True), "subj", lx.WHO),))
    assert wo.text(plural_subject).split()[0] == f(wo, lx.WHO)
    assert wo.text(plural_subject).split()[-1] == f(wo, "vi0a", "pres_pl")  # agrees with the asked-for noun


# Shared properties.

def test_new_languages_share_no_word_with_the_source_in_the_task_files(bench):
    lexicons = {code: set(words) for code, words in language_words(seed=5, languages=ALL).items()}
    used = collections.defaultdict(set)
    for split, by_lang in _pawsx_files(bench).items():
        for code, path in by_lang.items():
            for row in _read_pawsx(path):
                used[code] |= set(row["sentence1"].split()) | set(row["sentence2"].split())
    for by_lang in _qa_files(bench).values():
        for code, path in by_lang.items():
            for context, qa in _questions(path):
                used[code] |= set(context.split()) | set(qa["question"].split())
    for code in ALL:
        assert used[code] <= lexicons[code]
        assert code == "src" or not used[code] & lexicons["src"]


def test_corpora_hold_questions_so_question_words_are_learnable(bench, langs, tmp_path):
    for code, path in bench.corpora.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        wh = {langs[code].lexicon.form(w) for w in lx.QUESTION_WORDS}
        questions = [line for line in lines if wh & set(line.split())]
        assert len(lines) == SIZES["corpus_sentences"] + len(questions)
        assert len(questions) == 10  # 5% of 200 statements
    # Every question word in every corpus: 50 questions each (each language draws its own, and 10 may
    # all ask for the same kind of noun phrase).
    bigger = generate_benchmark(tmp_path / "b", seed=5, languages=ALL, **{**SIZES, "corpus_sentences": 1000})
    for code, path in bigger.corpora.items():
        wh = {langs[code].lexicon.form(w) for w in lx.QUESTION_WORDS}
        assert set(path.read_text(encoding="utf-8").split()) >= wh, code


def test_task_sizes_do_not_change_the_nli_files_or_corpora(tmp_path):
    base = dict(SIZES, pawsx_train=20, pawsx_dev=4, pawsx_test=4, qa_train=5, qa_dev=3, qa_test=3)
    first = generate_benchmark(tmp_path / "a", seed=2, **base)
    second = generate_benchmark(tmp_path / "b", seed=2, **dict(base, pawsx_dev=8, qa_train=9))
    for rel in ("XNLI-1.0/xnli.test.tsv", "multinli_1.0/multinli_1.0_train.jsonl", "corpus/wo.txt"):
        assert (first.root / rel).read_bytes() == (second.root / rel).read_bytes()
    assert first.pawsx_train.read_bytes() == second.pawsx_train.read_bytes()
    assert first.qa_test["vo"].read_bytes() == second.qa_test["vo"].read_bytes()
    assert first.qa_train.read_bytes() != second.qa_train.read_bytes()


def test_manifest_lists_the_task_files_and_describes_the_tasks(bench):
    manifest = json.loads(bench.manifest.read_text(encoding="utf-8"))
    assert set(manifest["tasks"]) == {"nli", "paraphrase", "qa"}
    assert manifest["tasks"]["paraphrase"]["labels"] == [0, 1]
    assert all(task["train_language"] == "src" and task["description"] for task in manifest["tasks"].values())
    files = manifest["files"]
    assert files["paraphrase"]["train"] == "paws-x/train.tsv" and files["qa"]["train"] == "squad/train-v1.1.json"
    assert files["paraphrase"]["test"]["wo"] == "paws-x/wo/test_2k.tsv"
    assert files["qa"]["dev"]["vo"] == "mlqa/dev/dev-context-vo-question-vo.json"
    listed = [files[t]["train"] for t in ("paraphrase", "qa")]
    listed += [p for t in ("paraphrase", "qa") for s in ("dev", "test") for p in files[t][s].values()]
    assert all((bench.root / p).is_file() for p in listed)
    on_disk = {str(p.relative_to(bench.root)) for p in bench.root.rglob("*") if p.is_file()}
    assert {p for p in on_disk if p.startswith(("paws-x/", "squad/", "mlqa/"))} == set(listed)
    assert {k: manifest["settings"][k] for k in SIZES} == SIZES


def test_task_sizes_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="pawsx_dev=0"):
        generate_benchmark(tmp_path / "x", **dict(SIZES, pawsx_dev=0))
    assert not (tmp_path / "x").exists()


def test_describe_names_the_new_tasks_and_files():
    text = describe()
    assert "Paraphrase task" in text and "QA task" in text
    assert "paws-x/train.tsv" in text and "squad/train-v1.1.json" in text and "mlqa/" in text
