"""Strategy `minijoint`: pretrain the big model with a second MLM head after layer k.

Features and the recipe keys that turn them on:
- where the secondary head sits: `strategy.k` (default 4, the paper's choice for 24 layers)
- its share of the loss: `strategy.weight` (loss = top MLM + weight x secondary MLM; both logged,
  as `mlm_loss` and `mini_mlm_loss`)
- which layers the mini-model takes: `strategy.layer_rule` (default `first_k`: layers 1..k)
- from scratch (`model.config`) or continuing from a model (`model.pretrained`; a directory or an
  earlier run's output_dir); continuing an earlier MiniJoint model (a `pretrain/` directory with its
  `mini/` and manifest over the same layers) continues its secondary head too, so `train.max_steps: 0`
  takes that model as it is; resumption from checkpoints as in every strategy (`train.resume`)

Writes `big/`, `mini/` (embeddings + the selected layers + the secondary head, a plain
`*ForMaskedLM`) and `manifest.json` (see `mmadapt.model.minimodel`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmadapt.api import (BIG_LAYERS_CONFIG_KEY, LayerRuleSection, MLMHead, MmadaptError, Strategy, StrategyCompute,
                         Trainer, build_manifest, build_model, hookimpl, layer_rule_field, load_tokenizer,
                         masked_lm_loss, masked_positions, mlm_datasets, mlm_head_name, model_family, read_manifest,
                         resolve_pretrained, save_pretrained_atomic, select_layers, trainable_parameters,
                         training_flops_per_token, write_manifest)


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


def continue_secondary_head(ctx: Any, family: Any, head: torch.nn.Module, layers: list[int]) -> None:
    """Load the trained secondary head of the MiniJoint model `model.pretrained` names into `head`.

    `model.pretrained` continues an earlier MiniJoint model when its big model lies in a `pretrain/`
    directory beside that run's `mini/` and `manifest.json`; its head is kept only when the manifest's
    layers are the ones this recipe selects (another k or layer rule starts a fresh head, logged).
    """
    if not ctx.cfg.model.pretrained:
        return
    stage_dir = Path(resolve_pretrained(str(ctx.cfg.model.pretrained))).parent
    mini_dir = stage_dir / "mini"
    try:
        manifest = read_manifest(stage_dir)
    except MmadaptError:  # a plain model directory: no mini-model beside it
        return
    if manifest.get("strategy") != "minijoint" or not (mini_dir / "config.json").is_file():
        return
    earlier = [entry["big_layer"] for entry in manifest.get("mini_layers", [])]
    if earlier != list(layers):
        ctx.log(f"minijoint: {stage_dir} has a secondary head over layers {[i + 1 for i in earlier]}, not "
                f"{[i + 1 for i in layers]}: a fresh head is trained")
        return
    state = family.lm_head(family.load_pretrained(str(mini_dir))).state_dict()
    state = {name: value for name, value in state.items() if name != "decoder.weight"}  # tied to the embeddings
    missing, unexpected = head.load_state_dict(state, strict=False)
    if unexpected or [name for name in missing if name != "decoder.weight"]:
        raise MmadaptError(f"{mini_dir}: its MLM head does not fit this model's (missing {missing}, unexpected "
                           f"{unexpected}); point model.pretrained at a MiniJoint run of the same architecture")
    ctx.log(f"minijoint: continues the secondary head of {mini_dir}")


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
        head = family.new_lm_head(big)
        continue_secondary_head(ctx, family, head, layers)
        objective = MiniJointObjective(family, big, head, layers, opts.weight)
        result = Trainer(ctx, objective, trainable_parameters(objective), train_set, eval_set).train()
        last = result.last_metrics
        if result.steps:
            ctx.log(f"step {result.steps}: mlm_loss {last.get('mlm_loss', float('nan')):.4f}, "
                    f"mini_mlm_loss {last.get('mini_mlm_loss', float('nan')):.4f}")
        else:
            ctx.log("train.max_steps is 0: the model is taken as it is")
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
