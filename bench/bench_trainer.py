"""Trainer throughput: the same short GRPO run with max_staleness 0 (synchronous) and 1 (one update
of lag), on one local Ray cluster with the verifiers deployed once on Ray Serve.

    .venv/bin/python bench/bench_trainer.py [--quick] [--config configs/tiny.yaml]

Prints steps/s, learner_wait_fraction (share of step time the learner waited on rewards: scores
still missing once the step was generated and its forward pass done) and generation_wait_fraction
(share of step time it waited for the rollouts to be generated) for each, and the speed-up of
staleness 1 over 0. Target: with staleness 1 the learner waits on rewards for < 5% of its step time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--quick", action="store_true", help="8 steps per run instead of 20")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import ray

    from rewards.routing import RoutingConfig
    from trainer.config import load_config, parse_overrides, resolve_path
    from trainer.data import load_prompts
    from trainer.reward_client import prepare_serve
    from trainer.train import connect_ray, train

    steps = 8 if args.quick else 20
    base = load_config(args.config)
    routing = RoutingConfig.from_dict({"tasks": base.rewards.routing})
    prompts = load_prompts(resolve_path(base.data.prompts))
    connect_ray(base)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
            deployed, _ = prepare_serve(base.rewards, routing, Path(tmp))  # once, for both runs
            results = {}
            for staleness in (0, 1):
                cfg = load_config(args.config, {
                    **parse_overrides(args.set),
                    "grpo.steps": steps, "grpo.max_staleness": staleness, "sft.steps": 50,
                    "rewards.endpoint": deployed.endpoint, "rewards.application": deployed.application,
                    "output.checkpoint_every_steps": 1000, "eval.prompts": None,  # training throughput alone
                })
                start = time.perf_counter()
                rows = train(cfg, prompts, routing, Path(tmp) / f"staleness{staleness}", progress=False)
                measured = rows[1:]  # step 0 includes actor start-up and the first weight transfer
                span = sum(r["step_time_s"] for r in measured)
                results[staleness] = {
                    "steps_per_s": len(measured) / span,
                    "learner_wait_fraction": statistics.fmean(r["learner_wait_fraction"] for r in measured),
                    "generation_wait_fraction": statistics.fmean(r["generation_wait_fraction"] for r in measured),
                    "chunk_score_s": statistics.fmean(r["chunk_score_s"] for r in measured),
                    "generate_s": statistics.fmean(r["generate_s"] for r in measured),
                    "wall_s": time.perf_counter() - start,
                }
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()
    print(f"{'max_staleness':>13} {'steps/s':>8} {'learner_wait_fraction':>22} {'generation_wait':>16} "
          f"{'generate_s':>11} {'chunk_score_s':>14} {'wall_s':>7}")
    for staleness, r in results.items():
        print(f"{staleness:>13} {r['steps_per_s']:>8.2f} {r['learner_wait_fraction']:>22.1%} "
              f"{r['generation_wait_fraction']:>16.1%} {r['generate_s']:>11.3f} {r['chunk_score_s']:>14.3f} "
              f"{r['wall_s']:>7.1f}")
    print(f"speed-up of staleness 1 over 0: {results[1]['steps_per_s'] / results[0]['steps_per_s']:.2f}x; "
          f"target learner_wait_fraction (waiting on rewards) < 5% at staleness 1: "
          f"{'met' if results[1]['learner_wait_fraction'] < 0.05 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
