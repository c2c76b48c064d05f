"""The driver's side of a GRPO update: which groups count, the learning rate, the per-step metrics.

    rewards (B,) -> group advantages (B,), once over the full batch          trainer/learner_group.py
    -> per rank, per micro-batch: clipped surrogate against the sampling
       log-probs (+ k3 KL to the reference) -> backward -> AdamW step         trainer/learner_rank.py
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
from trainer.pipeline import Group


@dataclass
class UpdateResult:
    loss: float
    kl: float
    clip_fraction: float
    ratio_mean: float
    groups_kept: int
    grad_norm: float
    rollout_probs_diff_mean: float | None = None
    rollout_probs_diff_max: float | None = None
    """|exp(logp_engine) - exp(logp_learner)| over the completion tokens the current weights generated
    (verl's names): 0 up to float rounding when the engine samples from the learner's policy."""


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


def step_advantages(groups: list[Group], cfg: GRPOConfig, step_seed: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """-> (advantages (B,), keep (B,) bool, groups kept): computed once over the full batch, of the
    groups dynamic sampling keeps (the others are outside the loss), rows in the order of `groups`."""
    g = cfg.group_size
    kept = informative_groups(groups) if cfg.dynamic_sampling else list(range(len(groups)))
    advantages = torch.zeros(len(groups) * g)  # (B,)
    keep = torch.zeros(len(groups) * g, dtype=torch.bool)  # (B,)
    if kept:
        rewards = batch_rewards([groups[i] for i in kept])
        if cfg.shuffle_rewards:
            rewards = shuffled(rewards, step_seed)
        rows = torch.tensor([i * g + j for i in kept for j in range(g)])
        advantages[rows] = group_advantages(rewards, g, cfg.scale_rewards).float()
        keep[rows] = True
    return advantages, keep, len(kept)


def learning_rate(cfg: GRPOConfig, step: int) -> float:
    """Linear warm-up, then constant or cosine decay to min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - 1 - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


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
    audited: dict[str, list[float]] = {}
    for s in scores:
        for name, result in s.components.items():
            if result.audit is not None:
                audited.setdefault(name, []).append(float(result.audit_disagrees))
    for name, disagreements in sorted(audited.items()):
        # Share of this step's audited samples where an independent check disputes the verdict
        out[f"audit/{name}_disagreement"] = _mean(disagreements)
        out[f"audit/{name}_audited"] = len(disagreements)
    for task, values in sorted(by_task.items()):
        out[f"accuracy/{task}"] = _mean(values)
    return out


def audit_examples(groups: list[Group], step: int) -> list[dict[str, Any]]:
    """This step's disputed verdicts, one row each, for OUTPUT/audit.jsonl."""
    return [
        {"step": step, "prompt_id": g.prompt.id, "verifier": name, "verdict": r.verdict.value,
         "audit": r.audit.value, "gold": g.prompt.answer, "answer": r.answer, "detail": r.detail}
        for g in groups
        for s in g.scores
        for name, r in s.components.items()
        if r.audit_disagrees and r.audit is not None
    ]
