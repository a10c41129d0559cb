"""Tests for the synthetic languages' typology settings: word order, morphology, synonyms,
custom languages from settings, scripts, grammar variants and bilingual dictionaries."""
from __future__ import annotations

import collections
import itertools
import json
import random
import re
import unicodedata
from dataclasses import asdict, replace

import pytest
import sentencepiece
from omegaconf import OmegaConf

from mmadapt.data.sources import synth_file
from mmadapt.synth import BUILTIN_LANGUAGES, describe, generate_benchmark, language_words, resolve_languages
from mmadapt.synth import lexicon as lx
from mmadapt.synth.custom import ORDER_KEYS, ORDER_PHRASES, spec_from_settings
from mmadapt.synth.grammar import Clause, Grammar, GrammarWeights, NounPhrase, RelativeClause, Sentence
from mmadapt.synth.languages import Language, LanguageSpec, WordOrder
from mmadapt.synth.lexicon import SCRIPTS, Inventory, build_lexicon, build_meanings
from mmadapt.synth.variants import INVENTORY_RANGES, WEIGHT_RANGES, GrammarVariant, grammar_variant

SMALL = dict(corpus_sentences=300, nli_train=40, nli_dev=20, nli_test=20, pawsx_train=30, pawsx_dev=20,
             pawsx_test=20, qa_train=30, qa_dev=30, qa_test=20)
LANGS = ("src", "vo", "nd", "pre", "syn")
LEGACY = ("src", "vo", "wo", "na", "vso")  # the languages of generator version 4
NEW_BUILTINS = ("sov", "v1", "nd", "pre", "prewo", "syn")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return generate_benchmark(tmp_path_factory.mktemp("synth-typology") / "bench", seed=7, languages=LANGS, **SMALL)


@pytest.fixture(scope="module")
def langs():
    meanings = build_meanings(7)
    return {code: Language.build(spec, meanings, 7) for code, spec in BUILTIN_LANGUAGES.items()}


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _keys(lang, sentence):
    """The (lemma, inflection) of each word of `sentence` in `lang`, in order."""
    analyse = lang.lexicon.analyse()
    return [analyse[w] for w in lang.text(sentence).split()]


# A clause with every part: "the big dogs do not see a small ball near the tree slowly".
CLAUSE = Clause(NounPhrase("n_an0.1", plural=True, adj="adj0a"), "vt0a", NounPhrase("n_th0.2", definite=False,
                                                                                       adj="adj1b"),
                neg=True, adv="adv0", pp=("p0", NounPhrase("n_th1.0")))
# Its words in the source order: DET ADJ N NEG V DET ADJ N P DET N ADV.
SOURCE_KEYS = [(lx.DET_DEF_PL, ""), ("adj0a", ""), ("n_an0.1", lx.NOUN_PL), (lx.NEG, ""), ("vt0a", lx.PRES_PL),
               (lx.DET_INDEF_SG, ""), ("adj1b", ""), ("n_th0.2", lx.NOUN_SG), ("p0", ""), (lx.DET_DEF_SG, ""),
               ("n_th1.0", lx.NOUN_SG), ("adv0", "")]


# Word order.

def test_pure_verb_final_and_verb_initial_languages_move_only_the_verb(langs):
    s = SOURCE_KEYS
    assert _keys(langs["src"], Sentence((CLAUSE,))) == s
    # sov: DET ADJ N | DET ADJ N P DET N ADV NEG V
    assert _keys(langs["sov"], Sentence((CLAUSE,))) == s[0:3] + s[5:12] + s[3:5]
    # v1: NEG V | DET ADJ N | DET ADJ N P DET N ADV
    assert _keys(langs["v1"], Sentence((CLAUSE,))) == s[3:5] + s[0:3] + s[5:12]
    assert BUILTIN_LANGUAGES["sov"].order == WordOrder("SOV") and BUILTIN_LANGUAGES["v1"].order == WordOrder("VSO")


def test_determiner_after_noun_follows_the_noun_and_its_adjective(langs):
    s = SOURCE_KEYS
    # nd: ADJ N DET NEG V ADJ N DET P N DET ADV
    assert _keys(langs["nd"], Sentence((CLAUSE,))) == [s[1], s[2], s[0], s[3], s[4], s[6], s[7], s[5], s[8], s[10],
                                                       s[9], s[11]]
    relative = Clause(NounPhrase("n_an0.1", adj="adj0a", rel=RelativeClause("vi0a")), "vi1a")
    rel_keys = [("vi0a", lx.PRES_SG), ("vi1a", lx.PRES_SG)]
    # "big dog the that sleeps runs": the relative clause stays after the noun group
    assert _keys(langs["nd"], Sentence((relative,))) == [("adj0a", ""), ("n_an0.1", lx.NOUN_SG), (lx.DET_DEF_SG, ""),
                                                         (lx.REL, ""), rel_keys[0], rel_keys[1]]
    # with the relative clause before the noun and the adjective after it: "sleeps that dog big the runs"
    order = WordOrder(adjective_after_noun=True, relative_before_noun=True, determiner_after_noun=True)
    mirrored = Language(replace(BUILTIN_LANGUAGES["nd"], order=order), langs["nd"].lexicon)
    assert _keys(mirrored, Sentence((relative,))) == [rel_keys[0], (lx.REL, ""), ("n_an0.1", lx.NOUN_SG),
                                                      ("adj0a", ""), (lx.DET_DEF_SG, ""), rel_keys[1]]


# Morphology.

def test_prefix_morphology_glues_plural_and_verb_affixes_before_the_stem(langs):
    meanings = build_meanings(7)
    pre, vo = langs["pre"].lexicon, langs["vo"].lexicon
    plural_prefixes = set()
    for noun in meanings.nouns:
        sg, pl = pre.form(noun, lx.NOUN_SG), pre.form(noun, lx.NOUN_PL)
        assert pl.endswith(sg) and len(pl) == len(sg) + 2
        plural_prefixes.add(pl[:2])
        assert vo.form(noun, lx.NOUN_PL).startswith(vo.form(noun, lx.NOUN_SG))  # suffixing, as before
    assert len(plural_prefixes) == 1  # one plural affix for the language
    verb_prefixes = set()
    for verb in meanings.transitive + meanings.intransitive:
        forms = [pre.form(verb, i) for i in (lx.PRES_SG, lx.PRES_PL, lx.PAST)]
        assert len({f[2:] for f in forms}) == 1  # one stem, three two-letter prefixes
        verb_prefixes.add(tuple(f[:2] for f in forms))
    assert len(verb_prefixes) == 1 and len(set(next(iter(verb_prefixes)))) == 3
    # "the dogs sleep": the plural noun is one word, affix first
    words = langs["pre"].text(Sentence((Clause(NounPhrase("n_an0.1", plural=True), "vi0a"),))).split()
    assert words[1] == plural_prefixes.pop() + pre.form("n_an0.1", lx.NOUN_SG)
    assert words[2] == verb_prefixes.pop()[1] + pre.form("vi0a", lx.PRES_SG)[2:]


def test_prefix_and_suffix_languages_draw_the_same_stems(langs):
    meanings = build_meanings(7)
    script = SCRIPTS["ethiopic"]
    prefixed = build_lexicon("pre", script, meanings, 7, morphology="prefix")
    suffixed = build_lexicon("pre", script, meanings, 7)
    same = sum(prefixed.form(n, lx.NOUN_SG) == suffixed.form(n, lx.NOUN_SG) for n in meanings.nouns)
    assert same > 0.9 * len(meanings.nouns)  # only a rare clash of forms redraws a stem
    with pytest.raises(ValueError, match="morphology must be one of suffix, prefix; got 'infix'"):
        build_lexicon("pre", script, meanings, 7, morphology="infix")


# Synonyms.

def test_synonyms_give_a_share_of_content_lemmas_a_second_stem_and_leave_first_forms_alone(langs):
    meanings = build_meanings(7)
    syn = langs["syn"].lexicon
    content = meanings.nouns + meanings.transitive + meanings.intransitive + meanings.adjectives + meanings.adverbs
    with_synonym = {lemma for lemma, _ in syn.synonyms}
    assert len(with_synonym) == round(BUILTIN_LANGUAGES["syn"].synonyms * len(content)) == 47
    assert with_synonym <= set(content)
    assert syn.forms == build_lexicon("syn", SCRIPTS["ol_chiki"], meanings, 7).forms
    for lemma in with_synonym & set(meanings.nouns):
        first, second = syn.variants(lemma, lx.NOUN_SG), syn.variants(lemma, lx.NOUN_PL)
        assert len(first) == len(second) == 2
        # the same plural suffix on both stems
        assert second[0][len(first[0]):] == second[1][len(first[1]):] and second[1].startswith(first[1])
    assert len(syn.words()) == len(langs["vo"].lexicon.words()) + len(syn.synonyms)
    assert len(syn.analyse()) == len(syn.words())


def test_synonyms_are_used_at_random_but_a_text_always_reads_the_same(langs):
    syn = langs["syn"]
    grammar = Grammar(build_meanings(7))
    rng = random.Random(0)
    used = collections.defaultdict(set)
    for _ in range(400):
        sentence = grammar.sentence(rng)
        text = syn.text(sentence)
        assert text == syn.text(sentence) and syn.render(sentence).text == text
        for word in text.split():
            used[syn.lexicon.analyse()[word]].add(word)
    both = [key for key, words in used.items() if key in syn.lexicon.synonyms and len(words) == 2]
    assert len(both) > 20
    # Picks depend on the words as a multiset, so a reordering (a paraphrase pair) keeps the same ones.
    words = [syn.lexicon.form(*key) for key in both[:6]] * 2
    assert collections.Counter(syn.surface(words)) == collections.Counter(syn.surface(words[::-1]))
    assert langs["vo"].surface(words) is words


def test_qa_answers_in_a_synonym_language_are_the_spans_the_context_writes(bench, langs):
    syn = langs["syn"].lexicon
    firsts = set(syn.forms.values())
    data = json.loads(bench.qa_dev["syn"].read_text(encoding="utf-8"))
    second_forms = 0
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answer = qa["answers"][0]
                start, text = answer["answer_start"], answer["text"]
                assert paragraph["context"][start:start + len(text)] == text
                second_forms += sum(w not in firsts for w in text.split())
    assert second_forms > 0


# Bilingual dictionaries.

def _dictionary(path):
    return [tuple(line.split(" ")) for line in path.read_text(encoding="utf-8").splitlines()]


def test_dictionary_maps_every_source_form_to_the_target_forms_of_its_lemma_and_inflection(bench, langs):
    assert set(bench.dictionaries) == set(LANGS) - {"src"}
    src = langs["src"].lexicon
    for code, path in bench.dictionaries.items():
        assert path == bench.root / "dictionaries" / f"src-{code}.txt"
        pairs = _dictionary(path)
        assert pairs == sorted(set(pairs)) and all(len(p) == 2 for p in pairs)
        target = langs[code].lexicon
        analyse, src_analyse = target.analyse(), src.analyse()
        assert all(src_analyse[s] == analyse[t] for s, t in pairs)
        assert {s for s, _ in pairs} == set(src.words())
        assert {t for _, t in pairs} == set(target.words())  # synonyms: one line per target form
        assert len(pairs) == len(target.words())
    syn_targets = collections.Counter(s for s, _ in _dictionary(bench.dictionaries["syn"]))
    assert sum(n == 2 for n in syn_targets.values()) == len(langs["syn"].lexicon.synonyms)


def test_a_sentence_translated_word_by_word_through_the_vo_dictionary_is_its_vo_rendering(bench, langs):
    to_vo = dict(_dictionary(bench.dictionaries["vo"]))
    grammar = Grammar(build_meanings(7))
    rng = random.Random(3)
    for _ in range(50):
        sentence = grammar.sentence(rng)
        assert " ".join(to_vo[w] for w in langs["src"].text(sentence).split()) == langs["vo"].text(sentence)


def test_manifest_records_each_languages_typology_the_grammar_and_the_dictionaries(bench):
    manifest = json.loads(bench.manifest.read_text(encoding="utf-8"))
    assert manifest["version"] == "5"
    assert manifest["grammar"] == {"variant": 0, "inventory": asdict(Inventory()), "weights": asdict(GrammarWeights())}
    assert manifest["settings"]["grammar_variant"] == 0
    for code in LANGS:
        entry, spec = manifest["languages"][code], BUILTIN_LANGUAGES[code]
        assert entry["word_order"] == asdict(spec.order)
        assert (entry["morphology"], entry["synonyms"]) == (spec.morphology, spec.synonyms)
    assert manifest["languages"]["nd"]["word_order"]["determiner_after_noun"] is True
    assert manifest["languages"]["pre"]["morphology"] == "prefix" and manifest["languages"]["syn"]["synonyms"] == 0.3
    assert manifest["files"]["dictionary"] == {code: f"dictionaries/src-{code}.txt" for code in LANGS if code != "src"}


# Grammar variants.

def test_grammar_variants_differ_from_the_source_grammar_within_their_ranges_and_are_reproducible():
    assert grammar_variant(0, 0) == grammar_variant(0, None) == GrammarVariant()
    assert Inventory() == Inventory(*(getattr(lx, name.upper()) for name in INVENTORY_RANGES))
    drawn = {k: grammar_variant(0, k) for k in range(1, 6)}
    assert drawn[1] == grammar_variant(0, 1) and grammar_variant(1, 1) != drawn[1]
    assert len({(v.inventory, v.weights) for v in [GrammarVariant(), *drawn.values()]}) == 6
    for v in [GrammarVariant(), *drawn.values()]:  # the source grammar lies inside the ranges too
        assert all(lo <= getattr(v.inventory, name) <= hi for name, (lo, hi) in INVENTORY_RANGES.items())
        assert all(lo <= getattr(v.weights, name) <= hi for name, (lo, hi) in WEIGHT_RANGES.items())
    assert set(WEIGHT_RANGES) == set(asdict(GrammarWeights()))
    for bad in (-1, "1", True, 1.5):
        with pytest.raises(ValueError, match="grammar_variant must be a non-negative integer"):
            grammar_variant(0, bad)


def test_a_grammar_variant_writes_other_files_the_same_each_time(tmp_path):
    first = generate_benchmark(tmp_path / "a", seed=0, languages=("src", "wo"), grammar_variant=2, **SMALL)
    again = generate_benchmark(tmp_path / "b", seed=0, languages=("src", "wo"), grammar_variant=2, **SMALL)
    source = generate_benchmark(tmp_path / "c", seed=0, languages=("src", "wo"), **SMALL)
    files, source_files = _files(first.root), _files(source.root)
    assert files == _files(again.root)
    for rel in ("corpus/src.txt", "corpus/wo.txt", "XNLI-1.0/xnli.dev.tsv", "paws-x/wo/dev_2k.tsv",
                "squad/train-v1.1.json", "lexicon/src.txt"):
        assert files[rel] != source_files[rel], rel
    manifest = json.loads(first.manifest.read_text(encoding="utf-8"))
    variant = grammar_variant(0, 2)
    assert manifest["grammar"] == variant.as_dict() and manifest["settings"]["grammar_variant"] == 2
    inv = variant.inventory
    nouns = (inv.animate_classes + inv.thing_classes) * (1 + inv.hyponyms_per_class)
    verbs = 2 * (inv.transitive_pairs + inv.intransitive_pairs)
    words = language_words(0, ("src",), grammar_variant=2)["src"]
    assert len(words) == (2 * nouns + 3 * verbs + 2 * inv.adjective_pairs + inv.adverbs + inv.prepositions
                          + len(lx.FUNCTION_WORDS) + len(lx.QUESTION_WORDS))
    assert first.lexicons["src"].read_text(encoding="utf-8").splitlines() == words


# Custom languages from settings.

def test_custom_language_settings_build_the_language_they_describe(tmp_path):
    settings = {"code": "x1", "script": "nko", "order": {"clause": "sov", "adjective_after_noun": True},
                "morphology": "prefix", "synonyms": 0.25}
    spec = spec_from_settings(settings)
    assert spec == LanguageSpec("x1", spec.description, "nko", WordOrder("SOV", adjective_after_noun=True),
                                "prefix", 0.25)
    assert spec.description == ("custom: nko-script words; SOV, adjective after noun; prefixing morphology "
                                "(affixes before the stem); 25% of the content words with a synonym")
    assert spec_from_settings({**settings, "description": "mine"}).description == "mine"
    assert set(ORDER_PHRASES) == set(ORDER_KEYS) - {"clause"}
    # From a recipe's data.synth, as the `synth:` sources pass it on.
    synth = OmegaConf.to_container(OmegaConf.create({"seed": 3, "languages": ["src", settings],
                                                     "grammar_variant": 1, **SMALL}))
    corpus = synth_file("synth:x1", synth, tmp_path / "cache")
    dictionary = synth_file("synth:dictionaries/src-x1.txt", synth, tmp_path / "cache")
    direct = generate_benchmark(tmp_path / "direct", seed=3, languages=["src", spec], grammar_variant=1, **SMALL)
    assert corpus.read_bytes() == direct.corpora["x1"].read_bytes()
    assert dictionary.read_bytes() == direct.dictionaries["x1"].read_bytes()
    manifest = json.loads(direct.manifest.read_text(encoding="utf-8"))
    assert manifest["languages"]["x1"]["word_order"] == asdict(spec.order)
    assert (manifest["languages"]["x1"]["morphology"], manifest["languages"]["x1"]["synonyms"]) == ("prefix", 0.25)


ALLOWED = "allowed keys: code, script, order, morphology, synonyms, description"


@pytest.mark.parametrize("settings, message", [
    ({"code": "x1", "script": "nko", "scrpt": "nko"},
     f"synthetic language 'x1': unknown key 'scrpt' (did you mean 'script'?); {ALLOWED}"),
    ({"code": "x1", "script": "nko", "order": {"adjective_after": True}},
     "synthetic language 'x1', order: unknown key 'adjective_after' (did you mean 'adjective_after_noun'?); "
     "allowed keys: clause, adjective_after_noun, postpositions, negation_after_verb, relative_before_noun, "
     "cause_first, determiner_after_noun"),
    ({"code": "x1", "script": "nko", "order": {"clause": "OVS"}}, "'clause' must be one of SVO, SOV, VSO; got 'OVS'"),
    ({"code": "x1", "script": "nko", "order": {"postpositions": "yes"}}, "'postpositions' must be true or false"),
    ({"code": "x1", "script": "nko", "order": ["SOV"]}, "order: expected a mapping of clause, adjective_after_noun"),
    ({"code": "x1", "script": "nko", "morphology": "infix"}, "morphology must be one of suffix, prefix; got 'infix'"),
    ({"code": "x1", "script": "nko", "synonyms": 1.5}, "synonyms must be a share between 0 and 1; got 1.5"),
    ({"code": "x1", "script": "klingon"}, "'script' must be one of latin, greek, cyrillic"),
    ({"code": "vo", "script": "nko"}, "'vo' is a built-in language"),
    ({"code": "X 1", "script": "nko"}, "'code' must be lower-case letters, digits and '_'"),
    ({"script": "nko"}, "synthetic language settings: 'code' must be"),
])
def test_bad_custom_language_settings_raise_naming_the_key_and_what_is_allowed(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_languages(["src", settings])


def test_a_custom_language_needs_a_script_no_other_language_uses():
    with pytest.raises(ValueError, match="each language needs its own script"):
        resolve_languages(["src", "sov", {"code": "x1", "script": "hebrew"}])


# Scripts.

def test_every_script_is_nfkc_stable_letters_and_no_two_scripts_share_a_letter():
    normalizer = sentencepiece.SentencePieceNormalizer(rule_name="nmt_nfkc", add_dummy_prefix=False,
                                                       escape_whitespaces=False)
    letters = {name: set(script.consonants + script.vowels) for name, script in SCRIPTS.items()}
    for name, script in SCRIPTS.items():
        assert not set(script.consonants) & set(script.vowels), name
        for ch in letters[name]:
            assert unicodedata.category(ch).startswith("L") and unicodedata.combining(ch) == 0, (name, ch)
            assert unicodedata.normalize("NFKC", ch) == ch == unicodedata.normalize("NFD", ch) == ch.lower(), (name, ch)
        # Two letters never compose or change either: words survive normalisation whole.
        pairs = " ".join(a + b for a, b in itertools.product(sorted(letters[name]), repeat=2))
        assert unicodedata.normalize("NFKC", pairs) == pairs and normalizer.normalize(pairs) == pairs, name
    for a, b in itertools.combinations(SCRIPTS, 2):
        assert not letters[a] & letters[b], (a, b)
    assert len({spec.script for spec in BUILTIN_LANGUAGES.values()}) == len(BUILTIN_LANGUAGES)
    assert len(SCRIPTS) >= len(BUILTIN_LANGUAGES) + 3  # room for custom languages beside all built-ins


# Defaults keep the files.

def test_new_options_left_at_their_defaults_give_the_bytes_of_the_default_call(tmp_path):
    default = generate_benchmark(tmp_path / "default", seed=0, languages=LEGACY, **SMALL)
    explicit = [replace(spec, order=replace(spec.order, determiner_after_noun=False), morphology="suffix",
                        synonyms=0.0) for spec in (BUILTIN_LANGUAGES[code] for code in LEGACY)]
    spelled_out = generate_benchmark(tmp_path / "explicit", seed=0, languages=explicit, grammar_variant=0, **SMALL)
    none = generate_benchmark(tmp_path / "none", seed=0, languages=LEGACY, grammar_variant=None, **SMALL)
    files = _files(default.root)
    assert files == _files(spelled_out.root) == _files(none.root)
    meanings = build_meanings(0)
    for code in LEGACY:
        spec = BUILTIN_LANGUAGES[code]
        assert build_lexicon(code, SCRIPTS[spec.script], meanings, 0, morphology="suffix", synonyms=0.0).forms == \
            build_lexicon(code, SCRIPTS[spec.script], meanings, 0).forms


def test_describe_lists_the_new_builtin_languages_and_settings():
    text = describe()
    assert all(f"  {code} " in text for code in NEW_BUILTINS)
    assert "grammar_variant" in text and "dictionaries/src-<lang>.txt" in text and "ol_chiki" in text
