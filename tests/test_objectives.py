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


def _mini_and_big():
    """A 1-layer and a 2-layer XLM-R MLM sharing their word embeddings and LM bias (the big one's)."""
    from mmadapt.model.surgery import share_vocabulary

    big = _model("XLMRoberta")
    torch.manual_seed(1)
    mini = type(big)(type(big.config)(**{**big.config.to_dict(), "num_hidden_layers": 1})).eval()
    share_vocabulary(mini, big)
    return mini, big


def test_a_mini_model_and_its_big_model_share_the_very_embedding_and_bias_parameters():
    from mmadapt.model.surgery import lm_head_bias

    mini, big = _mini_and_big()
    assert mini.get_input_embeddings().weight is big.get_input_embeddings().weight
    assert mini.get_output_embeddings().weight is big.get_input_embeddings().weight  # the decoder stays tied
    assert lm_head_bias(mini) is lm_head_bias(big)


def test_every_nth_interleaved_step_is_the_big_models_loss_on_its_share_of_the_batch():
    from mmadapt.training.objectives import InterleavedMaskedLMObjective

    mini, big = _mini_and_big()
    objective = InterleavedMaskedLMObjective(mini, big, every=3, big_batch_size=2).train()
    batch = _batch()
    mini.eval(), big.eval()  # no dropout: the losses are compared exactly
    expected_big = MaskedLMObjective(big)({k: v[:2] for k, v in batch.items()})["loss"]
    expected_mini = MaskedLMObjective(mini)(batch)["loss"]
    seen = []
    for step in range(1, 7):
        objective.start_step(step)
        seen.append(objective(batch)["loss"])
    assert [objective.is_big_model_step(s) for s in range(1, 7)] == [False, False, True, False, False, True]
    for step, loss in zip(range(1, 7), seen):
        torch.testing.assert_close(loss, expected_big if step % 3 == 0 else expected_mini)
    assert InterleavedMaskedLMObjective.big_model_steps_in(6, 3) == 2
    assert InterleavedMaskedLMObjective.big_model_steps_in(8, 3) == 2
    objective.eval()  # evaluation is the mini-model's, whatever the step
    torch.testing.assert_close(objective(batch)["loss"], expected_mini)


def test_a_big_model_step_moves_the_shared_embeddings_the_mini_model_then_reads():
    from mmadapt.training.objectives import InterleavedMaskedLMObjective

    mini, big = _mini_and_big()
    objective = InterleavedMaskedLMObjective(mini, big, every=2, big_batch_size=3)
    objective.start_step(2)
    objective(_batch())["loss"].backward()
    grad = mini.get_input_embeddings().weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert all(p.grad is None for p in mini.roberta.encoder.parameters())  # the mini-model's own layers took no part


def test_interleaving_every_step_is_refused():
    from mmadapt.training.objectives import InterleavedMaskedLMObjective

    mini, big = _mini_and_big()
    with pytest.raises(ValueError, match="every is 1"):
        InterleavedMaskedLMObjective(mini, big, every=1, big_batch_size=2)
