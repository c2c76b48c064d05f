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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
import yaml

from rewards.routing import RoutingConfig
from trainer import checkpoint
from trainer.config import ConfigError, RewardsConfig, TrainConfig, load_config, parse_overrides, resolve_path
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
        prompts = training_prompts(cfg)
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
    start = time.perf_counter()
    rows = train(cfg, prompts, routing, output, resume=args.resume, progress=not args.no_progress)
    print(summary(rows, time.perf_counter() - start, output))
    return 0


def training_prompts(cfg: TrainConfig) -> list[PromptItem]:
    """The prompts file's tasks, then every generated family's."""
    from trainer.code_tasks import GENERATORS

    prompts = load_prompts(resolve_path(cfg.data.prompts)) if cfg.data.prompts else []
    for family in cfg.data.generated:
        prompts += GENERATORS[family]()
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        raise DataError("data: a generated task's id is also in the prompts file")
    return prompts


def summary(rows: list[dict[str, Any]], wall_s: float, output: Path) -> str:
    def mean(key: str, part: list[dict[str, Any]]) -> float:
        values = [r[key] for r in part if r[key] is not None]
        return sum(values) / len(values) if values else float("nan")

    if not rows:
        return f"nothing to do: the run in {output} is complete"
    first, last = rows[:5], rows[-5:]
    return (f"trained steps {rows[0]['step']}-{rows[-1]['step']} in {wall_s:.0f}s: "
            f"accuracy {mean('accuracy_mean', first):.2f} (first 5 steps) -> {mean('accuracy_mean', last):.2f} "
            f"(last 5), format {mean('format_mean', last):.2f}; "
            f"{output}/metrics.jsonl, {output}/reward_curve.png, {output}/checkpoints/")


def connect_ray(cfg: TrainConfig) -> bool:
    """Join the configured cluster or start a local one; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Serve's 5 s proxy readiness check fails on a loaded 2-core machine while the rollout actors
    # and the cold start compete for the cores; a local cluster inherits this from our environment.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    if cfg.cluster.address:
        ray.init(address=cfg.cluster.address, configure_logging=False, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=cfg.cluster.num_cpus, include_dashboard=False, configure_logging=False,
                 log_to_driver=False)
    return True


def keep_rows_before(metrics: Path, step: int) -> None:
    """Drop the rows of steps a resumed run will redo (they ran after the checkpoint it resumes from)."""
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    metrics.write_text("".join(line + "\n" for line in lines if line.strip() and json.loads(line)["step"] < step))


def cold_start(cfg: TrainConfig, model: Any, tokenizer: Any, prompts: list[PromptItem]) -> list[float]:
    from trainer.sft import sft_train
    from trainer.tiny import cold_start_examples

    if cfg.sft.steps == 0:
        return []
    if cfg.sft.data:
        examples = load_sft(resolve_path(cfg.sft.data))
    else:
        examples = cold_start_examples(prompts, cfg.sft.generated_examples, cfg.sft.generated_correct_fraction,
                                       cfg.seed)
    return sft_train(model, tokenizer, examples, steps=cfg.sft.steps, batch_size=cfg.sft.batch_size,
                     learning_rate=cfg.sft.learning_rate, seed=cfg.seed)


def train(cfg: TrainConfig, prompts: list[PromptItem], routing: RoutingConfig, output: Path, *, resume: bool = False,
          progress: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) a training run; returns this invocation's metrics rows.

    Start-up overlaps: once Ray is up, the rollout actors boot and the verifiers deploy on Serve
    in the background while the cold-start SFT runs here.
    """
    from trainer.policy import limit_threads, load_checkpoint, load_policy
    from trainer.reward_client import prepare_serve, shutdown_serve
    from trainer.rollout import start_workers

    limit_threads()
    torch.manual_seed(cfg.seed)
    output.mkdir(parents=True, exist_ok=True)
    resolved = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    log.info("resolved config:\n%s", resolved)
    (output / "config.yaml").write_text(resolved)
    started = time.perf_counter()
    started_ray = connect_ray(cfg)
    started_serve = False
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deploy")
    try:
        deploying = pool.submit(prepare_serve, cfg.rewards, routing, output)
        sft_dir = checkpoint.checkpoint_dir(output) / "sft"
        resume_from = checkpoint.latest(output) if resume else None
        if resume_from is not None:
            model, tokenizer = load_checkpoint(resume_from)
        else:
            model, tokenizer = load_policy(cfg.model, cfg.seed)
        workers = start_workers(cfg.rollout.num_workers, cfg.rollout.num_cpus_per_worker, model, tokenizer,
                                str(output.resolve()), cfg.rollout.resources)
        if resume_from is None:
            t0 = time.perf_counter()
            losses = cold_start(cfg, model, tokenizer, prompts)
            if losses:
                log.info("cold-start SFT: %d steps in %.1fs, loss %.3f -> %.3f", len(losses),
                         time.perf_counter() - t0, losses[0], losses[-1])
            model.save_pretrained(sft_dir)
            tokenizer.save_pretrained(sft_dir)
            (output / "metrics.jsonl").write_text("")
        ref_model = None
        if cfg.grpo.beta != 0.0:
            ref_model, _ = load_checkpoint(sft_dir)
            ref_model.eval().requires_grad_(False)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.grpo.learning_rate,
                                      weight_decay=cfg.grpo.weight_decay)
        first_step = 0
        if resume_from is not None:
            first_step = checkpoint.restore(resume_from, optimizer).step
            log.info("resumed from %s at step %d", resume_from, first_step)
            keep_rows_before(output / "metrics.jsonl", first_step)
        rewards_cfg, started_serve = deploying.result()
        log.info("start-up done in %.1fs (Ray, verifiers, rollout actors, cold start)", time.perf_counter() - started)
        rows = asyncio.run(_grpo(cfg, rewards_cfg, model, ref_model, tokenizer, optimizer, workers, prompts, routing,
                                 output, first_step, started, progress))
    finally:
        pool.shutdown(wait=True)
        if started_serve:
            shutdown_serve()
        if started_ray:
            import ray

            ray.shutdown()
    from trainer.plot import plot_metrics

    plot_metrics(output / "metrics.jsonl", output / "reward_curve.png")
    return rows


async def _grpo(cfg: TrainConfig, rewards_cfg: RewardsConfig, model: Any, ref_model: Any, tokenizer: Any,
                optimizer: torch.optim.Optimizer, workers: list[Any], prompts: list[PromptItem], routing: RoutingConfig,
                output: Path, first_step: int, started: float, progress: bool) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from trainer.learner import grpo_update, learning_rate, policy_forward, reward_metrics
    from trainer.pipeline import Pipeline
    from trainer.reward_client import open_reward_client
    from trainer.rollout import publish_weights

    primary = {task: route[0].verifier for task, route in routing.tasks.items()}
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=cfg.grpo.steps, initial=first_step, disable=not progress, desc="grpo", unit="step")
    async with open_reward_client(rewards_cfg, routing, output) as rewards:
        pipeline = Pipeline(cfg, workers, rewards, prompts, first_step, publish_weights(model))
        pipeline.start()
        try:
            last_end = time.monotonic()
            for step in range(first_step, cfg.grpo.steps):
                wait_start = time.monotonic()
                rollouts = await pipeline.next_rollouts()
                generated = time.monotonic()
                forward = await asyncio.to_thread(policy_forward, model, ref_model, tokenizer, rollouts.completions,
                                                  cfg.grpo)
                forward_done = time.monotonic()
                batch = await rollouts.scored  # scoring went on during the forward pass
                scored = time.monotonic()
                update = await asyncio.to_thread(
                    grpo_update, model, optimizer, forward, batch.groups, cfg.grpo, step, cfg.seed * 1_000_003 + step,
                )
                await pipeline.publish(publish_weights(model))
                end = time.monotonic()
                step_time = end - last_end
                row = {
                    "step": step,
                    **reward_metrics(batch.groups, step, primary),
                    "loss": update.loss,
                    "kl": update.kl,
                    "clip_fraction": update.clip_fraction,
                    "ratio_mean": update.ratio_mean,
                    "learning_rate": learning_rate(cfg.grpo, step),
                    "grad_norm": update.grad_norm,
                    "groups_kept": update.groups_kept,
                    # Waiting on rewards: scores still missing after the forward pass that overlapped them.
                    "learner_wait_fraction": (scored - forward_done) / step_time if step_time > 0 else 0.0,
                    "generation_wait_fraction": (generated - wait_start) / step_time if step_time > 0 else 0.0,
                    "step_time_s": step_time,
                    "generate_s": batch.generate_s,
                    "chunk_score_s": batch.score_s,
                    "elapsed_s": time.perf_counter() - started,
                }
                last_end = end
                rows.append(row)
                with (output / "metrics.jsonl").open("a") as f:
                    f.write(json.dumps(row) + "\n")
                bar.set_postfix(reward=f"{row['reward_mean'] or 0:.2f}", acc=f"{row['accuracy_mean'] or 0:.2f}",
                                refresh=False)
                bar.update(1)
                done = step + 1
                if done % cfg.output.checkpoint_every_steps == 0 or done == cfg.grpo.steps:
                    checkpoint.save(output, done, model, tokenizer, optimizer, cfg.output.keep_checkpoints)
        finally:
            bar.close()
            await pipeline.close()
    return rows

