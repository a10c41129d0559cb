"""Strategy `minipost`: cut a mini-model out of a pretrained model and train new layers over it.

Features and the recipe keys that turn them on:
- the big model: `model.pretrained` (required): a local `save_pretrained` directory, or an earlier
  mmadapt run's output_dir (or its `pretrain/` directory), which stands for its `pretrain/big`
- the frozen part: the embeddings and the layers `strategy.layer_rule` picks (default `first_k`:
  the bottom `strategy.k`, default 4)
- the new part: `strategy.new_layers` transformer layers (default 2), initialised by
  `strategy.new_layer_init`: `random` (the model's own init) or `copy_next` (copies of the big
  layers right above the last selected one), and an MLM head initialised from the big model's
  head (its decoder stays tied to the frozen word embeddings)

With `strategy.continue_from` (an earlier MiniPost pretrain directory over the same big model, or its run's
output_dir) the new layers and head start from that mini-model's; with `train.max_steps: 0` they are taken as they
are (the quickstart ships one, so that it does not train it again).

Only the new parameters train, with MLM on `data.train`; with `strategy.distill` > 0 they also learn
to reproduce the big model's last hidden states (loss = MLM + distill x mean squared error, the big
model running forward only as the teacher), so that the mini-model stands in for the big model's
upper layers rather than for any model that fits the source MLM. Writes `big/` (the model it started
from, unchanged), `mini/` (a plain `*ForMaskedLM` with k + new_layers layers) and `manifest.json`
(see `mmadapt.model.minimodel`; the new layers have `big_layer: null`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F

from mmadapt.api import (BIG_LAYERS_CONFIG_KEY, LayerRuleSection, MLMHead, MaskedLMObjective, MmadaptError, Strategy,
                         StrategyCompute, Trainer, build_manifest, build_model, hookimpl, layer_rule_field,
                         load_tokenizer, masked_lm_loss, mlm_datasets, mlm_head_name, model_family, read_manifest,
                         save_pretrained_atomic, select_layers, trainable_parameters, training_flops_per_token,
                         write_manifest)

NEW_LAYER_INITS = ("random", "copy_next")


def build_minipost_model(family: Any, big: Any, layers: list[int], new_layers: int, new_layer_init: str) -> Any:
    """The mini-model: `big`'s embeddings and `layers` (frozen, shared) + new layers + a copied head.

    Its config's `mmadapt_big_layers` lists the big-model layer of each mini layer (None: new).
    """
    big_layers = family.layers(big)
    if new_layer_init == "copy_next":
        sources = list(range(layers[-1] + 1, layers[-1] + 1 + new_layers))
        if sources and sources[-1] >= len(big_layers):
            raise MmadaptError(
                f"strategy.new_layer_init=copy_next copies big-model layers {sources[0]}..{sources[-1]} (0-based) "
                f"above the last selected layer {layers[-1]}, but the big model has {len(big_layers)} layers; "
                "lower strategy.new_layers or strategy.k, or use new_layer_init=random")
        new = [family.new_layer(big, copy_of=j) for j in sources]
    else:
        new = [family.new_layer(big) for _ in range(new_layers)]
    shared = [big_layers[i] for i in layers]
    for module in (family.embeddings(big), *shared):
        module.requires_grad_(False)
    mini = family.assemble(big, shared + new, family.new_lm_head(big, copy=True))
    mini.config.update({BIG_LAYERS_CONFIG_KEY: list(layers) + [None] * new_layers})
    return mini


def continue_new_layers(family: Any, mini: Any, earlier: Path, mini_layers: list[int | None]) -> None:
    """Load the MiniPost mini-model in `earlier` (a pretrain directory: `mini/`, `manifest.json`; or its run's
    output_dir) into `mini`: its new layers and head. Refused unless it has the same layers and was cut out of the
    same big model (its frozen tensors equal `mini`'s)."""
    stage_dir = earlier / "pretrain" if (earlier / "pretrain" / "manifest.json").is_file() else earlier
    manifest = read_manifest(stage_dir)
    found = [entry["big_layer"] for entry in manifest.get("mini_layers", [])]
    if manifest.get("strategy") != "minipost" or found != list(mini_layers):
        raise MmadaptError(f"strategy.continue_from: {stage_dir} holds a {manifest.get('strategy')} mini-model over "
                           f"big-model layers {found}, not a minipost one over {list(mini_layers)} (None: a new "
                           "layer); point it at a MiniPost run with the same k, layer_rule and new_layers")
    state = family.load_pretrained(str(stage_dir / "mini")).state_dict()
    own = mini.state_dict()
    frozen = {name for name, p in mini.named_parameters() if not p.requires_grad}
    differ = sorted(name for name in frozen if name in state and not torch.equal(state[name], own[name]))
    if differ or state.keys() != own.keys():
        raise MmadaptError(f"strategy.continue_from: {stage_dir}/mini was not cut out of this big model "
                           f"({len(differ)} frozen tensors differ, e.g. {(differ or sorted(state.keys() ^ own.keys()))[0]}); "
                           "point it at a MiniPost run over model.pretrained")
    mini.load_state_dict(state)


class DistilledMLMObjective(torch.nn.Module):
    """The mini-model's MLM loss + `weight` x MSE between its last hidden states and the big model's.

    The big model is a frozen teacher kept out of the module tree (DeepSpeed never sees or
    partitions it): a private copy, moved to the mini-model's device and dtype on first use.
    """

    def __init__(self, mini: Any, big: Any, weight: float):
        super().__init__()
        self.model = mini
        self.weight = weight
        self._head_name = mlm_head_name(mini)
        teacher = copy.deepcopy(big).eval()
        teacher.requires_grad_(False)
        self._teacher = [teacher]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        hidden = self.model.base_model(**inputs)[0]
        mlm = masked_lm_loss(getattr(self.model, self._head_name), hidden, batch["labels"])
        teacher = self._teacher[0]
        if (teacher.device, teacher.dtype) != (hidden.device, hidden.dtype):  # once, on the first batch
            teacher.to(device=hidden.device, dtype=hidden.dtype)
        with torch.no_grad():
            target = teacher.base_model(**inputs)[0]
        real = batch["attention_mask"].bool()
        match = F.mse_loss(hidden[real].float(), target[real].float())
        return {"loss": mlm + self.weight * match, "mlm_loss": mlm.detach(), "distill_loss": match.detach()}


class MiniPostStrategy(Strategy):
    """Freeze a pretrained model's embeddings + selected layers, train new layers and a head on top."""

    mini_layers_option = "k"  # the mini-model takes k of the big model's layers: k must be fewer

    @dataclass
    class Options:
        #: how many big-model layers the mini-model takes (with first_k: the bottom k)
        k: int = field(default=4, metadata={"min": 1})
        #: fresh transformer layers stacked on the frozen ones. The paper does not say how many it used
        #: (to us); 2 is our default, to be tuned
        new_layers: int = field(default=2, metadata={"min": 0})
        #: random: the model's own initialisation; copy_next: copies of the big layers above the selection
        new_layer_init: str = field(default="random", metadata={"choices": NEW_LAYER_INITS})
        #: which big-model layers the mini-model takes (a layer-rule plugin and its options)
        layer_rule: LayerRuleSection = layer_rule_field()
        #: weight of matching the big model's last hidden states while the new layers train (0: MLM only)
        distill: float = field(default=0.0, metadata={"min": 0})
        #: an earlier MiniPost run over the same big model (its output_dir or pretrain directory): the new layers
        #: and head start from its mini-model (with train.max_steps 0: taken as they are). Empty: fresh
        continue_from: Optional[str] = None

    description = "freeze embeddings + k layers of a pretrained model, train new_layers new layers + MLM head on top"

    def pretrain(self, ctx) -> dict[str, Path]:
        opts = ctx.cfg.strategy
        if not ctx.cfg.model.pretrained:
            raise MmadaptError("strategy minipost starts from a pretrained model: set model.pretrained to a "
                               "save_pretrained directory or to an earlier run's output_dir (e.g. runs/tiny_full)")
        if opts.new_layers < 0:
            raise MmadaptError(f"strategy.new_layers must be 0 or more, got {opts.new_layers}")
        if opts.distill < 0:
            raise MmadaptError(f"strategy.distill must be 0 or more, got {opts.distill}")
        family = model_family(ctx)
        tokenizer = load_tokenizer(ctx)
        big = build_model(ctx, tokenizer)
        layers = select_layers(ctx.plugins, len(family.layers(big)), opts.k, opts.layer_rule)
        mini = build_minipost_model(family, big, layers, opts.new_layers, opts.new_layer_init)
        mini_layers = layers + [None] * opts.new_layers
        if opts.continue_from:
            continue_new_layers(family, mini, Path(opts.continue_from), mini_layers)
        big_dir = save_pretrained_atomic(big, ctx.stage_dir / "big", ctx.dist, tokenizer)
        manifest = build_manifest("minipost", opts.k, opts.layer_rule, big, mini, mini_layers, ctx.cfg.data.block_size)
        objective = DistilledMLMObjective(mini, big, opts.distill) if opts.distill > 0 else MaskedLMObjective(mini)
        del big  # the layers above the selection and the old head are not needed any more (a teacher holds a copy)
        start = f"from {opts.continue_from}" if opts.continue_from else opts.new_layer_init
        ctx.log(f"minipost: frozen big-model layers {[i + 1 for i in layers]} (1-based) + {opts.new_layers} "
                f"new layers ({start}); {manifest['parameters']['mini_trainable']:,} trainable parameters")
        train_set, eval_set = mlm_datasets(ctx, tokenizer)
        result = Trainer(ctx, objective, trainable_parameters(objective), train_set, eval_set).train()
        if result.steps:
            ctx.log(f"step {result.steps}: loss {result.last_metrics.get('loss', float('nan')):.4f}")
        else:
            ctx.log("train.max_steps is 0: the mini-model is taken as it is")
        mini_dir = save_pretrained_atomic(mini, ctx.stage_dir / "mini", ctx.dist, tokenizer)
        write_manifest(ctx.stage_dir, manifest, ctx.dist)
        return {"big": big_dir, "mini": mini_dir}

    def predict_compute(self, options, big, seq_len, masked_fraction, plugins) -> StrategyCompute:
        k = len(select_layers(plugins, big.num_layers, options.k, options.layer_rule))
        n = k + options.new_layers
        pretrain = training_flops_per_token(big.with_(num_layers=n), seq_len,
                                            trainable_layers=[False] * k + [True] * options.new_layers,
                                            heads=[MLMHead(trainable=True)], masked_fraction=masked_fraction)
        what = ""
        if options.distill > 0:  # the teacher's forward pass, without its head
            pretrain = pretrain + training_flops_per_token(big, seq_len, heads=[])
            what = "; the big model's forward as the teacher"
        return StrategyCompute(pretrain, f"{k} frozen big-model layers + {options.new_layers} new layers and a "
                               f"head that train{what}", n, f"the mini-model ({k} big + {options.new_layers} new layers)")


@hookimpl
def mmadapt_register_strategies(registry):
    registry.add("minipost", MiniPostStrategy())
