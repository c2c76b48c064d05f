"""The learner step on a GPU: a random-initialised ~0.5B Qwen2-configuration model (Qwen2.5-0.5B's
shape), synthetic prompts and completions of realistic length, a few updates per setting.

    python bench/gpu_learner.py [--rows 16] [--prompt-tokens 512] [--completion-tokens 1024]
                                [--micro-batch-tokens 8192] [--steps 3]
    python bench/gpu_learner.py --smoke      # the same code path on CPU with a tiny model (a test runs it)

Needs only torch and transformers (and this repository): no Ray, no verifiers. The step is the
learner rank's own (trainer/learner_rank.py: FSDP2 at world size 1, micro-batches, the dapo loss,
AdamW). Prints, for fp32 and bf16 (fp32 master weights), each with and without gradient
checkpointing: seconds per step, tokens/s and peak GPU memory, and bf16's speed-up over fp32.
Without a CUDA GPU it prints one line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QWEN2_5_0_5B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                    num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                    tie_word_embeddings=True)
TINY = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
SETTINGS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def synthetic_rows(vocab: int, rows: int, prompt_tokens: int, completion_tokens: int, seed: int) -> list:
    import torch

    from trainer.learner_rank import Row

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(rows):
        prompt = torch.randint(1, vocab, (prompt_tokens,), generator=g).tolist()
        completion = torch.randint(1, vocab, (completion_tokens,), generator=g).tolist()
        old = (-torch.rand(completion_tokens, generator=g) * 10).tolist()
        out.append(Row(tuple(prompt), tuple(completion), tuple(old)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16, help="sequences per step (a GRPO step's share of one GPU)")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--completion-tokens", type=int, default=1024)
    parser.add_argument("--micro-batch-tokens", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=3, help="measured updates per setting (after one warm-up)")
    parser.add_argument("--smoke", action="store_true", help="tiny model, short rows, on CPU: the code path only")
    args = parser.parse_args(argv)

    import torch
    import torch.distributed as dist
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from trainer.config import GRPOConfig, LearnerConfig
    from trainer.learner_rank import LearnerRank, init_process_group

    if args.smoke:
        shape, device = TINY, "cpu"
        args.rows, args.prompt_tokens, args.completion_tokens, args.micro_batch_tokens, args.steps = 4, 8, 16, 48, 1
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        print("gpu_learner: skipped, no CUDA GPU on this machine (--smoke runs the code path on CPU)")
        return 0
    else:
        shape, device = QWEN2_5_0_5B, "cuda"
    init_process_group(torch.device("cuda", 0) if device == "cuda" else torch.device("cpu"))
    config = Qwen2Config(**shape, pad_token_id=0, eos_token_id=1, bos_token_id=None)
    torch.manual_seed(0)
    weights = Qwen2ForCausalLM(config).state_dict()
    params = sum(v.numel() for k, v in weights.items() if k != "lm_head.weight")
    rows = synthetic_rows(config.vocab_size, args.rows, args.prompt_tokens, args.completion_tokens, seed=0)
    tokens = args.rows * (args.prompt_tokens + args.completion_tokens)
    grpo = GRPOConfig(loss_type="dapo", max_completion_tokens=args.completion_tokens, learning_rate=1e-6)
    advantages = torch.randn(args.rows, generator=torch.Generator().manual_seed(1)).tolist()
    print(f"model {params:,} parameters on {device}; step = {args.rows} x ({args.prompt_tokens} + "
          f"{args.completion_tokens}) tokens in micro-batches of <= {args.micro_batch_tokens}")
    print(f"{'precision':>9} {'grad ckpt':>9} {'s/step':>8} {'tokens/s':>10} {'peak GiB':>9} {'loss':>10}")
    results = {}
    for precision, checkpointing in SETTINGS:
        learner = LearnerConfig(micro_batch_tokens=args.micro_batch_tokens, precision=precision,
                                gradient_checkpointing=checkpointing, device=device)
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        rank = LearnerRank(config, weights, None, grpo, learner, pad_id=0)
        times, loss = [], float("nan")
        for step in range(args.steps + 1):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            rank.prepare(rows)
            loss = rank.update(advantages, [True] * args.rows, grpo.learning_rate).loss
            if device == "cuda":
                torch.cuda.synchronize()
            if step:  # the first update allocates the optimizer state and warms the kernels
                times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        step_s = sum(times) / len(times)
        results[(precision, checkpointing)] = step_s
        print(f"{precision:>9} {'on' if checkpointing else 'off':>9} {step_s:>8.3f} {tokens / step_s:>10.0f} "
              f"{peak:>9.2f} {loss:>10.4f}")
        del rank
    for checkpointing in (False, True):
        print(f"bf16 speed-up over fp32 (grad ckpt {'on' if checkpointing else 'off'}): "
              f"{results[('fp32', checkpointing)] / results[('bf16', checkpointing)]:.2f}x")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
