"""`arbiter train`: cold-start SFT, then asynchronous GRPO against verifier services on Ray.

    arbiter train --config configs/tiny.yaml --output runs/tiny [--resume]

Writes OUTPUT/metrics.jsonl (one line per step), OUTPUT/reward_curve.png, OUTPUT/config.yaml
(the resolved config) and OUTPUT/checkpoints/ (resumable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from rewards.routing import RoutingConfig
from trainer import checkpoint
from trainer.config import ConfigError, TrainConfig, load_config, parse_overrides
from trainer.data import DataError, PromptItem, load_prompts, load_sft

log = logging.getLogger("arbiter.train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML training config (default: configs/tiny.yaml)")
    parser.add_argument("--output", required=True, help="run directory: metrics.jsonl, reward_curve.png, checkpoints/")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set grpo.steps=10 (VALUE is parsed as YAML)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, parse_overrides(args.set))
        prompts = load_prompts(cfg.data.prompts)
        routing = RoutingConfig.from_dict({"tasks": cfg.rewards.routing}, source="rewards.routing")
        unrouted = sorted({p.task for p in prompts} - set(routing.tasks))
        if unrouted:
            raise ConfigError(f"rewards.routing: no route for task {unrouted[0]!r} used in {cfg.data.prompts}")
    except (ConfigError, DataError, ValueError) as exc:
        print(f"arbiter train: {exc}")
        return 2
    output = Path(args.output)
    if args.resume and checkpoint.latest(output) is None:
        print(f"arbiter train: --resume: no checkpoint in {output / 'checkpoints'}")
        return 2
    train(cfg, prompts, routing, output, resume=args.resume, progress=not args.no_progress)
    return 0


def connect_ray(cfg: TrainConfig) -> bool:
    """Join the configured cluster or start a local one; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if cfg.cluster.address:
        ray.init(address=cfg.cluster.address, configure_logging=False, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=cfg.cluster.num_cpus, include_dashboard=False, configure_logging=False,
                 log_to_driver=False)
    return True


def cold_start(cfg: TrainConfig, model: Any, tokenizer: Any, prompts: list[PromptItem]) -> list[float]:
    from trainer.sft import sft_train
    from trainer.tiny import cold_start_examples

    if cfg.sft.steps == 0:
        return []
    if cfg.sft.data:
        examples = load_sft(cfg.sft.data)
    else:
        examples = cold_start_examples(prompts, cfg.sft.generated_examples, cfg.sft.generated_correct_fraction,
                                       cfg.seed)
    return sft_train(model, tokenizer, examples, steps=cfg.sft.steps, batch_size=cfg.sft.batch_size,
                     learning_rate=cfg.sft.learning_rate, seed=cfg.seed)


def train(cfg: TrainConfig, prompts: list[PromptItem], routing: RoutingConfig, output: Path, *, resume: bool = False,
          progress: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) a training run; returns this invocation's metrics rows."""
    from trainer.policy import limit_threads, load_checkpoint, load_policy

    limit_threads()
    torch.manual_seed(cfg.seed)
    output.mkdir(parents=True, exist_ok=True)
    resolved = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    log.info("resolved config:\n%s", resolved)
    (output / "config.yaml").write_text(resolved)
    started = time.perf_counter()
    started_ray = connect_ray(cfg)
    try:
        sft_dir = checkpoint.checkpoint_dir(output) / "sft"
        optimizer_state = None
        if resume:
            path = checkpoint.latest(output)
            assert path is not None
            model, tokenizer = load_checkpoint(path)
            optimizer_state = path
        else:
            model, tokenizer = load_policy(cfg.model, cfg.seed)
            t0 = time.perf_counter()
            losses = cold_start(cfg, model, tokenizer, prompts)
            if losses:
                log.info("cold-start SFT: %d steps in %.1fs, loss %.3f -> %.3f", len(losses),
                         time.perf_counter() - t0, losses[0], losses[-1])
            model.save_pretrained(sft_dir)
            tokenizer.save_pretrained(sft_dir)
        ref_model = None
        if cfg.grpo.beta != 0.0:
            ref_model, _ = load_checkpoint(sft_dir)
            ref_model.eval().requires_grad_(False)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.grpo.learning_rate,
                                      weight_decay=cfg.grpo.weight_decay)
        first_step = 0
        if optimizer_state is not None:
            first_step = checkpoint.restore(optimizer_state, optimizer).step
            log.info("resumed from %s at step %d", optimizer_state, first_step)
        if not resume:
            (output / "metrics.jsonl").write_text("")
        rows = asyncio.run(_grpo(cfg, model, ref_model, tokenizer, optimizer, prompts, routing, output, first_step,
                                 started, progress))
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    from trainer.plot import plot_metrics

    plot_metrics(output / "metrics.jsonl", output / "reward_curve.png")
    return rows


async def _grpo(cfg: TrainConfig, model: Any, ref_model: Any, tokenizer: Any, optimizer: torch.optim.Optimizer,
                prompts: list[PromptItem], routing: RoutingConfig, output: Path, first_step: int, started: float,
                progress: bool) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from trainer.learner import grpo_update, reward_metrics
    from trainer.pipeline import Pipeline
    from trainer.reward_client import open_reward_client
    from trainer.rollout import publish_weights, start_workers

    primary = {task: route[0].verifier for task, route in routing.tasks.items()}
    workers = start_workers(cfg.rollout.num_workers, cfg.rollout.num_cpus_per_worker, model, tokenizer,
                            str(output.resolve()))
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=cfg.grpo.steps, initial=first_step, disable=not progress, desc="grpo", unit="step")
    async with open_reward_client(cfg.rewards, routing, output) as rewards:
        pipeline = Pipeline(cfg, workers, rewards, prompts, first_step, publish_weights(model))
        pipeline.start()
        try:
            last_end = time.monotonic()
            for step in range(first_step, cfg.grpo.steps):
                wait_start = time.monotonic()
                batch = await pipeline.next_batch()
                got = time.monotonic()
                update = await asyncio.to_thread(
                    grpo_update, model, ref_model, tokenizer, optimizer, batch.groups, cfg.grpo,
                    cfg.seed * 1_000_003 + step,
                )
                await pipeline.publish(publish_weights(model))
                end = time.monotonic()
                step_time = end - last_end
                reward_wait = max(0.0, got - max(wait_start, batch.generated_at))
                row = {
                    "step": step,
                    **reward_metrics(batch.groups, step, primary),
                    "loss": update.loss,
                    "kl": update.kl,
                    "clip_fraction": update.clip_fraction,
                    "grad_norm": update.grad_norm,
                    "groups_kept": update.groups_kept,
                    "learner_wait_fraction": (got - wait_start) / step_time if step_time > 0 else 0.0,
                    "reward_wait_fraction": reward_wait / step_time if step_time > 0 else 0.0,
                    "step_time_s": step_time,
                    "elapsed_s": time.perf_counter() - started,
                }
                last_end = end
                rows.append(row)
                with (output / "metrics.jsonl").open("a") as f:
                    f.write(json.dumps(row) + "\n")
                bar.update(1)
                bar.set_postfix(reward=f"{row['reward_mean'] or 0:.2f}", acc=f"{row['accuracy_mean'] or 0:.2f}")
                done = step + 1
                if done % cfg.output.checkpoint_every_steps == 0 or done == cfg.grpo.steps:
                    checkpoint.save(output, done, model, tokenizer, optimizer, cfg.output.keep_checkpoints)
        finally:
            bar.close()
            await pipeline.close()
    return rows

