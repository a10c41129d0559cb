"""The `clausal` grammar family beside the default `basic` one (`mmadapt.synth.clausal`)."""
import collections
import hashlib
import json

import pytest

from mmadapt.synth import generate_benchmark
from mmadapt.synth.clausal import ClausalGrammar, ClausalNliGenerator, family_seed
from mmadapt.synth.grammar import Clause, NounPhrase, RelativeClause, Sentence
from mmadapt.synth.languages import BUILTIN_LANGUAGES, Language
from mmadapt.synth.nli import NliGenerator

SMALL = dict(corpus_sentences=200, nli_train=60, nli_dev=30, nli_test=30, pawsx_train=30, pawsx_dev=15,
             pawsx_test=15, qa_train=20, qa_dev=10, qa_test=10)
# sha256 over (relative path, bytes) of every file, recorded from the generator before the family key existed
BASIC_DIGEST = "524cff79d8e315019381d5a9b8e8c2012c78eccaf20eff5d8a5568a06c0333d4"


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("extra", [{}, {"family": "basic"}])
def test_default_family_output_is_byte_identical_to_before(tmp_path, extra):
    generate_benchmark(tmp_path / "b", seed=3, **SMALL, **extra)
    assert _digest(tmp_path / "b") == BASIC_DIGEST


def test_clausal_family_is_deterministic_per_seed(tmp_path):
    generate_benchmark(tmp_path / "a", seed=5, family="clausal", **SMALL)
    generate_benchmark(tmp_path / "b", seed=5, family="clausal", **SMALL)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["settings"]["family"] == "clausal"


def test_clausal_lexicon_differs_by_seed_and_from_basic(tmp_path):
    words = {}
    for name, kw in {"c1": dict(seed=1, family="clausal"), "c2": dict(seed=2, family="clausal"),
                     "b1": dict(seed=1)}.items():
        bench = generate_benchmark(tmp_path / name, **kw, **SMALL)
        words[name] = set(bench.lexicons["src"].read_text().split())
    assert len(words["c1"] & words["c2"]) < 0.2 * len(words["c1"])
    assert len(words["c1"] & words["b1"]) < 0.2 * len(words["c1"])


def test_clausal_sentences_are_longer_and_more_varied_than_basic(tmp_path):
    lengths = {}
    for family in ("basic", "clausal"):
        bench = generate_benchmark(tmp_path / family, seed=0, family=family, **SMALL)
        lengths[family] = [len(line.split()) for line in bench.corpora["src"].read_text().splitlines()]
    mean = {f: sum(v) / len(v) for f, v in lengths.items()}
    assert mean["clausal"] > 1.4 * mean["basic"]
    assert max(lengths["clausal"]) > max(lengths["basic"])


def _lang(code):
    from mmadapt.synth.lexicon import build_meanings
    from mmadapt.synth.clausal import CLAUSAL_INVENTORY
    seed = family_seed(0, "clausal")
    return Language.build(BUILTIN_LANGUAGES[code], build_meanings(seed, CLAUSAL_INVENTORY), seed)


def _tags(lang, sentence):
    """(tag, word) leaves of the rendered tree."""
    out = []

    def walk(node):
        label, content = node
        if isinstance(content, str):
            out.append(label)
        else:
            for child in content:
                walk(child)
    walk(lang.sentence_node(sentence))
    return out


# "the big dog that does not see the cat eats the ball"
SENTENCE = Sentence((Clause(
    subj=NounPhrase("n_an0.1", adj="adj0a", rel=RelativeClause("vt0a", NounPhrase("n_an1.2"), neg=True)),
    verb="vt1a", obj=NounPhrase("n_th0.1")),))


def test_variants_transform_clausal_sentences():
    assert _tags(_lang("src"), SENTENCE) == ["DT", "JJ", "NN", "WDT", "RB", "VBZ", "DT", "NN", "VBZ", "DT", "NN"]
    assert _tags(_lang("na"), SENTENCE)[:3] == ["DT", "NN", "JJ"]
    assert _tags(_lang("nd"), SENTENCE)[:3] == ["JJ", "NN", "DT"]
    sov = _tags(_lang("sov"), SENTENCE)
    assert sov[-3:] == ["DT", "NN", "VBZ"]  # object, then the main verb last
    assert sov[3:8] == ["WDT", "DT", "NN", "RB", "VBZ"]  # object before the negated verb in the relative clause
    assert _lang("vo").text(SENTENCE).split() != _lang("src").text(SENTENCE).split()
    assert len(_lang("vo").text(SENTENCE).split()) == len(_lang("src").text(SENTENCE).split())


@pytest.mark.parametrize("hard", [0.0, 0.6, 1.0])
def test_clausal_nli_labels_are_balanced_and_follow_the_structure(hard):
    import random
    from mmadapt.synth.lexicon import build_meanings
    from mmadapt.synth.clausal import CLAUSAL_INVENTORY, CLAUSAL_WEIGHTS
    grammar = ClausalGrammar(build_meanings(7, CLAUSAL_INVENTORY), CLAUSAL_WEIGHTS)
    examples = ClausalNliGenerator(grammar, hard).examples(random.Random(0), 300)
    assert collections.Counter(e.label for e in examples) == {"entailment": 100, "neutral": 100,
                                                              "contradiction": 100}
    structural = [e for e in examples if e.edit.startswith("rel_")]
    assert abs(len(structural) / 300 - hard) < 0.1
    for e in structural:
        p, h = e.premise.clauses[0], e.hypothesis.clauses[0]
        rel = p.subj.rel
        if e.edit == "rel_assert":
            assert (h.verb, h.obj, h.neg) == (rel.verb, rel.obj, rel.neg) and h.subj.noun == p.subj.noun
        elif e.edit == "rel_deny":
            assert (h.verb, h.obj, h.neg) == (rel.verb, rel.obj, not rel.neg)
        else:
            assert h.subj.noun == rel.obj.noun != p.subj.noun and h.verb == p.verb


def test_unknown_family_and_difficulty_fail_with_one_line(tmp_path):
    with pytest.raises(ValueError, match="unknown grammar family 'clausl'.*did you mean 'clausal'"):
        generate_benchmark(tmp_path / "x", family="clausl", **SMALL)
    with pytest.raises(ValueError, match="nli_difficulty must be one of easy, hard"):
        generate_benchmark(tmp_path / "x", family="clausal", nli_difficulty="medium", **SMALL)


def test_clausal_dictionaries_cover_every_word(tmp_path):
    bench = generate_benchmark(tmp_path / "b", seed=0, family="clausal", languages=("src", "vo", "sov"), **SMALL)
    src_words = set(bench.lexicons["src"].read_text().split())
    for code in ("vo", "sov"):
        pairs = [line.split() for line in bench.dictionaries[code].read_text().splitlines()]
        assert {s for s, _ in pairs} == src_words
        assert {t for _, t in pairs} == set(bench.lexicons[code].read_text().split())


def test_a_qa_answer_is_never_repeated_inside_a_nested_relative_clause():
    from mmadapt.synth.qa import _noun_keys, _verb_list

    inner = NounPhrase("n_an6.0", plural=True, rel=None)
    nested = NounPhrase("n_an6.0", rel=RelativeClause("vt13b", inner))
    clause = Clause(subj=NounPhrase("n_an6.0"), verb="vt13b",
                    obj=NounPhrase("n_an2.4", plural=True, rel=RelativeClause("vt9a", nested)))
    # the subject's noun form occurs again two relative clauses down, and so does the main verb
    assert _noun_keys(clause).count(("n_an6.0", False)) == 2
    assert _verb_list(clause) == ["vt13b", "vt9a", "vt13b"]


def test_the_clausal_family_writes_its_qa_files_for_a_seed_whose_contexts_nest_an_answer(tmp_path):
    # seed 5's QA training contexts hold a clause whose answer recurs inside a nested relative clause
    generate_benchmark(tmp_path / "b", seed=5, family="clausal", **{**SMALL, "qa_train": 3000})
    squad = json.loads((tmp_path / "b" / "squad" / "train-v1.1.json").read_text())
    answers = [qa for article in squad["data"] for p in article["paragraphs"] for qa in p["qas"]]
    assert len(answers) == 3000
