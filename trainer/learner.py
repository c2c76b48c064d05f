"""One GRPO update from a scored batch, and the per-step metrics.

    completions -> logps of the current policy (B, T) (+ of the reference)     `policy_forward`: needs no rewards
    rewards (B,) -> group advantages (B,)
    -> clipped surrogate against the sampling log-probs (+ k3 KL to the reference) -> AdamW step   `grpo_update`
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Any

import torch

from rewards.types import Verdict
from trainer.advantages import group_advantages
from trainer.config import GRPOConfig
from trainer.loss import grpo_loss, loss_stats
from trainer.pipeline import Group
from trainer.policy import completion_logps, make_batch
from trainer.rollout import Completion


@dataclass
class UpdateResult:
    loss: float
    kl: float
    clip_fraction: float
    ratio_mean: float
    groups_kept: int
    grad_norm: float


def batch_rewards(groups: list[Group]) -> list[float | None]:
    return [s.reward for g in groups for s in g.scores]


def shuffled(rewards: list[float | None], seed: int) -> list[float | None]:
    out = list(rewards)
    random.Random(seed).shuffle(out)
    return out


def informative_groups(groups: list[Group]) -> list[int]:
    """DAPO dynamic sampling: the indices of the groups whose scored rewards do not all agree (the
    others have zero advantage everywhere)."""
    return [i for i, g in enumerate(groups) if len({s.reward for s in g.scores if s.reward is not None}) > 1]


def learning_rate(cfg: GRPOConfig, step: int) -> float:
    """Linear warm-up, then constant or cosine decay to min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - 1 - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


@dataclass
class PolicyForward:
    """The current policy's log-probs of a step's completions, with the graph for the backward pass."""

    logps: torch.Tensor  # (B, T)
    old_logps: torch.Tensor  # (B, T) from the generating policy; padding positions are 0 and masked out
    ref_logps: torch.Tensor | None  # (B, T)
    mask: torch.Tensor  # (B, T)

    def rows(self, index: torch.Tensor) -> PolicyForward:
        ref = None if self.ref_logps is None else self.ref_logps[index]
        return PolicyForward(self.logps[index], self.old_logps[index], ref, self.mask[index])


def policy_forward(model: Any, ref_model: Any | None, tokenizer: Any, completions: list[Completion],
                   cfg: GRPOConfig) -> PolicyForward:
    """The forward passes of an update; they need no rewards, so they can run while scoring finishes."""
    batch = make_batch(tokenizer, [c.prompt.prompt for c in completions], [list(c.token_ids) for c in completions])
    old_logps = torch.zeros(batch.completion_ids.shape)  # (B, T)
    for i, c in enumerate(completions):
        old_logps[i, : len(c.logps)] = torch.tensor(c.logps)
    model.train()
    logps = completion_logps(model, batch, cfg.temperature)  # (B, T)
    ref_logps = None
    if cfg.beta != 0.0 and ref_model is not None:
        with torch.no_grad():
            ref_logps = completion_logps(ref_model, batch, cfg.temperature)  # (B, T)
    return PolicyForward(logps, old_logps, ref_logps, batch.completion_mask)


def grpo_update(
    model: Any,
    optimizer: torch.optim.Optimizer,
    forward: PolicyForward,
    groups: list[Group],
    cfg: GRPOConfig,
    step: int,
    step_seed: int,
) -> UpdateResult:
    """`forward` holds the rows of `groups`' completions in order (group i: rows i*G .. i*G+G-1)."""
    if cfg.dynamic_sampling:
        kept = informative_groups(groups)
        forward = forward.rows(torch.tensor([i * cfg.group_size + j for i in kept for j in range(cfg.group_size)],
                                            dtype=torch.long))
        groups = [groups[i] for i in kept]
    if not groups:  # nothing to learn from this step: the weights stay, the step still counts
        return UpdateResult(0.0, 0.0, 0.0, 1.0, 0, 0.0)
    rewards = batch_rewards(groups)
    if cfg.shuffle_rewards:
        rewards = shuffled(rewards, step_seed)
    advantages = group_advantages(rewards, cfg.group_size, cfg.scale_rewards).float()  # (B,)
    loss = grpo_loss(
        forward.logps, forward.old_logps, forward.ref_logps, advantages, forward.mask,
        loss_type=cfg.loss_type, beta=cfg.beta, epsilon_low=cfg.epsilon_low, epsilon_high=cfg.epsilon_high,
        max_completion_length=cfg.max_completion_tokens, num_items_in_batch=forward.mask.sum(),
        kl_bias_correction=cfg.kl_bias_correction,
    )
    for group in optimizer.param_groups:  # a pure function of the step, so resuming needs no scheduler state
        group["lr"] = learning_rate(cfg, step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    optimizer.step()
    stats = loss_stats(forward.logps.detach(), forward.old_logps, forward.ref_logps, advantages, forward.mask,
                       epsilon_low=cfg.epsilon_low, epsilon_high=cfg.epsilon_high)
    return UpdateResult(loss.item(), stats.kl_mean, stats.clip_fraction, stats.ratio_mean, len(groups),
                        float(grad_norm))


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def reward_metrics(groups: list[Group], version: int, primary: dict[str, str]) -> dict[str, Any]:
    """Reward, per-component, accuracy (the task's primary verifier said CORRECT; overall and
    `accuracy/<task>` per task), format, staleness."""
    scores = [s for g in groups for s in g.scores]
    completions = [c for g in groups for c in g.completions]
    components: dict[str, list[float]] = {}
    for s in scores:
        for name, result in s.components.items():
            if result.score is not None:
                components.setdefault(name, []).append(result.score)
    correct = []
    by_task: dict[str, list[float]] = {}
    for g in groups:
        verifier = primary[g.prompt.task]
        for s in g.scores:
            result = s.components.get(verifier)
            correct.append(float(result is not None and result.verdict is Verdict.CORRECT))
            by_task.setdefault(g.prompt.task, []).append(correct[-1])
    out: dict[str, Any] = {
        "reward_mean": _mean([s.reward for s in scores if s.reward is not None]),
        "accuracy_mean": _mean(correct),
        "format_mean": _mean(components.get("format", [])),
        "reward_faults": sum(1 for s in scores if s.verdict.is_fault),
        "completion_length_mean": _mean([float(len(c.token_ids)) for c in completions]),
        "policy_staleness": _mean([float(version - c.policy_version) for c in completions]),
    }
    for name, values in sorted(components.items()):
        out[f"reward/{name}"] = _mean(values)
    for task, values in sorted(by_task.items()):
        out[f"accuracy/{task}"] = _mean(values)
    return out
