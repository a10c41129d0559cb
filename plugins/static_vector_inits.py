"""Initialisers that learn static token vectors from the corpora first: `dictionary` and `focus`.

`dictionary` (after WECHSEL, Minixhofer et al., NAACL 2022): word2vec vectors for the source
and the new language's tokens, each trained on its corpus as the model's tokenizer cuts it;
the source vectors rotated onto the new ones by orthogonal Procrustes over the pairs of a
bilingual dictionary; each new token then starts at the similarity-weighted mean of the
model's embeddings of its `k` nearest source tokens (softmax of cosine / `temperature`; the
defaults, 10 and 0.1, are WECHSEL's).

`focus` (after FOCUS, Dobler and de Melo, EMNLP 2023): tokens in both vocabularies keep their
source embedding; every other new token is a sparsemax-weighted combination of the shared
tokens' source embeddings, weighted by cosine similarity in word2vec vectors trained on the
new language's tokenised corpus alone (no dictionary).

Training on the tokenizer's pieces, not on words, gives every token its own vector, whole
word or subword (FOCUS's "token-level" auxiliary embeddings); a dictionary word cut into
several pieces is the mean of its pieces' vectors. Tokens without a vector (too rare) keep a
random start. gensim's Word2Vec trains the vectors with its defaults (CBOW, 100 dimensions,
window 5, 5 negatives, 5 epochs, min_count 5) on one worker thread, so the same seed gives the
same vectors. Each booking to `InitInputs.spend` is an analytic FLOP count (`word2vec_flops`).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable

import torch

from mmadapt.api import EmbeddingInit, InitInputs, MmadaptError, hookimpl
from mmadapt_plugins.embedding_inits import RandomInit

#: documents tokenised per call of the tokenizer (fast tokenizers parallelise over a batch)
TOKENIZE_BATCH = 1000


@dataclass
class StaticVectorOptions:
    """gensim Word2Vec settings (its defaults), shared by `dictionary` and `focus`."""

    vector_size: int = 100
    window: int = 5
    min_count: int = 5
    negative: int = 5
    epochs: int = 5
    #: 1: skip-gram, 0: CBOW (gensim's default)
    sg: int = 0
    #: documents of each corpus to train on (0: all of them)
    max_documents: int = 0
    #: Word2Vec worker threads; 1 keeps the vectors reproducible for a seed
    workers: int = 1


def tokenised(documents: Iterable[str], tokenizer: Any, limit: int) -> list[list[str]]:
    """Each document as the ids of its tokens, as strings (the 'words' word2vec learns vectors for)."""
    docs = itertools.islice(documents, limit or None)
    out: list[list[str]] = []
    while batch := list(itertools.islice(docs, TOKENIZE_BATCH)):
        out += [[str(i) for i in ids] for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]]
    return out


def word2vec_flops(tokens: int, options: StaticVectorOptions) -> float:
    """Analytic FLOPs of word2vec training with negative sampling on `tokens` corpus tokens, an upper bound.

    Per token and epoch, CBOW sums the 2 x window context vectors (2 w d), scores the target and
    each negative (2 d each), accumulates the hidden gradient (2 d each), updates each output
    vector (2 d each) and adds the gradient back to every context vector (2 w d): 4 w d + 6 d (1 +
    negative). Skip-gram does the 6 d (1 + negative) + 2 d per context word. Every token is counted at
    the full window (gensim shrinks it at random, to (window + 1) / 2 on average) and none is
    dropped by frequent-word subsampling, so the true count is lower.
    """
    d, w, pairs = options.vector_size, options.window, 1 + options.negative
    per_token = 2 * w * (6 * d * pairs + 2 * d) if options.sg else 4 * w * d + 6 * d * pairs
    return float(tokens) * options.epochs * per_token


def token_vectors(documents: Iterable[str], tokenizer: Any, options: StaticVectorOptions, seed: int,
                  inputs: InitInputs, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """word2vec vectors of a tokenizer's tokens trained on `documents`: (token ids, [n, vector_size])."""
    from gensim.models import Word2Vec

    sentences = tokenised(documents, tokenizer, options.max_documents)
    tokens = sum(len(s) for s in sentences)
    if not tokens:
        raise MmadaptError(f"initialiser: the {what} corpus is empty; static vectors need its text")
    model = Word2Vec(sentences, vector_size=options.vector_size, window=options.window, min_count=options.min_count,
                     negative=options.negative, epochs=options.epochs, sg=options.sg, workers=options.workers,
                     seed=seed)
    inputs.spend(word2vec_flops(tokens, options), f"word2vec {what}")
    keys = list(model.wv.index_to_key)
    return torch.tensor([int(k) for k in keys]), torch.from_numpy(model.wv.vectors[[model.wv.key_to_index[k]
                                                                                   for k in keys]]).float()


def word_vector(word: str, tokenizer: Any, index: dict[int, int], vectors: torch.Tensor) -> torch.Tensor | None:
    """The mean vector of `word`'s tokens (None when a token has no vector)."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if not ids or any(i not in index for i in ids):
        return None
    return vectors[[index[i] for i in ids]].mean(dim=0)


def procrustes(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The orthogonal W minimising |source W - target| (Schoenemann: U V^T of the SVD of source^T target)."""
    u, _, vh = torch.linalg.svd(source.double().T @ target.double())
    return (u @ vh).float()


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[len(a), len(b)] cosine similarities."""
    return torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T


def sparsemax(scores: torch.Tensor) -> torch.Tensor:
    """Sparsemax over the last dimension (Martins and Astudillo, 2016): a projection onto the simplex."""
    z, _ = torch.sort(scores, dim=-1, descending=True)
    k = torch.arange(1, scores.shape[-1] + 1, dtype=scores.dtype)
    cumsum = z.cumsum(dim=-1)
    support = (1 + k * z) > cumsum
    k_z = support.sum(dim=-1, keepdim=True)
    tau = (cumsum.gather(-1, k_z - 1) - 1) / k_z
    return torch.clamp(scores - tau, min=0)


def _seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


def _copy_special_tokens(weight: torch.Tensor, new_tokenizer: Any, source_tokenizer: Any,
                         source_weight: torch.Tensor) -> None:
    # the special tokens (<s>, </s>, <pad>, <mask>, ...) play the same part in both languages
    source_vocab = source_tokenizer.get_vocab()
    for token in new_tokenizer.all_special_tokens:
        new_id, old_id = new_tokenizer.convert_tokens_to_ids(token), source_vocab.get(token)
        if old_id is not None and old_id < source_weight.shape[0]:
            weight[new_id] = source_weight[old_id].float()


class DictionaryInit(EmbeddingInit):
    """WECHSEL-style: static vectors aligned through a bilingual dictionary, k nearest source tokens."""

    @dataclass
    class Options(StaticVectorOptions):
        #: source tokens each new token combines (WECHSEL's default)
        k: int = 10
        #: softmax temperature over their cosine similarities (WECHSEL's default)
        temperature: float = 0.1

    description = ("static vectors of both languages aligned by Procrustes on the bilingual dictionary; each token "
                   "the similarity-weighted mean of its k nearest source tokens (WECHSEL)")
    reads_corpora = True

    def initialise(self, inputs: InitInputs) -> torch.Tensor:
        new_tokenizer, source_tokenizer, source_weight = inputs.new_tokenizer, inputs.source_tokenizer, inputs.source_weight
        generator, options = inputs.generator, inputs.options
        if not inputs.dictionary:
            raise MmadaptError(f"adapt.init: 'dictionary' needs a bilingual dictionary for {inputs.language!r}: set "
                               f"languages.{inputs.language}.init_dictionary (or .dictionary) to a file of "
                               "'source_word new_word' pairs")
        weight = RandomInit().initialise(inputs)
        seed = _seed(generator)
        src_ids, src_vecs = token_vectors(inputs.source_documents(), source_tokenizer, options, seed, inputs, "source")
        new_ids, new_vecs = token_vectors(inputs.new_documents(), new_tokenizer, options, seed, inputs, "new language")
        rotation = self._alignment(inputs, source_tokenizer, new_tokenizer, (src_ids, src_vecs), (new_ids, new_vecs))
        keep = src_ids < source_weight.shape[0]
        src_ids, aligned = src_ids[keep], src_vecs[keep] @ rotation
        k = min(options.k, len(src_ids))
        sims, nearest = cosine(new_vecs, aligned).topk(k, dim=1)
        weights = torch.softmax(sims / options.temperature, dim=1)
        rows = (weights.unsqueeze(-1) * source_weight.float()[src_ids[nearest]]).sum(dim=1)
        inside = new_ids < weight.shape[0]
        weight[new_ids[inside]] = rows[inside]
        d, h = src_vecs.shape[1], source_weight.shape[1]
        inputs.spend(2 * len(new_ids) * len(src_ids) * d + 2 * len(new_ids) * k * h, "nearest source tokens")
        _copy_special_tokens(weight, new_tokenizer, source_tokenizer, source_weight)
        return weight

    @staticmethod
    def _alignment(inputs: InitInputs, source_tokenizer: Any, new_tokenizer: Any, source: tuple, new: tuple
                   ) -> torch.Tensor:
        """The Procrustes rotation of the source vectors onto the new ones, over the dictionary's pairs."""
        src_index = {int(i): n for n, i in enumerate(source[0])}
        new_index = {int(i): n for n, i in enumerate(new[0])}
        pairs = []
        for source_word, new_word in inputs.dictionary:
            s = word_vector(source_word, source_tokenizer, src_index, source[1])
            t = word_vector(new_word, new_tokenizer, new_index, new[1])
            if s is not None and t is not None:
                pairs.append((s, t))
        if len(pairs) < 2:
            raise MmadaptError(f"adapt.init: only {len(pairs)} of the {len(inputs.dictionary)} dictionary pairs for "
                               f"{inputs.language!r} have static vectors on both sides; the dictionary's words must "
                               "occur in the corpora (at least min_count times)")
        x, y = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        d = x.shape[1]
        # x^T y, the SVD of a d x d matrix with both factors (about 21 d^3, Golub and Van Loan), then U V^T
        inputs.spend(2 * len(pairs) * d * d + 21 * d ** 3 + 2 * d ** 3, "Procrustes")
        return procrustes(x, y)


class FocusInit(EmbeddingInit):
    """FOCUS-style: shared tokens copied, the others sparse combinations of the shared ones."""

    Options = StaticVectorOptions
    description = ("tokens in both vocabularies copied; each other token a sparsemax-weighted combination of the "
                   "shared tokens, by similarity of new-language static vectors (FOCUS)")
    reads_corpora = True

    def initialise(self, inputs: InitInputs) -> torch.Tensor:
        new_tokenizer, source_tokenizer, source_weight = inputs.new_tokenizer, inputs.source_tokenizer, inputs.source_weight
        generator, options = inputs.generator, inputs.options
        weight = RandomInit().initialise(inputs)
        source_vocab = source_tokenizer.get_vocab()
        shared = {new_id: source_vocab[token] for token, new_id in new_tokenizer.get_vocab().items()
                  if source_vocab.get(token, source_weight.shape[0]) < source_weight.shape[0]
                  and new_id < weight.shape[0]}
        for new_id, old_id in shared.items():
            weight[new_id] = source_weight[old_id].float()
        new_ids, vecs = token_vectors(inputs.new_documents(), new_tokenizer, options, _seed(generator), inputs,
                                      "new language")
        row = {int(i): n for n, i in enumerate(new_ids)}
        anchors = [i for i in shared if i in row]  # shared tokens seen in the corpus (special tokens are not)
        others = [int(i) for i in new_ids if int(i) not in shared and int(i) < weight.shape[0]]
        if not anchors or not others:
            return weight
        sims = cosine(vecs[[row[i] for i in others]], vecs[[row[i] for i in anchors]])
        combination = sparsemax(sims)
        weight[others] = combination @ source_weight.float()[[shared[i] for i in anchors]]
        d, h = vecs.shape[1], source_weight.shape[1]
        inputs.spend(2 * len(others) * len(anchors) * (d + h), "sparse combinations")
        return weight


@hookimpl
def mmadapt_register_embedding_inits(registry):
    registry.add("dictionary", DictionaryInit())
    registry.add("focus", FocusInit())
