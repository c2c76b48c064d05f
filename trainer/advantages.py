"""Group-relative advantages (GRPO): each reward is compared with its group's other samples.

    A_i = (r_i - mean(r_group)) / (std + 1e-4)

`scale` follows TRL 1.16's `scale_rewards`: "group" divides by each group's own
std, "batch" by the std of the whole batch (less noisy for small groups), "none"
only centres (Dr. GRPO). Stds are unbiased, as in TRL's `nanstd`.

A reward of None (not applicable, or a verifier fault) has no score to compare:
the sample is left out of every statistic and gets advantage 0, so it neither
pushes nor pulls the policy. Rewards come as a list[float | None] or a float
tensor with NaN standing for None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

Scale = Literal["group", "batch", "none"]
EPS = 1e-4  # TRL's constant: a group whose rewards all agree gets advantage 0, not a division by 0


def as_reward_tensor(rewards: Sequence[float | None] | torch.Tensor) -> torch.Tensor:
    """list[float | None] -> float64 tensor with NaN for None; a tensor is passed through."""
    if isinstance(rewards, torch.Tensor):
        return rewards
    return torch.tensor([float("nan") if r is None else float(r) for r in rewards], dtype=torch.float64)


def _nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Unbiased std over the non-NaN entries (NaN when fewer than two)."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim)
    sq = torch.nansum((x - mean) ** 2, dim=dim)
    return torch.sqrt(sq / (count - 1))


def group_advantages(
    rewards: Sequence[float | None] | torch.Tensor, group_size: int, scale: Scale = "group"
) -> torch.Tensor:
    """rewards (B,) grouped in consecutive runs of `group_size` -> advantages (B,), 0 where reward is None."""
    r = as_reward_tensor(rewards)  # (B,)
    if r.dim() != 1 or r.numel() % group_size:
        raise ValueError(f"rewards: expected a flat batch divisible by group_size={group_size}, got {tuple(r.shape)}")
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale: expected 'group', 'batch' or 'none', got {scale!r}")
    valid = ~torch.isnan(r)  # (B,)
    grouped = r.view(-1, group_size)  # (num_groups, G)
    mean = torch.nanmean(grouped, dim=1, keepdim=True)  # (num_groups, 1), NaN for an all-None group
    centred = (grouped - mean).view(-1)  # (B,)
    if scale == "group":
        std = _nanstd(grouped, dim=1).repeat_interleave(group_size)  # (B,)
    elif scale == "batch":
        std = _nanstd(r).expand_as(r)  # (B,)
    if scale != "none":
        # A lone scored sample has no spread (NaN std) and nothing to be relative to: advantage 0.
        centred = centred / (torch.nan_to_num(std, nan=0.0) + EPS)
    return torch.where(valid, centred, torch.zeros_like(centred))
