"""Initialisers that learn static vectors first (`dictionary`, `focus`): known answers and their cost."""
from __future__ import annotations

import collections
import random
import types

import pytest
import torch

from mmadapt.errors import MmadaptError
from mmadapt.pipeline.diagnostics.alignment import alignment_at_1, read_dictionary, token_pairs
from mmadapt.plugin_system.interfaces import InitInputs
from mmadapt.plugin_system.manager import build_plugins
from mmadapt.synth import generate_benchmark
from mmadapt_plugins.static_vector_inits import StaticVectorOptions, procrustes, sparsemax, word2vec_flops

CONFIG = types.SimpleNamespace(initializer_range=0.02)
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


class WordTokenizer:
    """A whitespace word-level tokenizer with the part of the transformers interface initialisers use."""

    unk_token_id = 3
    all_special_tokens = SPECIALS

    def __init__(self, words):
        self.vocab = {t: i for i, t in enumerate(SPECIALS)}
        self.vocab.update({w: i + len(SPECIALS) for i, w in enumerate(dict.fromkeys(words))})

    def get_vocab(self):
        return dict(self.vocab)

    def __len__(self):
        return len(self.vocab)

    def convert_tokens_to_ids(self, token):
        return self.vocab[token]

    def __call__(self, text, add_special_tokens=False):
        if isinstance(text, list):
            return {"input_ids": [self(t)["input_ids"] for t in text]}
        return {"input_ids": [self.vocab.get(w, self.unk_token_id) for w in text.split()]}


def inputs_for(root, language, dictionary, new, source, source_weight, options):
    def documents(code):
        return lambda: iter((root / f"corpus/{code}.txt").read_text(encoding="utf-8").splitlines())

    return InitInputs(new, source, source_weight, CONFIG, torch.Generator().manual_seed(0), options, language,
                      documents("src"), documents(language), list(dictionary))


@pytest.fixture(scope="module")
def synth_vo(tmp_path_factory):
    """A vocabulary-only language (`vo`: the source's grammar, other words), a tenth of its nouns shared."""
    root = tmp_path_factory.mktemp("synth") / "bench"
    small = dict(nli_train=10, nli_dev=10, nli_test=10, pawsx_train=10, pawsx_dev=10, pawsx_test=10, qa_train=10,
                 qa_dev=10, qa_test=10)
    generate_benchmark(root, languages=("src", "vo"), shared_words=0.1, **small)
    source = WordTokenizer((root / "lexicon/src.txt").read_text(encoding="utf-8").split())
    new = WordTokenizer((root / "lexicon/vo.txt").read_text(encoding="utf-8").split())
    source_weight = torch.randn(len(source), 32, generator=torch.Generator().manual_seed(1))
    pairs = read_dictionary(root / "dictionaries/src-vo.txt")
    return root, source, new, source_weight, pairs


def initialise(name, synth, dictionary, **options):
    root, source, new, source_weight, _ = synth
    init = build_plugins().embedding_inits.get(name)
    inputs = inputs_for(root, "vo", dictionary, new, source, source_weight, init.Options(**options))
    weight = init.initialise(inputs)
    return weight, inputs


@pytest.mark.slow  # vectors trained on a whole corpus
def test_a_dictionary_of_every_word_puts_each_token_of_a_vocabulary_only_language_nearest_its_translation(synth_vo):
    _, source, new, source_weight, pairs = synth_vo
    weight, _ = initialise("dictionary", synth_vo, pairs, epochs=20, k=1)
    counted = token_pairs(pairs, source, new)
    assert len(counted) == len(new) - len(SPECIALS)  # every word of the language is in the dictionary
    assert alignment_at_1(weight, source_weight, counted) >= 0.95
    # WECHSEL's default mean over 10 neighbours blurs a little, still far from random
    assert alignment_at_1(initialise("dictionary", synth_vo, pairs, epochs=20)[0], source_weight, counted) >= 0.8
    random_start, _ = initialise("random", synth_vo, pairs)
    assert alignment_at_1(random_start, source_weight, counted) < 0.05
    for token in SPECIALS:  # the special tokens start where the source's are
        assert torch.equal(weight[new.vocab[token]], source_weight[source.vocab[token]])


def test_the_dictionary_initialiser_books_its_word2vec_and_alignment_flops(synth_vo):
    root, source, new, _, pairs = synth_vo
    _, inputs = initialise("dictionary", synth_vo, pairs)
    options = StaticVectorOptions()
    tokens = {code: sum(len(line.split()) for line in (root / f"corpus/{code}.txt").read_text().splitlines())
              for code in ("src", "vo")}
    assert inputs.parts["word2vec source"] == word2vec_flops(tokens["src"], options)
    assert inputs.parts["word2vec new language"] == word2vec_flops(tokens["vo"], options)
    assert set(inputs.parts) == {"word2vec source", "word2vec new language", "Procrustes", "nearest source tokens"}
    assert inputs.flops == sum(inputs.parts.values())


def test_without_a_dictionary_the_dictionary_initialiser_says_which_key_to_set(synth_vo):
    with pytest.raises(MmadaptError, match=r"languages.vo.init_dictionary"):
        initialise("dictionary", synth_vo, [])


def test_focus_copies_shared_tokens_and_combines_only_shared_tokens_for_the_others(synth_vo):
    root, source, new, source_weight, pairs = synth_vo
    weight, inputs = initialise("focus", synth_vo, [])
    shared = sorted(set(source.vocab) & set(new.vocab) - set(SPECIALS))
    assert len(shared) >= 10  # the shared noun forms
    for token in shared + SPECIALS:
        assert torch.equal(weight[new.vocab[token]], source_weight[source.vocab[token]])
    # every other token with a vector (min_count 5) is a convex combination of the shared tokens' source rows
    counts = collections.Counter((root / "corpus/vo.txt").read_text(encoding="utf-8").split())
    anchors = source_weight[[source.vocab[t] for t in shared if counts[t] >= 5]]
    others = weight[[i for t, i in new.vocab.items() if t not in shared and counts[t] >= 5]]
    coefficients = torch.linalg.lstsq(anchors.T.double(), others.T.double()).solution
    assert torch.allclose((anchors.T.double() @ coefficients), others.T.double(), atol=1e-4)
    assert torch.allclose(coefficients.sum(dim=0), torch.ones(others.shape[0], dtype=torch.double), atol=1e-4)
    assert set(inputs.parts) == {"word2vec new language", "sparse combinations"}


def test_focus_puts_a_token_used_exactly_like_a_shared_one_on_that_ones_embedding():
    # `kal` and `dog` (shared) fill the same slot; `mor` and `sun` (shared) another; nothing else overlaps
    rng = random.Random(0)
    lines = []
    for _ in range(3000):
        animal, thing = rng.choice(["kal", "dog"]), rng.choice(["mor", "sun"])
        lines.append(f"ta {animal} piru ne {thing} lo")
    source = WordTokenizer(["dog", "sun", "the", "sees"])
    new = WordTokenizer(["ta", "kal", "piru", "ne", "mor", "lo", "dog", "sun"])
    source_weight = torch.randn(len(source), 8, generator=torch.Generator().manual_seed(0))
    init = build_plugins().embedding_inits.get("focus")
    inputs = InitInputs(new, source, source_weight, CONFIG, torch.Generator().manual_seed(0),
                        init.Options(epochs=20, min_count=1), "xx", new_documents=lambda: iter(lines))
    weight = init.initialise(inputs)
    nearest = torch.nn.functional.normalize(weight, dim=1) @ torch.nn.functional.normalize(source_weight, dim=1).T
    assert int(nearest[new.vocab["kal"]].argmax()) == source.vocab["dog"]
    assert int(nearest[new.vocab["mor"]].argmax()) == source.vocab["sun"]


def test_sparsemax_projects_onto_the_simplex_and_zeroes_the_tail():
    out = sparsemax(torch.tensor([[1.0, 0.5, -1.0], [0.0, 0.0, 0.0]]))
    assert torch.allclose(out, torch.tensor([[0.75, 0.25, 0.0], [1 / 3, 1 / 3, 1 / 3]]))


def test_procrustes_recovers_a_rotation():
    generator = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16, generator=generator))
    x = torch.randn(100, 16, generator=generator)
    assert torch.allclose(procrustes(x, x @ rotation), rotation, atol=1e-4)


def test_word2vec_flops_follow_the_documented_formula():
    # CBOW at gensim's defaults: 4 w d + 6 d (1 + negative) per token and epoch = 2000 + 3600, 5 epochs
    assert word2vec_flops(1000, StaticVectorOptions()) == 1000 * 5 * 5600
    # skip-gram: 2 w context words, each 6 d (1 + negative) + 2 d
    assert word2vec_flops(10, StaticVectorOptions(sg=1, epochs=1)) == 10 * 10 * (3600 + 200)
    assert word2vec_flops(1, StaticVectorOptions(vector_size=50)) == 5 * (1000 + 1800)
