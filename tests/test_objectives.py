"""MLM objectives: logits only at masked positions give the model's own loss and gradients."""
from __future__ import annotations

import pytest
import torch

from mmadapt.training.objectives import MaskedLMObjective, mlm_head_name


def _model(family: str):
    import transformers

    torch.manual_seed(0)
    config_cls = getattr(transformers, f"{family}Config")
    model_cls = getattr(transformers, f"{family}ForMaskedLM")
    config = config_cls(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=40)
    return model_cls(config).eval()  # eval: no dropout, so both passes see the same network


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (3, 16), generator=g)
    targets = torch.rand(3, 16, generator=g) < 0.2
    targets[:, 3] = True
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.where(targets, ids, torch.full_like(ids, -100))}


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("family", ["XLMRoberta", "Roberta", "Bert"])
def test_masked_only_logits_give_the_models_own_loss_and_gradients(family):
    model = _model(family)
    batch = _batch()
    reference = model(**batch).loss
    reference.backward()
    expected = _grads(model)
    objective = MaskedLMObjective(model)
    assert objective.masked_only
    loss = objective(batch)["loss"]
    loss.backward()
    got = _grads(model)
    torch.testing.assert_close(loss, reference)
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_head_is_found_without_knowing_the_family():
    assert mlm_head_name(_model("XLMRoberta")) == "lm_head"
    assert mlm_head_name(_model("Bert")) == "cls"


def test_the_head_runs_only_on_masked_positions():
    model = _model("XLMRoberta")
    batch = _batch()
    seen = []
    model.lm_head.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    MaskedLMObjective(model)(batch)
    MaskedLMObjective(model, masked_only=False)(batch)
    masked = int((batch["labels"] != -100).sum())
    assert seen == [torch.Size([masked, 32]), torch.Size([3, 16, 32])]


def test_the_head_stays_registered_once():
    model = _model("XLMRoberta")
    objective = MaskedLMObjective(model)
    names = [n for n, _ in objective.named_modules() if n.endswith("lm_head")]
    assert names == ["model.lm_head"]
