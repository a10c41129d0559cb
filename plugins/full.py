"""Strategy `full`: plain MLM training of the whole model (the baseline)."""
from __future__ import annotations

from pathlib import Path

from mmadapt.api import (MLMHead, MaskedLMObjective, Strategy, StrategyCompute, Trainer, build_model, hookimpl,
                         load_tokenizer, mlm_datasets, save_pretrained_atomic, trainable_parameters,
                         training_flops_per_token)


class FullStrategy(Strategy):
    """Pretrain (or continue pretraining) every parameter with MLM; writes `big/`."""

    description = "MLM over the whole model; the baseline the mini-model strategies are measured against"
    uses_pretrained_as_is = True

    def pretrain(self, ctx) -> dict[str, Path]:
        tokenizer = load_tokenizer(ctx)
        model = build_model(ctx, tokenizer)
        train_set, eval_set = mlm_datasets(ctx, tokenizer)
        objective = MaskedLMObjective(model)
        result = Trainer(ctx, objective, trainable_parameters(objective), train_set, eval_set).train()
        big = save_pretrained_atomic(model, ctx.stage_dir / "big", ctx.dist, tokenizer)
        ctx.log(f"step {result.steps}: loss {result.last_metrics.get('loss', float('nan')):.4f}")
        return {"big": big}

    def predict_compute(self, options, big, seq_len, masked_fraction, plugins) -> StrategyCompute:
        pretrain = training_flops_per_token(big, seq_len, trainable_layers=True, train_embeddings=True,
                                            heads=[MLMHead(trainable=True)], masked_fraction=masked_fraction)
        return StrategyCompute(pretrain, f"every parameter trains; {big.num_layers} layers + MLM head",
                               big.num_layers, f"the big model ({big.num_layers} layers)")


@hookimpl
def mmadapt_register_strategies(registry):
    registry.add("full", FullStrategy())
