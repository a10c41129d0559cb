"""Strategy `minijoint`: pretrain the big model with a second MLM head after layer k.

Features and the recipe keys that turn them on:
- where the secondary head sits: `strategy.k` (default 4, the paper's choice for 24 layers)
- its share of the loss: `strategy.weight` (loss = top MLM + weight x secondary MLM; both logged,
  as `mlm_loss` and `mini_mlm_loss`)
- which layers the mini-model takes: `strategy.layer_rule` (default `first_k`: layers 1..k)
- from scratch (`model.config`) or continuing from a model (`model.pretrained`; a directory or an
  earlier run's output_dir); resumption from checkpoints as in every strategy (`train.resume`)

Writes `big/`, `mini/` (embeddings + the selected layers + the secondary head, a plain
`*ForMaskedLM`) and `manifest.json` (see `mmadapt.minimodel`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmadapt.api import (BIG_LAYERS_CONFIG_KEY, LayerRuleSection, MLMHead, Strategy, StrategyCompute, Trainer,
                         build_manifest, build_model, hookimpl, layer_rule_field, load_tokenizer, masked_lm_loss,
                         masked_positions, mlm_datasets, mlm_head_name, model_family, save_pretrained_atomic,
                         select_layers, trainable_parameters, training_flops_per_token, write_manifest)


class MiniJointObjective(torch.nn.Module):
    """Top-head MLM + `weight` x MLM of a secondary head over the selected layers.

    With a prefix rule (layers 0..k-1) the secondary head reads the big model's own hidden
    state after layer k, captured by a forward hook: one forward pass serves both heads. Any
    other rule runs the mini path (embeddings -> selected layers -> head) as its own forward.
    """

    def __init__(self, family: Any, big: Any, head: torch.nn.Module, layers: list[int], weight: float):
        super().__init__()
        self.big = big
        self.head = head
        self.weight = weight
        self.layers = list(layers)
        self.reads_big_hidden_state = self.layers == list(range(len(self.layers)))
        # The mini-model shares every module with `big` and `head`; kept out of the module tree so
        # DeepSpeed (and ZeRO-3's hooks) see each parameter once, through `big` and `head`.
        big_layers = family.layers(big)
        self._mini = [family.assemble(big, [big_layers[i] for i in self.layers], head)]
        self._mini[0].config.update({BIG_LAYERS_CONFIG_KEY: list(self.layers)})
        self._captured: torch.Tensor | None = None
        self._big_head_name = mlm_head_name(big)
        if self.reads_big_hidden_state:
            big_layers[self.layers[-1]].register_forward_hook(self._capture)

    @property
    def mini(self) -> Any:
        """The mini-model (embeddings, selected layers, secondary head), sharing parameters."""
        return self._mini[0]

    def _capture(self, module: Any, args: Any, output: Any) -> None:
        self._captured = output[0] if isinstance(output, tuple) else output

    def head_losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(top-head MLM loss, secondary-head MLM loss), both differentiable.

        Both heads compute logits only at the masked positions (see `masked_lm_loss`).
        """
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        labels = batch["labels"]
        keep = masked_positions(labels)
        self._captured = None
        hidden = self.big.base_model(**inputs)[0]
        top = masked_lm_loss(getattr(self.big, self._big_head_name), hidden, labels, keep)
        if self.reads_big_hidden_state:
            hidden, self._captured = self._captured, None
        else:
            hidden = self.mini.base_model(**inputs)[0]
        secondary = masked_lm_loss(self.head, hidden, labels, keep)
        return top, secondary

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        top, secondary = self.head_losses(batch)
        return {"loss": top + self.weight * secondary, "mlm_loss": top.detach(), "mini_mlm_loss": secondary.detach()}


class MiniJointStrategy(Strategy):
    """MLM on the big model plus a secondary MLM head after layer k; writes big/, mini/, manifest."""

    mini_layers_option = "k"  # the mini-model takes k of the big model's layers: k must be fewer

    @dataclass
    class Options:
        #: the secondary head reads the hidden state after this many layers (paper: 4 of 24)
        k: int = field(default=4, metadata={"min": 1})
        #: loss = top-head MLM + weight x secondary-head MLM
        weight: float = field(default=1.0, metadata={"min": 0})
        #: which big-model layers the mini-model takes (a layer-rule plugin and its options)
        layer_rule: LayerRuleSection = layer_rule_field()

    description = "MLM with a second head after layer k (top + weight x secondary); mini = embeddings + k layers"

    def pretrain(self, ctx) -> dict[str, Path]:
        opts = ctx.cfg.strategy
        family = model_family(ctx)
        tokenizer = load_tokenizer(ctx)
        big = build_model(ctx, tokenizer)
        layers = select_layers(ctx.plugins, len(family.layers(big)), opts.k, opts.layer_rule)
        ctx.log(f"minijoint: secondary head over big-model layers {[i + 1 for i in layers]} (1-based), "
                f"weight {opts.weight}")
        train_set, eval_set = mlm_datasets(ctx, tokenizer)
        objective = MiniJointObjective(family, big, family.new_lm_head(big), layers, opts.weight)
        result = Trainer(ctx, objective, trainable_parameters(objective), train_set, eval_set).train()
        last = result.last_metrics
        ctx.log(f"step {result.steps}: mlm_loss {last.get('mlm_loss', float('nan')):.4f}, "
                f"mini_mlm_loss {last.get('mini_mlm_loss', float('nan')):.4f}")
        big_dir = save_pretrained_atomic(big, ctx.stage_dir / "big", ctx.dist, tokenizer)
        mini_dir = save_pretrained_atomic(objective.mini, ctx.stage_dir / "mini", ctx.dist, tokenizer)
        manifest = build_manifest("minijoint", opts.k, opts.layer_rule, big, objective.mini, layers,
                                  ctx.cfg.data.block_size)
        write_manifest(ctx.stage_dir, manifest, ctx.dist)
        return {"big": big_dir, "mini": mini_dir}

    def predict_compute(self, options, big, seq_len, masked_fraction, plugins) -> StrategyCompute:
        layers = select_layers(plugins, big.num_layers, options.k, options.layer_rule)
        k = len(layers)
        if layers == list(range(k)):  # the secondary head reads the big forward's hidden state after layer k
            heads = [MLMHead(trainable=True), MLMHead(after_layer=k, trainable=True)]
            pretrain = training_flops_per_token(big, seq_len, trainable_layers=True, train_embeddings=True,
                                                heads=heads, masked_fraction=masked_fraction)
            what = f"every parameter trains; {big.num_layers} layers + top head + a second head after layer {k}"
        else:  # the mini path runs as its own forward and backward
            pretrain = (training_flops_per_token(big, seq_len, trainable_layers=True, train_embeddings=True,
                                                 heads=[MLMHead(trainable=True)], masked_fraction=masked_fraction)
                        + training_flops_per_token(big.with_(num_layers=k), seq_len, trainable_layers=True,
                                                   train_embeddings=True, heads=[MLMHead(trainable=True)],
                                                   masked_fraction=masked_fraction))
            what = (f"every parameter trains; {big.num_layers} layers + top head, plus the mini path "
                    f"(layers {[i + 1 for i in layers]}) + its head as a second pass")
        return StrategyCompute(pretrain, what, k, f"the mini-model ({k} of {big.num_layers} layers)")


@hookimpl
def mmadapt_register_strategies(registry):
    registry.add("minijoint", MiniJointStrategy())
