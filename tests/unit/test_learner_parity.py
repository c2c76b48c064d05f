"""The learner step against the plain whole-batch loss: one FSDP2 rank on the whole batch and in
micro-batches gives the same loss and gradients (fp32, 1e-6) for every loss type, with and
without the KL term; bf16 and gradient checkpointing run the same step; a sharded checkpoint
restores policy and optimizer. Two ranks: tests/integration/test_learner_group.py."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from tests.learner_cases import make_rows, reference_step
from trainer.config import GRPOConfig, LearnerConfig, TinyModelConfig
from trainer.learner_rank import LearnerRank, init_process_group, plan_micro_batches
from trainer.tiny import build_model, build_tokenizer

LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo"]
NO_CLIP = 1e9  # compare raw gradients; clipping scales them all alike


@pytest.fixture(scope="module", autouse=True)
def one_process_group():
    torch.set_num_threads(1)
    init_process_group(torch.device("cpu"))
    yield
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def tiny():
    tok = build_tokenizer()
    model = build_model(TinyModelConfig(), tok, seed=0)
    ref = build_model(TinyModelConfig(), tok, seed=1)
    return model, ref, tok


def rank_step(model, ref, tok, rows, advantages, cfg: GRPOConfig, learner: LearnerConfig):
    rank = LearnerRank(model.config, model.state_dict(), ref.state_dict() if cfg.beta else None, cfg, learner,
                       tok.pad_token_id)
    rank.prepare(rows)
    stats = rank.update(advantages, [True] * len(rows), learning_rate=1e-3)
    return stats, rank.full_gradients(), rank


CASES = [(lt, beta) for lt in LOSS_TYPES for beta in (0.0, 0.04)]


@pytest.mark.parametrize(("loss_type", "beta"), CASES)
@pytest.mark.parametrize("micro_batch_tokens", [None, 64])
def test_one_rank_matches_the_whole_batch_loss_and_gradients(tiny, loss_type, beta, micro_batch_tokens) -> None:
    model, ref, tok = tiny
    rows, advantages = make_rows(tok, model)
    cfg = GRPOConfig(loss_type=loss_type, beta=beta, max_grad_norm=NO_CLIP, max_completion_tokens=16)
    want_loss, want_grads = reference_step(model, ref, tok, rows, advantages, cfg)
    stats, grads, rank = rank_step(model, ref, tok, rows, advantages, cfg,
                                   LearnerConfig(micro_batch_tokens=micro_batch_tokens))
    if micro_batch_tokens:
        assert len(rank._micro) > 3  # really split
    assert stats.loss == pytest.approx(want_loss, abs=1e-6)
    assert stats.grad_norm == pytest.approx(float(torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g) for g in want_grads.values()]))), rel=1e-6)
    assert grads.keys() == want_grads.keys()
    for name, grad in want_grads.items():
        assert torch.allclose(grads[name], grad, atol=1e-6, rtol=0), name


def test_micro_batches_respect_the_token_budget() -> None:
    lengths = [(10, 3), (4, 20), (8, 8), (2, 1), (30, 30)]
    plan = plan_micro_batches(lengths, budget_tokens=40)
    assert sorted(i for mb in plan for i in mb) == list(range(len(lengths)))
    for mb in plan:
        padded = len(mb) * (max(lengths[i][0] for i in mb) + max(lengths[i][1] for i in mb))
        assert padded <= 40 or len(mb) == 1  # a row over the budget is alone
    assert [4] in plan
    assert plan_micro_batches(lengths, None) == [list(range(5))]


def test_rows_outside_the_loss_change_nothing(tiny) -> None:
    """keep=False (a group dynamic sampling dropped) is the same as leaving the rows out."""
    model, ref, tok = tiny
    rows, advantages = make_rows(tok, model)
    cfg = GRPOConfig(loss_type="grpo", max_grad_norm=NO_CLIP)
    learner = LearnerConfig(micro_batch_tokens=64)
    a = LearnerRank(model.config, model.state_dict(), None, cfg, learner, tok.pad_token_id)
    a.prepare(rows)
    masked = a.update(advantages, [i >= 4 for i in range(len(rows))], 1e-3)
    alone, grads, _ = rank_step(model, ref, tok, rows[4:], advantages[4:], cfg, learner)
    assert masked.loss == pytest.approx(alone.loss, abs=1e-6)
    for name, grad in a.full_gradients().items():
        assert torch.allclose(grad, grads[name], atol=1e-6, rtol=0), name
    a.prepare(rows)
    assert not a.update(advantages, [False] * len(rows), 1e-3).stepped


@pytest.mark.parametrize(("precision", "checkpointing"), [("bf16", False), ("fp32", True), ("bf16", True)])
def test_bf16_and_gradient_checkpointing_run_the_same_step(tiny, precision, checkpointing) -> None:
    model, ref, tok = tiny
    rows, advantages = make_rows(tok, model)
    cfg = GRPOConfig(loss_type="dapo", max_grad_norm=NO_CLIP)
    want_loss, _ = reference_step(model, ref, tok, rows, advantages, cfg)
    stats, grads, rank = rank_step(model, ref, tok, rows, advantages, cfg,
                                   LearnerConfig(micro_batch_tokens=64, precision=precision,
                                                 gradient_checkpointing=checkpointing))
    assert all(g.dtype == torch.float32 for g in grads.values())  # fp32 master weights and gradients
    assert all(p.dtype == torch.float32 for p in rank.full_state_dict().values())
    tolerance = 1e-6 if precision == "fp32" else 0.05 * abs(want_loss) + 1e-3
    assert stats.loss == pytest.approx(want_loss, abs=tolerance)


def test_sharded_checkpoint_restores_policy_and_optimizer(tiny, tmp_path) -> None:
    model, ref, tok = tiny
    rows, advantages = make_rows(tok, model)
    cfg = GRPOConfig(loss_type="dapo")
    _, _, rank = rank_step(model, ref, tok, rows, advantages, cfg, LearnerConfig())
    rank.save(tmp_path / "dcp")
    restored = LearnerRank(model.config, model.state_dict(), None, cfg, LearnerConfig(), tok.pad_token_id)
    restored.load(tmp_path / "dcp")
    for name, value in rank.full_state_dict().items():
        assert torch.equal(restored.full_state_dict()[name], value), name
    for r in (rank, restored):  # the same next step, Adam's moments included
        r.prepare(rows)
    a, b = rank.update(advantages, [True] * len(rows), 1e-3), restored.update(advantages, [True] * len(rows), 1e-3)
    assert a.loss == b.loss and a.grad_norm == b.grad_norm
    for name, value in rank.full_state_dict().items():
        assert torch.equal(restored.full_state_dict()[name], value), name
