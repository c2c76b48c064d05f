"""Weight sync to vLLM engines: seconds per sync against parameter count, object store vs broadcast.

    .venv/bin/python bench/bench_weight_sync.py [--engines 2] [--rounds 3] [--sizes 64x2,256x4,512x8]

For each model size (hidden x layers, Qwen2 with head_dim 64, the tiny config's vocabulary) it starts
`--engines` rollout actors with a vLLM engine (the CPU build here) and times, per round, the two paths of
`rollout.weight_sync`, with this process in learner rank 0's role:

  object_store  ray.put(state dict) + every engine fetching and loading it (measured as a one-token
                chunk with the new version minus the same chunk with weights it already holds)
  broadcast     one gloo broadcast round from this process to every engine, received and loaded
                through vLLM's weight-transfer interface (the group opened once, as in training)

and prints the medians and broadcast's speed-up over the object store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


async def _open(address, workers, specs):
    from trainer.weight_sync import open_group

    joins = [w.join_broadcast.remote(address, i + 1, specs) for i, w in enumerate(workers)]
    group = await asyncio.to_thread(open_group, address, 0)
    await asyncio.gather(*joins)
    return group


async def _broadcast(group, model, specs, workers, version: int) -> None:
    import torch

    from trainer.weight_sync import send

    received = [w.receive_weights.remote(version) for w in workers]
    await asyncio.to_thread(send, group, model.state_dict(), specs, torch.device("cpu"))
    await asyncio.gather(*received)


def measure(hidden: int, layers: int, engines: int, rounds: int) -> tuple[int, float, float]:
    """-> (parameters, median s per object-store sync, median s per broadcast sync)."""
    import ray
    import torch

    from trainer.config import TinyModelConfig
    from trainer.data import PromptItem
    from trainer.rollout import RolloutRequest, publish_weights, start_workers
    from trainer.tiny import build_model, build_tokenizer
    from trainer.weight_sync import free_address, layout

    tok = build_tokenizer()
    cfg = TinyModelConfig(hidden_size=hidden, num_layers=layers, num_heads=hidden // 64,
                          num_kv_heads=max(1, hidden // 128), intermediate_size=4 * hidden)
    model = build_model(cfg, tok, 0)
    probe = RolloutRequest(0, 0, (PromptItem("p", "1+1=", "2", "math"),), 2, 1, 1.0, 0)
    workers = start_workers(engines, 1.0, model, tok, tempfile.mkdtemp(prefix="bench-sync-"), engine="vllm")
    try:
        ray.get([w.ready.remote() for w in workers])
        specs = layout(model.state_dict())
        group = asyncio.run(_open(free_address("127.0.0.1", engines + 1, "gloo"), workers, specs))
        version = 0
        via_store, via_broadcast = [], []
        for _ in range(rounds):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1e-3 * torch.randn_like(p))
            version += 1
            start = time.perf_counter()
            ref = publish_weights(model)
            ray.get([w.generate.remote([ref], version, probe) for w in workers])
            loaded = time.perf_counter() - start
            start = time.perf_counter()
            ray.get([w.generate.remote([ref], version, probe) for w in workers])
            via_store.append(loaded - (time.perf_counter() - start))
            version += 1
            start = time.perf_counter()
            asyncio.run(_broadcast(group, model, specs, workers, version))
            via_broadcast.append(time.perf_counter() - start)
        params = sum(p.numel() for p in model.parameters())
        return params, statistics.median(via_store), statistics.median(via_broadcast)
    finally:
        for w in workers:
            ray.kill(w)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="64x2,256x4,512x8", help="hidden x layers, comma-separated")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import ray

    from trainer.policy import limit_threads

    limit_threads()
    ray.init(address="local", num_cpus=8, include_dashboard=False, configure_logging=False, log_to_driver=False)
    print(f"{'parameters':>12} {'object_store s':>15} {'broadcast s':>12} {'speed-up':>9}   ({args.engines} engines)")
    try:
        for size in args.sizes.split(","):
            hidden, layers = (int(x) for x in size.split("x"))
            params, store_s, broadcast_s = measure(hidden, layers, args.engines, args.rounds)
            print(f"{params:>12,} {store_s:>15.3f} {broadcast_s:>12.3f} {store_s / broadcast_s:>8.2f}x", flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
