"""Group-relative advantages against a naive loop and TRL 1.16's formula."""

from __future__ import annotations

import math
import random
import statistics

import pytest
import torch

from trainer.advantages import group_advantages


def naive(rewards: list[float | None], group_size: int, scale: str) -> list[float]:
    out: list[float] = []
    batch_scored = [r for r in rewards if r is not None]
    batch_std = statistics.stdev(batch_scored) if len(batch_scored) > 1 else 0.0
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        scored = [r for r in group if r is not None]
        mean = sum(scored) / len(scored) if scored else 0.0
        std = statistics.stdev(scored) if len(scored) > 1 else 0.0
        for r in group:
            if r is None:
                out.append(0.0)
            elif scale == "none":
                out.append(r - mean)
            else:
                out.append((r - mean) / ((std if scale == "group" else batch_std) + 1e-4))
    return out


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_match_naive_loop(scale: str) -> None:
    rng = random.Random(0)
    for _ in range(20):
        g = rng.choice([2, 4, 8])
        rewards = [None if rng.random() < 0.15 else rng.choice([0.0, 1.0, 2.0, rng.random()]) for _ in range(g * 5)]
        got = group_advantages(rewards, g, scale).tolist()
        assert got == pytest.approx(naive(rewards, g, scale), abs=1e-9)


def test_none_rewards_get_zero_advantage_and_leave_group_statistics() -> None:
    with_none = group_advantages([1.0, 0.0, None, 1.0], 4)
    without = group_advantages([1.0, 0.0, 1.0], 3)
    assert with_none[2] == 0.0
    assert with_none[[0, 1, 3]].tolist() == pytest.approx(without.tolist())


def test_nan_tensor_is_the_same_as_none() -> None:
    as_list = group_advantages([0.5, None, 1.0, 0.0], 2)
    as_tensor = group_advantages(torch.tensor([0.5, math.nan, 1.0, 0.0], dtype=torch.float64), 2)
    assert as_tensor.tolist() == pytest.approx(as_list.tolist())


def test_group_whose_rewards_agree_gets_zero_advantage() -> None:
    assert group_advantages([1.0, 1.0, 1.0, 1.0, None, None], 3).tolist() == [0.0] * 6


def test_advantages_match_trl_sum_then_normalize_formula() -> None:
    # TRL 1.16 GRPOTrainer._generate_and_score_completions (multi_objective_aggregation="sum_then_normalize"):
    # NaN-aware group mean, trl.trainer.utils.nanstd for the std, advantage 0 for unscorable rows.
    from trl.trainer.utils import nanstd

    rewards = torch.tensor([1.0, 0.0, 2.0, math.nan, 0.5, 0.5, 1.5, 0.0], dtype=torch.float64)
    g = 4
    mean = torch.nanmean(rewards.view(-1, g), dim=1).repeat_interleave(g)
    for scale in ("group", "batch", "none"):
        std = nanstd(rewards.view(-1, g), dim=1).repeat_interleave(g) if scale == "group" else nanstd(rewards)
        trl = rewards - mean
        if scale != "none":
            trl = trl / (std + 1e-4)
        trl = torch.nan_to_num(trl, nan=0.0)
        # 1e-6, not exact: TRL's nanstd forms its count/(count - 1) correction in float32.
        assert group_advantages(rewards, g, scale).tolist() == pytest.approx(trl.tolist(), rel=1e-6, abs=1e-9)


def test_batch_not_divisible_by_group_is_an_error() -> None:
    with pytest.raises(ValueError, match="group_size"):
        group_advantages([1.0, 0.0, 1.0], 2)


def _group(rewards: list[float | None]):
    from rewards.compose import ScoredSample
    from rewards.types import Verdict
    from trainer.data import PromptItem
    from trainer.pipeline import Group

    scores = [ScoredSample("x", r, Verdict.ERROR if r is None else Verdict.CORRECT) for r in rewards]
    return Group(PromptItem("p", "What is 1+1?", "2", "math"), [], scores)


def test_dynamic_sampling_drops_groups_without_reward_spread() -> None:
    from trainer.learner import informative_groups

    groups = [_group([1.0, 1.0, 1.0]), _group([1.0, 0.0, None]), _group([0.0, None, 0.0])]
    assert informative_groups(groups) == [1]


def test_shuffled_rewards_are_a_permutation() -> None:
    from trainer.learner import shuffled

    rewards = [0.0, 1.0, 2.0, None, 4.0, 5.0]
    out = shuffled(rewards, seed=3)
    assert out != rewards and sorted(map(str, out)) == sorted(map(str, rewards))
