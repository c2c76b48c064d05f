"""One GRPO step's data for the learner parity tests, and the plain whole-batch step to compare with."""

from __future__ import annotations

import copy

import torch

from trainer.config import GRPOConfig
from trainer.learner_rank import Row
from trainer.loss import grpo_loss
from trainer.policy import Batch, completion_logps, pad_completions, pad_prompts


def prompt_text(i: int) -> str:
    """Prompts of a few lengths."""
    return f"What is {i % 5}+{(i * 3) % 5}?" + " pad" * (i % 3)


def make_rows(tok, model, n: int = 12, seed: int = 0, group_size: int = 1) -> tuple[list[Row], list[float]]:
    """Prompts (one per group of `group_size` rows) and completions of varied lengths; old log-probs
    off the current ones so that ratios clip."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        prompt = tok(prompt_text(i // group_size), add_special_tokens=False)["input_ids"]
        length = int(torch.randint(1, 15, (1,), generator=g))
        completion = torch.randint(3, len(tok), (length,), generator=g).tolist()
        rows.append(Row(tuple(prompt), tuple(completion), ()))
    batch = whole_batch(tok, rows)
    with torch.no_grad():
        current = completion_logps(model, batch)
    noisy = current + 0.3 * torch.randn(current.shape, generator=g)
    rows = [Row(r.prompt_ids, r.completion_ids, tuple(noisy[i, : len(r.completion_ids)].tolist()))
            for i, r in enumerate(rows)]
    advantages = torch.randn(n, generator=g).tolist()
    return rows, advantages


def whole_batch(tok, rows: list[Row]) -> Batch:
    prompt_ids, prompt_mask = pad_prompts([list(r.prompt_ids) for r in rows], tok.pad_token_id)
    completion_ids, completion_mask = pad_completions([list(r.completion_ids) for r in rows], tok.pad_token_id)
    return Batch(prompt_ids, prompt_mask, completion_ids, completion_mask)


def reference_step(model, ref, tok, rows, advantages, cfg: GRPOConfig) -> tuple[float, dict[str, torch.Tensor]]:
    """The plain module, the whole batch in one forward pass, the loss of trainer/loss.py as TRL computes it."""
    model = copy.deepcopy(model)
    batch = whole_batch(tok, rows)
    old = torch.zeros(batch.completion_ids.shape)
    for i, r in enumerate(rows):
        old[i, : len(r.old_logps)] = torch.tensor(r.old_logps)
    ref_logps = None
    if cfg.beta:
        with torch.no_grad():
            ref_logps = completion_logps(ref, batch)
    loss = grpo_loss(completion_logps(model, batch), old, ref_logps, torch.tensor(advantages), batch.completion_mask,
                     loss_type=cfg.loss_type, beta=cfg.beta, epsilon_low=cfg.epsilon_low,
                     epsilon_high=cfg.epsilon_high, max_completion_length=cfg.max_completion_tokens)
    loss.backward()
    return loss.item(), {n: p.grad for n, p in model.named_parameters()}


