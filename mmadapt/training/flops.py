"""Analytic FLOPs of BERT-style masked language models: forward, and training per stage.

Only matrix products are counted, a multiply-add as 2 FLOPs (what
`torch.utils.flop_counter.FlopCounterMode` counts, and what dominates the time). Embedding
lookups and their scatter-add gradient, biases, LayerNorms, softmax, GELU and the loss are
left out: each is O(h) per token against the O(h²) of the matrices.

Per token, with h = hidden size, i = intermediate size, V = vocabulary size, s = sequence
length and a weight matrix of a x b costing 2·a·b forward::

    layer forward     2·P + 4·s·h        P = 4·h² + 2·h·i  (Q, K, V, output, FFN in, FFN out)
                                          4·s·h: scores Q·Kᵀ and the weighted sum A·V
    head forward      f·(2·h² + 2·h·V)   dense transform + decoder onto the vocabulary;
                                          f = 1, or the masked fraction when logits are computed
                                          only at masked positions

The backward of a matrix product computes up to two products of the forward's size: the
gradient of the weight (only if that weight trains) and the gradient of its input (only if
something below it trains: autograd skips the rest). Hence, per layer on the backward path::

    weights train, grad needed below   2·P + 2·P + 8·s·h   (= 2x forward)
    weights train, nothing below       2·P + (2·P - 6·h²) + 8·s·h   (no input grad of Q, K, V)
    frozen, grad needed below          2·P + 8·s·h         (activation gradients only: ~1x forward)
    frozen, nothing below              0                   (backward stops above it)

The attention term always doubles (8·s·h): both its operands are activations. For a head
reading after layer a::

    decoder weight grad  f·2·h·V   if the word embeddings train (the decoder is tied to them)
    decoder input grad   f·2·h·V   if the head's transform trains or anything below it trains
    dense weight grad    f·2·h²    if the head's transform trains
    dense input grad     f·2·h²    if anything below the head trains

Several heads (MiniJoint: one on top, one after layer k) share one forward and one backward
through the layers below them. A whole training step is `FlopCount.total` x tokens per step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


# ---------------------------------------------------------------------------------------------
# Forward-only counts (mini-model manifests)
# ---------------------------------------------------------------------------------------------

def mlm_forward_flops_per_token(num_layers: int, hidden_size: int, intermediate_size: int, vocab_size: int,
                                seq_len: int) -> int:
    """Forward FLOPs per token of embeddings -> `num_layers` transformer layers -> MLM head.

    A multiply-add counts as 2 FLOPs, so a matrix with P parameters costs 2·P per token::

        per layer = 2 · (4·h·h + 2·h·i)     # Q, K, V and output projections, the two FFN matrices
                  + 2 · 2 · seq · h         # scores Q·Kᵀ and the weighted sum A·V (seq keys each)
        LM head   = 2 · h·h                 # the head's dense transform
                  + 2 · h · vocab           # the decoder onto the vocabulary
        total     = num_layers · per layer + LM head

    with h = `hidden_size`, i = `intermediate_size`, seq = `seq_len` (the recipe's block size).
    The head is counted at every position (the manifest compares models, not objectives).
    """
    h, i = hidden_size, intermediate_size
    per_layer = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * seq_len * h
    lm_head = 2 * h * h + 2 * h * vocab_size
    return num_layers * per_layer + lm_head


def config_forward_flops_per_token(config: Any, num_layers: int, seq_len: int) -> int:
    """`mlm_forward_flops_per_token` for a Hugging Face config's shape with `num_layers` layers."""
    return mlm_forward_flops_per_token(num_layers, config.hidden_size, config.intermediate_size,
                                       config.vocab_size, seq_len)


# ---------------------------------------------------------------------------------------------
# Training counts
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelShape:
    """The sizes a FLOP count depends on."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    vocab_size: int

    @classmethod
    def of(cls, config: Any, num_layers: int | None = None, vocab_size: int | None = None) -> "ModelShape":
        """The shape of a Hugging Face config (or a config.json dict), optionally with another
        layer count (a mini-model) or vocabulary (a new language's). A ModelShape is accepted too."""
        if isinstance(config, ModelShape):
            config = {"hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
                      "num_hidden_layers": config.num_layers, "vocab_size": config.vocab_size}
        get = config.get if isinstance(config, Mapping) else (lambda key: getattr(config, key))
        return cls(int(get("hidden_size")), int(get("intermediate_size")),
                   int(num_layers if num_layers is not None else get("num_hidden_layers")),
                   int(vocab_size if vocab_size is not None else get("vocab_size")))

    def with_(self, **changes: int) -> "ModelShape":
        """A copy with some sizes changed."""
        return ModelShape(**{**self.__dict__, **changes})


@dataclass(frozen=True)
class MLMHead:
    """An MLM head (dense transform + LayerNorm + decoder tied to the word embeddings)."""

    #: reads the hidden state after this many layers; None: after the last one
    after_layer: int | None = None
    #: its transform (dense, LayerNorm) and output bias train
    trainable: bool = False


@dataclass(frozen=True)
class FlopCount:
    """Forward and backward FLOPs (per token, or per step once scaled), with a breakdown."""

    forward: float
    backward: float
    #: part name ("layer 0", "head after 4", ...) -> (forward, backward)
    parts: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False)

    @property
    def total(self) -> float:
        return self.forward + self.backward

    def __add__(self, other: "FlopCount") -> "FlopCount":
        parts = dict(self.parts)
        for name, (f, b) in other.parts.items():
            old = parts.get(name, (0.0, 0.0))
            parts[name] = (old[0] + f, old[1] + b)
        return FlopCount(self.forward + other.forward, self.backward + other.backward, parts)

    def scaled(self, factor: float) -> "FlopCount":
        """This count times `factor` (e.g. tokens per step)."""
        return FlopCount(self.forward * factor, self.backward * factor,
                         {k: (f * factor, b * factor) for k, (f, b) in self.parts.items()})


def training_flops_per_token(shape: ModelShape, seq_len: int, *,
                             trainable_layers: bool | Sequence[bool] = False, train_embeddings: bool = False,
                             heads: Sequence[MLMHead] = (MLMHead(),),
                             masked_fraction: float | None = None) -> FlopCount:
    """Forward + backward FLOPs per token of one training step (see the module docstring).

    - `trainable_layers`: one flag per layer (bottom first), or one flag for all of them;
    - `train_embeddings`: the word embeddings (and so the tied decoder weight) train;
    - `heads`: the MLM heads the loss is taken from (none: e.g. fine-tuning, whose small task
      head is left out); the layers run up to the highest one, the backward from there down;
    - `masked_fraction`: heads compute logits only at this fraction of positions (the MLM
      masking probability); None: at every position.
    """
    h, i, s, L = shape.hidden_size, shape.intermediate_size, seq_len, shape.num_layers
    flags = [bool(trainable_layers)] * L if isinstance(trainable_layers, bool) else [bool(t) for t in trainable_layers]
    if len(flags) != L:
        raise ValueError(f"trainable_layers has {len(flags)} flags for {L} layers")
    f = 1.0 if masked_fraction is None else float(masked_fraction)
    reads = [L if hd.after_layer is None else hd.after_layer for hd in heads]
    if any(not 0 <= a <= L for a in reads):
        raise ValueError(f"heads read after layers {reads}, but the model has {L}")
    top = max(reads, default=L)
    # grad_below[j]: something at or below the input of layer j trains (so gradients must reach it)
    grad_below = [train_embeddings]
    for flag in flags:
        grad_below.append(grad_below[-1] or flag)
    P = 4 * h * h + 2 * h * i
    parts: dict[str, tuple[float, float]] = {}
    for j in range(L):
        forward = 2 * P + 4 * s * h
        backward = 0.0
        if j < top and (flags[j] or grad_below[j]):
            weights = 2 * P if flags[j] else 0
            inputs = 2 * P if grad_below[j] else 2 * P - 6 * h * h
            backward = weights + inputs + 8 * s * h
        parts[f"layer {j}"] = (float(forward), float(backward))
    for n, (head, a) in enumerate(zip(heads, reads)):
        dense, decoder = 2 * h * h, 2 * h * shape.vocab_size
        below = grad_below[a]
        backward = ((decoder if train_embeddings else 0) + (decoder if head.trainable or below else 0)
                    + (dense if head.trainable else 0) + (dense if below else 0))
        name = f"head {n} after layer {a}"
        parts[name] = (f * (dense + decoder), f * backward)
    return FlopCount(sum(fw for fw, _ in parts.values()), sum(bw for _, bw in parts.values()), parts)


def adapt_flops_per_token(config: Any, num_layers: int, seq_len: int, *, vocab_size: int | None = None,
                          masked_fraction: float | None = None) -> float:
    """Training FLOPs per token of stage `adapt` over `num_layers` layers of `config`'s shape.

    Only the word embeddings (= the tied decoder) and the LM-head bias learn: every layer is
    frozen but on the backward path (activation gradients only), and the decoder weight
    gradient is computed. `vocab_size` is the new language's (default: the config's).
    """
    shape = ModelShape.of(config, num_layers, vocab_size)
    return training_flops_per_token(shape, seq_len, train_embeddings=True,
                                    masked_fraction=masked_fraction).total


def finetune_flops_per_token(config: Any, seq_len: int) -> float:
    """Training FLOPs per token of stage `finetune`: every layer trains, the embeddings are
    frozen, and the task head (a few h x labels products per sequence) is left out."""
    return training_flops_per_token(ModelShape.of(config), seq_len, trainable_layers=True, heads=()).total


def tokens_per_step(train_cfg: Any, seq_len: int, world_size: int = 1) -> int:
    """Tokens one optimiser step sees across ranks: micro batch x accumulation x ranks x length."""
    return int(train_cfg.micro_batch_size) * int(train_cfg.grad_accum) * int(world_size) * int(seq_len)


@dataclass(frozen=True)
class StrategyCompute:
    """A strategy's FLOP model, as `Strategy.predict_compute` returns it."""

    #: forward + backward per token of the pretraining stage
    pretrain: FlopCount
    #: one line saying what that stage runs and trains
    pretrain_what: str
    #: layers of the model `adapt` trains embeddings over (the mini-model's, or the big model's)
    adapt_layers: int
    #: one line naming that model
    adapt_what: str
