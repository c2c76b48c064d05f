"""Supervised fine-tuning on (prompt, completion) pairs: R1's cold start and the step after
rejection sampling. `arbiter sft --data FILE --output DIR` trains on JSONL written by
`arbiter sample`; the tiny default's cold start generates its examples in code.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trainer.policy import completion_logps, limit_threads, make_batch


def sft_train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict[str, str]],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> list[float]:
    """Minimise the completion tokens' negative log-likelihood (EOS included); returns the loss per step."""
    if not examples:
        raise ValueError("sft: no examples")
    rng = random.Random(seed)
    encoded = [
        (ex["prompt"], tokenizer(ex["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        for ex in examples
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        chosen = [rng.choice(encoded) for _ in range(batch_size)]
        batch = make_batch(tokenizer, [p for p, _ in chosen], [c for _, c in chosen])
        logps = completion_logps(model, batch)  # (B, T)
        mask = batch.completion_mask.float()  # (B, T)
        loss = -(logps * mask).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="JSONL of prompt/completion lines (`arbiter sample` output)")
    parser.add_argument("--model", default="tiny", help="checkpoint directory to start from, or 'tiny' (default)")
    parser.add_argument("--output", required=True, help="directory for the fine-tuned checkpoint")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from trainer.config import ModelConfig
    from trainer.data import DataError, load_sft
    from trainer.policy import load_policy

    limit_threads()
    try:
        examples = load_sft(args.data)
        model, tokenizer = load_policy(ModelConfig(init=args.model), args.seed)
    except (DataError, FileNotFoundError, OSError) as exc:
        print(f"arbiter sft: {exc}")
        return 2
    start = time.perf_counter()
    losses = sft_train(model, tokenizer, examples, steps=args.steps, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, seed=args.seed)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.output)
    tokenizer.save_pretrained(args.output)
    print(f"sft: {len(examples)} examples, {args.steps} steps in {time.perf_counter() - start:.1f}s, "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; checkpoint in {args.output}")
    return 0
