"""The GRPO loss against a naive per-sequence loop and against TRL 1.16's GRPOTrainer._compute_loss.

TRL settings matched (its defaults differ): importance_sampling_level="token", use_vllm=False (so no
vLLM importance-sampling correction), delta=None (no two-sided clipping), top_entropy_quantile=1.0,
off_policy_mask_threshold=None, no entropy bonus, no aux loss, one process, gradient accumulation 1,
steps_per_generation 1, and everything in float64 instead of TRL's bf16 default.
use_bias_correction_kl is set to our kl_bias_correction.
"""

from __future__ import annotations

import collections
import math
import types

import pytest
import torch

from trainer.loss import grpo_loss, loss_stats

LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo"]
EPS_LOW, EPS_HIGH, MAX_LEN = 0.2, 0.28, 7


def make_batch(seed: int = 0, batch: int = 6, tokens: int = MAX_LEN):
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(batch, tokens, generator=g, dtype=torch.float64) * 3
    old = logps + 0.3 * torch.randn(batch, tokens, generator=g, dtype=torch.float64)  # ratios well outside the clip
    ref = logps + 0.2 * torch.randn(batch, tokens, generator=g, dtype=torch.float64)
    adv = torch.randn(batch, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, tokens + 1, (batch,), generator=g)
    mask = (torch.arange(tokens)[None, :] < lengths[:, None]).to(torch.float64)
    return logps, old, ref, adv, mask


def naive_loss(logps, old, ref, adv, mask, loss_type, beta, kl_bias_correction, num_items):
    per_seq_sums, per_seq_counts = [], []
    for i in range(len(logps)):
        total, count = 0.0, 0
        for t in range(len(logps[i])):
            if mask[i][t] == 0:
                continue
            r = math.exp(logps[i][t] - old[i][t])
            clipped = min(max(r, 1 - EPS_LOW), 1 + EPS_HIGH)
            term = -min(r * adv[i], clipped * adv[i])
            if beta:
                d = ref[i][t] - logps[i][t]
                kl = math.exp(d) - d - 1
                term += beta * kl * (r if kl_bias_correction else 1.0)
            total += term
            count += 1
        per_seq_sums.append(total)
        per_seq_counts.append(count)
    if loss_type == "grpo":
        return sum(s / c for s, c in zip(per_seq_sums, per_seq_counts, strict=True)) / len(per_seq_sums)
    if loss_type == "bnpo":
        return sum(per_seq_sums) / sum(per_seq_counts)
    if loss_type == "dr_grpo":
        return sum(per_seq_sums) / (len(per_seq_sums) * MAX_LEN)
    return sum(per_seq_sums) / num_items


def ours(logps, old, ref, adv, mask, loss_type, beta, kl_bias_correction, num_items):
    return grpo_loss(
        logps, old, ref if beta else None, adv, mask,
        loss_type=loss_type, beta=beta, epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH,
        max_completion_length=MAX_LEN, num_items_in_batch=num_items, kl_bias_correction=kl_bias_correction,
    )


def trl_loss(logps, old, ref, adv, mask, loss_type, beta, kl_bias_correction, num_items):
    """Run TRL's own _compute_loss on a GRPOTrainer built without __init__, fed our log-probs."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    trainer = object.__new__(GRPOTrainer)
    accelerator = types.SimpleNamespace(
        num_processes=1, sync_gradients=True, gather=lambda x: x, gather_for_metrics=lambda x: x,
        reduce=lambda x, reduction="sum": x,
    )
    attrs = dict(
        model=types.SimpleNamespace(training=True), accelerator=accelerator, loss_type=loss_type, beta=beta,
        epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH, max_completion_length=MAX_LEN, importance_sampling_level="token",
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, use_vllm=False,
        vllm_importance_sampling_correction=False, aux_loss_enabled=False, _entropy_bonus_enabled=False,
        current_gradient_accumulation_steps=1, _metrics={"train": collections.defaultdict(list)},
        args=types.SimpleNamespace(use_bias_correction_kl=kl_bias_correction, delta=None, steps_per_generation=1),
        # The model forward is replaced by the log-probs under test, so gradients flow to them.
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None),
    )
    for name, value in attrs.items():
        object.__setattr__(trainer, name, value)
    batch = logps.shape[0]
    inputs = {
        "prompt_ids": torch.zeros(batch, 1, dtype=torch.long), "prompt_mask": torch.ones(batch, 1),
        "completion_ids": torch.zeros(batch, logps.shape[1], dtype=torch.long), "completion_mask": mask,
        "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
        "num_items_in_batch": torch.tensor(float(num_items), dtype=torch.float64),
    }
    return trainer._compute_loss(None, inputs), trainer._metrics["train"]


CASES = [(lt, beta, bc) for lt in LOSS_TYPES for beta, bc in [(0.0, False), (0.04, False), (0.04, True)]]


@pytest.mark.parametrize(("loss_type", "beta", "kl_bias_correction"), CASES)
def test_loss_matches_naive_per_sequence_loop(loss_type: str, beta: float, kl_bias_correction: bool) -> None:
    logps, old, ref, adv, mask = make_batch()
    num_items = float(mask.sum()) + 11  # the generation batch may hold more tokens than this micro-batch
    got = ours(logps, old, ref, adv, mask, loss_type, beta, kl_bias_correction, num_items)
    want = naive_loss(logps.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(),
                      loss_type, beta, kl_bias_correction, num_items)
    assert float(got) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(("loss_type", "beta", "kl_bias_correction"), CASES)
def test_loss_and_gradient_match_trl(loss_type: str, beta: float, kl_bias_correction: bool) -> None:
    logps, old, ref, adv, mask = make_batch(seed=1)
    num_items = float(mask.sum()) + 5
    values, grads = [], []
    for fn in (ours, lambda *a: trl_loss(*a)[0]):
        leaf = logps.clone().requires_grad_(True)
        loss = fn(leaf, old, ref, adv, mask, loss_type, beta, kl_bias_correction, num_items)
        loss.backward()
        values.append(loss.item())
        grads.append(leaf.grad)
    assert values[0] == pytest.approx(values[1], abs=1e-6)
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=0)
    assert grads[0].abs().sum() > 0


def test_padding_tokens_do_not_change_the_loss() -> None:
    logps, old, ref, adv, mask = make_batch(seed=2)
    garbage = torch.where(mask.bool(), logps, torch.full_like(logps, -50.0))
    for loss_type in LOSS_TYPES:
        a = ours(logps, old, ref, adv, mask, loss_type, 0.04, False, 30.0)
        b = ours(garbage, old, ref, adv, mask, loss_type, 0.04, False, 30.0)
        assert float(a) == pytest.approx(float(b), abs=1e-12)


def test_on_policy_gradient_is_minus_advantage_per_token() -> None:
    logps, _, _, adv, mask = make_batch(seed=3)
    leaf = logps.clone().requires_grad_(True)
    grpo_loss(leaf, logps, None, adv, mask, loss_type="dapo", beta=0.0, epsilon_low=EPS_LOW,
              epsilon_high=EPS_HIGH, max_completion_length=MAX_LEN).backward()
    assert torch.allclose(leaf.grad, -adv[:, None] * mask / mask.sum())


def test_kl_needs_reference_logps() -> None:
    logps, old, _, adv, mask = make_batch()
    with pytest.raises(ValueError, match="ref_per_token_logps"):
        grpo_loss(logps, old, None, adv, mask, loss_type="grpo", beta=0.1, epsilon_low=0.2, epsilon_high=0.2,
                  max_completion_length=MAX_LEN)


def test_loss_stats_match_trl_clip_and_kl_metrics() -> None:
    logps, old, ref, adv, mask = make_batch(seed=4)
    _, metrics = trl_loss(logps, old, ref, adv, mask, "bnpo", 0.04, False, 1.0)
    stats = loss_stats(logps, old, ref, adv, mask, epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH)
    assert 0 < stats.clip_fraction < 1
    assert stats.clip_fraction == pytest.approx(metrics["clip_ratio/region_mean"][0], abs=1e-9)
    assert stats.kl_mean == pytest.approx(metrics["kl"][0], abs=1e-9)


def test_unknown_loss_type_is_an_error() -> None:
    logps, old, _, adv, mask = make_batch()
    with pytest.raises(ValueError, match="loss_type"):
        grpo_loss(logps, old, None, adv, mask, loss_type="ppo", beta=0.0, epsilon_low=0.2, epsilon_high=0.2,
                  max_completion_length=MAX_LEN)  # type: ignore[arg-type]
