"""The learner at scale on this machine: peak memory against batch size with micro-batches, and the
cost of publishing weights to the rollouts against parameter count.

    .venv/bin/python bench/bench_learner.py [--memory] [--publish] [--step] [--micro-batch-tokens 2048]

--memory   one learner step (one FSDP2 rank, the tiny default model, the default step's shape:
           25 prompts x 16 completions of 16 tokens) on 1x, 4x and 8x the default batch, each in a
           fresh process; prints the step's peak memory (peak RSS over the RSS before the step)
           with micro_batch_tokens fixed against the whole batch at once (the baseline), and the ratio.
--publish  the full state dict gathered once (get_model_state_dict, full_state_dict + cpu_offload)
           and put in Ray's object store, as every update does, for Qwen2-shaped models of about
           0.1M, 10M and 100M parameters; against the baseline of a plain module's state_dict() copy.
--step     the default step's update (forward, loss, backward, clip, AdamW) by the learner rank
           (FSDP2 at world size 1, as `./scripts/run` trains) against the plain module doing the same
           in one pass (the learner before the learner group), alternated in one process.
With no flag, all three.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# name -> Qwen2 shape (the tokenizer's vocabulary); about 0.1M, 10M, 100M parameters
SHAPES = {
    "0.1M": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    "10M": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=10, num_attention_heads=4,
                num_key_value_heads=2),
    "100M": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 num_key_value_heads=4),
}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _default_step_rows(tokenizer, multiple: int) -> list:
    """The default step's shape: prompts of the shipped file, completions of max_completion_tokens."""
    import random

    from trainer.config import load_config, resolve_path
    from trainer.data import load_prompts
    from trainer.learner_rank import Row

    cfg = load_config()
    prompts = load_prompts(resolve_path(cfg.data.prompts))
    rng = random.Random(0)
    rows = []
    for _ in range(cfg.grpo.prompts_per_step * multiple):
        ids = tuple(tokenizer(rng.choice(prompts).prompt, add_special_tokens=False)["input_ids"])
        for _ in range(cfg.grpo.group_size):
            completion = tuple(rng.randrange(3, len(tokenizer)) for _ in range(cfg.grpo.max_completion_tokens))
            rows.append(Row(ids, completion, tuple(-rng.random() * 4 for _ in completion)))
    return rows


def _memory_of_one_step(multiple: int, micro_batch_tokens: int | None) -> tuple[float, int]:
    """In a fresh process: the peak memory of one learner step over the memory before it -> (MiB, rows)."""
    import torch

    from trainer.config import GRPOConfig, LearnerConfig, TinyModelConfig
    from trainer.learner_rank import LearnerRank, init_process_group
    from trainer.tiny import build_model, build_tokenizer

    torch.set_num_threads(1)
    init_process_group(torch.device("cpu"))
    tok = build_tokenizer()
    model = build_model(TinyModelConfig(), tok, seed=0)
    rank = LearnerRank(model.config, model.state_dict(), None, GRPOConfig(), LearnerConfig(
        micro_batch_tokens=micro_batch_tokens, device="cpu"), tok.pad_token_id)
    rows = _default_step_rows(tok, multiple)
    advantages = [float(i % 3 - 1) for i in range(len(rows))]
    rank.prepare(rows[:16])  # a first small step: the optimizer state and the allocator's arenas exist
    rank.update(advantages[:16], [True] * 16, 1e-4)
    before = _rss_mib()
    rank.prepare(rows)
    rank.update(advantages, [True] * len(rows), 1e-4)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak - before, len(rows)


def bench_memory(micro_batch_tokens: int) -> None:
    spawn = multiprocessing.get_context("spawn")
    print(f"learner peak memory of one step (MiB over the memory before it), micro_batch_tokens={micro_batch_tokens}")
    print(f"{'batch':>6} {'rows':>6} {'whole batch':>12} {'micro-batches':>14} {'ratio':>6}")
    for multiple in (1, 4, 8):
        with spawn.Pool(1, maxtasksperchild=1) as pool:
            whole, rows = pool.apply(_memory_of_one_step, (multiple, None))
        with spawn.Pool(1, maxtasksperchild=1) as pool:
            micro, _ = pool.apply(_memory_of_one_step, (multiple, micro_batch_tokens))
        print(f"{multiple:>5}x {rows:>6} {whole:>12.0f} {micro:>14.0f} {micro / whole:>6.2f}")


def _publish_seconds(shape: dict, repeats: int) -> tuple[int, float, float]:
    """In a fresh process: (parameters, s per FSDP2 gather + ray.put, s per plain state_dict copy + ray.put)."""
    import ray
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from trainer.config import GRPOConfig, LearnerConfig
    from trainer.learner_rank import LearnerRank, init_process_group
    from trainer.tiny import build_tokenizer

    torch.set_num_threads(1)
    ray.init(address="local", num_cpus=1, include_dashboard=False, configure_logging=False, log_to_driver=False,
             object_store_memory=2 * 2**30)
    try:
        tok = build_tokenizer()
        config = Qwen2Config(vocab_size=len(tok), max_position_embeddings=128, tie_word_embeddings=True,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None, **shape)
        model = Qwen2ForCausalLM(config)
        params = sum(p.numel() for p in model.parameters())
        init_process_group(torch.device("cpu"))
        rank = LearnerRank(config, model.state_dict(), None, GRPOConfig(), LearnerConfig(device="cpu"), 0)

        def timed(publish) -> float:
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                ref = publish()
                times.append(time.perf_counter() - start)
                del ref
            return statistics.median(times)

        gathered = timed(lambda: ray.put(rank.full_state_dict()))
        plain = timed(lambda: ray.put({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}))
        return params, gathered, plain
    finally:
        ray.shutdown()


def bench_publish(repeats: int) -> None:
    spawn = multiprocessing.get_context("spawn")
    print("publishing weights once per version (median of", repeats, "runs)")
    print(f"{'model':>6} {'parameters':>11} {'gather+put s':>13} {'plain copy+put s':>17} {'ratio':>6} {'MB/s':>7}")
    for name, shape in SHAPES.items():
        with spawn.Pool(1, maxtasksperchild=1) as pool:
            params, gathered, plain = pool.apply(_publish_seconds, (shape, repeats))
        print(f"{name:>6} {params:>11,} {gathered:>13.4f} {plain:>17.4f} {gathered / plain:>6.2f} "
              f"{params * 4 / 1e6 / gathered:>7.0f}")


def bench_step(repeats: int) -> None:
    import torch

    from trainer.config import GRPOConfig, LearnerConfig, TinyModelConfig
    from trainer.learner_rank import LearnerRank, init_process_group
    from trainer.loss import grpo_loss
    from trainer.policy import Batch, completion_logps, pad_completions, pad_prompts
    from trainer.tiny import build_model, build_tokenizer

    torch.set_num_threads(1)
    init_process_group(torch.device("cpu"))
    tok = build_tokenizer()
    model = build_model(TinyModelConfig(), tok, seed=0)
    cfg = GRPOConfig()
    rank = LearnerRank(model.config, model.state_dict(), None, cfg, LearnerConfig(device="cpu"), tok.pad_token_id)
    rows = _default_step_rows(tok, 1)
    advantages = [float(i % 3 - 1) for i in range(len(rows))]
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)

    def plain() -> None:
        prompt_ids, prompt_mask = pad_prompts([list(r.prompt_ids) for r in rows], tok.pad_token_id)
        completion_ids, completion_mask = pad_completions([list(r.completion_ids) for r in rows], tok.pad_token_id)
        batch = Batch(prompt_ids, prompt_mask, completion_ids, completion_mask)
        old = torch.tensor([list(r.old_logps) for r in rows])
        loss = grpo_loss(completion_logps(model, batch), old, None, torch.tensor(advantages), completion_mask,
                         loss_type=cfg.loss_type, beta=0.0, epsilon_low=cfg.epsilon_low,
                         epsilon_high=cfg.epsilon_high, max_completion_length=cfg.max_completion_tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()

    def sharded() -> None:
        rank.prepare(rows)
        rank.update(advantages, [True] * len(rows), cfg.learning_rate)

    times: dict[str, list[float]] = {"plain": [], "rank": []}
    for i in range(repeats + 1):
        for name, step in (("plain", plain), ("rank", sharded)):
            start = time.perf_counter()
            step()
            if i:  # the first of each allocates the optimizer state
                times[name].append(time.perf_counter() - start)
    p, r = statistics.median(times["plain"]), statistics.median(times["rank"])
    print(f"default step's update ({len(rows)} rows), median of {repeats}: plain module {p:.3f} s, "
          f"learner rank (FSDP2, world size 1) {r:.3f} s, ratio {r / p:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--step", action="store_true")
    parser.add_argument("--micro-batch-tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    every = not (args.memory or args.publish or args.step)
    if args.memory or every:
        bench_memory(args.micro_batch_tokens)
    if args.publish or every:
        bench_publish(args.repeats)
    if args.step or every:
        bench_step(4 * args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
