"""The GRPO objective: PPO's clipped surrogate on group-relative advantages, plus an optional k3 KL.

Per completion token t of sequence i (all tensors are (B, T): batch, completion tokens)

    r      = exp(logp - old_logp)                       importance ratio to the generating policy
    pg     = -min(r A_i, clip(r, 1 - eps_low, 1 + eps_high) A_i)
    kl     = exp(ref - logp) - (ref - logp) - 1         k3 estimator (Schulman), times r if bias-corrected
    loss_t = pg + beta * kl

aggregated over the active tokens (completion_mask) by `loss_type`, as TRL 1.16 does:
    grpo     mean over sequences of each sequence's token mean (the DeepSeekMath paper)
    bnpo     token mean over the batch
    dr_grpo  token sum / (B * max_completion_length)  (Dr. GRPO: no length bias)
    dapo     token sum / num_items_in_batch, the active tokens of the whole generation batch

Every one is a sum over tokens or sequences divided by a normaliser of the batch. Given the
`StepTotals` of the whole step, the loss of any part of it (a micro-batch, one rank's share) is
that part's sum over the step's normaliser, so the parts' losses and gradients add up exactly to
the whole step's: this is how micro-batches and learner ranks reproduce the single-batch update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]


@dataclass(frozen=True)
class StepTotals:
    """The normalisers of a whole step, for the loss of a part of it."""

    sequences: float
    """Completions in the step (grpo's mean over sequences, dr_grpo's batch size)."""
    tokens: float
    """Active completion tokens in the step (bnpo's and dapo's normaliser)."""


def _k3_kl(ref_per_token_logps: torch.Tensor, per_token_logps: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || ref) per token: exp(ref - logp) - (ref - logp) - 1 -> (B, T)."""
    delta = ref_per_token_logps - per_token_logps  # (B, T)
    return torch.exp(delta) - delta - 1


def _per_token_terms(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    ref_per_token_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    beta: float,
    epsilon_low: float,
    epsilon_high: float,
    kl_bias_correction: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """-> (per-token loss (B, T), ratio (B, T), per-token KL (B, T) or None)."""
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages  # (B, 1)
    ratio = torch.exp(per_token_logps - old_per_token_logps)  # (B, T)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)  # (B, T)
    loss = -torch.min(ratio * adv, clipped * adv)  # (B, T)
    kl = None
    if beta != 0.0:
        if ref_per_token_logps is None:
            raise ValueError("ref_per_token_logps: required when beta != 0")
        kl = _k3_kl(ref_per_token_logps, per_token_logps)  # (B, T)
        if kl_bias_correction:
            kl = kl * ratio
        loss = loss + beta * kl
    return loss, ratio, kl


def grpo_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    ref_per_token_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    loss_type: LossType,
    beta: float,
    epsilon_low: float,
    epsilon_high: float,
    max_completion_length: int,
    num_items_in_batch: float | torch.Tensor | None = None,
    kl_bias_correction: bool = False,
    totals: StepTotals | None = None,
) -> torch.Tensor:
    """Scalar loss to minimise. logps (B, T), advantages (B,), completion_mask (B, T) of 0/1.

    `totals`: the normalisers of the whole step when this batch is a part of it (default: this
    batch is the step, every row a sequence)."""
    per_token, _, _ = _per_token_terms(
        per_token_logps, old_per_token_logps, ref_per_token_logps, advantages,
        beta, epsilon_low, epsilon_high, kl_bias_correction,
    )
    mask = completion_mask.to(per_token.dtype)  # (B, T)
    masked = per_token * mask  # (B, T)
    sequences = per_token.size(0) if totals is None else totals.sequences
    tokens = mask.sum() if totals is None else torch.tensor(totals.tokens, dtype=mask.dtype)
    if loss_type == "grpo":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / max(sequences, 1)
    if loss_type == "bnpo":
        return masked.sum() / tokens.clamp(min=1.0)
    if loss_type == "dr_grpo":
        return masked.sum() / (max(sequences, 1) * max_completion_length)
    if loss_type == "dapo":
        total = tokens if num_items_in_batch is None else torch.as_tensor(num_items_in_batch, dtype=mask.dtype)
        return masked.sum() / total.clamp(min=1.0)
    raise ValueError(f"loss_type: expected grpo, bnpo, dr_grpo or dapo, got {loss_type!r}")


@dataclass(frozen=True)
class LossStats:
    """Token means over the active tokens, for logging."""

    kl_mean: float
    clip_fraction: float
    """Share of tokens whose ratio left the clip range in the direction the advantage pushes."""
    ratio_mean: float


@torch.no_grad()
def loss_stats(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    ref_per_token_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    epsilon_low: float,
    epsilon_high: float,
    totals: StepTotals | None = None,
) -> LossStats:
    """Means over this batch's active tokens, or its share of the step's means given the step's `totals`."""
    mask = completion_mask.to(per_token_logps.dtype)  # (B, T)
    n = (mask.sum() if totals is None else torch.tensor(totals.tokens, dtype=mask.dtype)).clamp(min=1.0)
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages  # (B, 1)
    ratio = torch.exp(per_token_logps - old_per_token_logps)  # (B, T)
    clipped = ((ratio < 1 - epsilon_low) & (adv < 0)) | ((ratio > 1 + epsilon_high) & (adv > 0))  # (B, T)
    kl = 0.0
    if ref_per_token_logps is not None:
        kl = float((_k3_kl(ref_per_token_logps, per_token_logps) * mask).sum() / n)
    return LossStats(
        kl_mean=kl, clip_fraction=float((clipped * mask).sum() / n), ratio_mean=float((ratio * mask).sum() / n)
    )
