"""`arbiter train`: cold-start SFT, then asynchronous GRPO against verifier services on Ray.

    arbiter train --config configs/tiny.yaml --output runs/tiny [--resume]

Writes OUTPUT/metrics.jsonl (one line per step), OUTPUT/audit.jsonl (verdicts an independent check
disputed, such as the math audit), OUTPUT/reward_curve.png, OUTPUT/config.yaml
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
from trainer.evaluate import evaluate_policy

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
        routing = RoutingConfig.from_dict({"tasks": cfg.rewards.routing}, source="rewards.routing")
        prompts = load_run_prompts(cfg, routing)
    except (ConfigError, DataError, ValueError, OSError) as exc:
        print(f"arbiter train: {exc}")
        return 2
    output = Path(args.output)
    if args.resume and checkpoint.latest(output) is None:
        print(f"arbiter train: --resume: no checkpoint in {output / 'checkpoints'}")
        return 2
    from trainer.learner_group import LearnerRankDied

    start = time.perf_counter()
    try:
        rows = train(cfg, prompts, routing, output, resume=args.resume, progress=not args.no_progress)
    except LearnerRankDied as exc:
        print(f"arbiter train: {exc}")
        return 1
    except ConfigError as exc:  # what only the cluster can tell, e.g. rollout.engine: vllm without vLLM
        print(f"arbiter train: {exc}")
        return 2
    print(summary(rows, time.perf_counter() - start, output))
    return 0


def load_run_prompts(cfg: TrainConfig, routing: RoutingConfig) -> list[PromptItem]:
    """The training prompts as the policy reads them: the prompt file's, then every generated family's
    (data.generated). They and the eval prompts (which the run reads where it evaluates) are read
    before Ray starts, so a bad file or field fails at once."""
    from trainer.policy import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    read_eval_prompts(cfg, routing, tokenizer)
    return read_prompts(cfg, cfg.data.prompts, routing, tokenizer, cfg.data.generated)


def read_prompts(cfg: TrainConfig, path: str | None, routing: RoutingConfig, tokenizer: Any,
                 generated: tuple[str, ...] = ()) -> list[PromptItem]:
    """A prompt file read with the data.* fields and the generated families' tasks, every task
    routed, rendered (trainer/templates.py)."""
    from trainer.code_tasks import GENERATORS
    from trainer.templates import render_prompts

    items = load_prompts(resolve_path(path), cfg.data) if path else []
    for family in generated:
        items += GENERATORS[family]()
    ids = [p.id for p in items]
    if len(set(ids)) != len(ids):
        raise DataError("data: a generated task's id is also in the prompts file")
    unrouted = sorted({p.task for p in items} - set(routing.tasks))
    if unrouted:
        raise ConfigError(f"rewards.routing: no route for task {unrouted[0]!r} used in {path or 'data.generated'}")
    return render_prompts(items, cfg.model, cfg.data, tokenizer)


def read_eval_prompts(cfg: TrainConfig, routing: RoutingConfig, tokenizer: Any) -> list[PromptItem]:
    return [] if cfg.eval.prompts is None else read_prompts(cfg, cfg.eval.prompts, routing, tokenizer)


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

    `prompts` are as the policy reads them (`load_run_prompts`); eval.prompts is read here.

    Start-up overlaps: once Ray is up, the rollout actors boot and the verifiers deploy on Serve
    in the background while the cold-start SFT runs here.
    """
    import ray

    from trainer.learner_group import LearnerGroup
    from trainer.policy import limit_threads, load_checkpoint, load_policy
    from trainer.reward_client import prepare_serve, shutdown_serve
    from trainer.rollout import resolve_engine, start_workers

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
    learner = None
    try:
        deploying = pool.submit(prepare_serve, cfg.rewards, routing, output)
        sft_dir = checkpoint.checkpoint_dir(output) / "sft"
        resume_from = checkpoint.latest(output) if resume else None
        if resume_from is not None:
            model, tokenizer = load_checkpoint(resume_from)
        else:
            model, tokenizer = load_policy(cfg.model, cfg.seed)
        engine = resolve_engine(cfg.rollout.engine, ray.cluster_resources().get("GPU", 0))
        workers = start_workers(cfg.rollout.num_workers, cfg.rollout.num_cpus_per_worker, model, tokenizer,
                                str(output.resolve()), cfg.rollout.resources, engine,
                                cfg.rollout.vllm_memory_utilization, cfg.seed)
        if resume_from is None:
            t0 = time.perf_counter()
            losses = cold_start(cfg, model, tokenizer, prompts)
            if losses:
                log.info("cold-start SFT: %d steps in %.1fs, loss %.3f -> %.3f", len(losses),
                         time.perf_counter() - t0, losses[0], losses[-1])
            model.save_pretrained(sft_dir)
            tokenizer.save_pretrained(sft_dir)
            (output / "metrics.jsonl").write_text("")
            (output / "audit.jsonl").write_text("")
        ref_weights = load_checkpoint(sft_dir)[0].state_dict() if cfg.grpo.beta != 0.0 else None
        learner = LearnerGroup.start(cfg.learner, cfg.grpo, model, ref_weights, tokenizer,
                                     checkpoint.shards(resume_from) if resume_from is not None else None)
        first_step = 0
        if resume_from is not None:
            first_step = checkpoint.restore(resume_from).step
            log.info("resumed from %s at step %d", resume_from, first_step)
            keep_rows_before(output / "metrics.jsonl", first_step)
        rewards_cfg, started_serve = deploying.result()
        log.info("start-up done in %.1fs (Ray, verifiers, rollout and learner actors, cold start)",
                 time.perf_counter() - started)
        rows = asyncio.run(_grpo(cfg, rewards_cfg, model, tokenizer, learner, workers, engine, prompts, routing,
                                 output, first_step, started, progress))
    finally:
        if learner is not None:
            learner.close()
        pool.shutdown(wait=True)
        if started_serve:
            shutdown_serve()
        if started_ray:
            ray.shutdown()
    from trainer.plot import plot_metrics

    plot_metrics(output / "metrics.jsonl", output / "reward_curve.png")
    return rows


async def _save_checkpoint(output: Path, step: int, learner: Any, weights: Any, model: Any, tokenizer: Any,
                           keep: int) -> None:
    """The ranks' shards, then the full model (the weights just published, or gathered now when they went
    out by broadcast) with the step."""
    staged = checkpoint.stage(output, step)
    await learner.save(checkpoint.shards(staged))
    model.load_state_dict(await (weights if weights is not None else await learner.publish()))
    checkpoint.commit(output, step, staged, model, tokenizer, keep)


class _WeightSync:
    """`rollout.weight_sync`: what the pipeline hands the rollout actors after each update."""

    def __init__(self, cfg: TrainConfig, learner: Any, workers: list[Any], model: Any, engine: str) -> None:
        self.broadcast = cfg.rollout.weight_sync == "broadcast"
        self.learner, self.workers, self.model, self.engine = learner, workers, model, engine

    async def start(self, version: int) -> Any:
        if self.broadcast:
            from trainer.weight_sync import layout

            await self.learner.open_broadcast(self.workers, layout(self.model.state_dict()), self.engine)
        return await self.publish(version)

    async def publish(self, version: int) -> Any:
        """-> the object-store ref of the new weights, or None when they were broadcast to every actor."""
        if self.broadcast:
            await self.learner.broadcast(self.workers, version)
            return None
        return await self.learner.publish()


async def _grpo(cfg: TrainConfig, rewards_cfg: RewardsConfig, model: Any, tokenizer: Any, learner: Any,
                workers: list[Any], engine: str, prompts: list[PromptItem], routing: RoutingConfig,
                output: Path, first_step: int, started: float, progress: bool) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from trainer.learner import audit_examples, learning_rate, reward_metrics
    from trainer.pipeline import Pipeline
    from trainer.reward_client import open_reward_client

    primary = {task: route[0].verifier for task, route in routing.tasks.items()}
    eval_prompts = read_eval_prompts(cfg, routing, tokenizer)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=cfg.grpo.steps, initial=first_step, disable=not progress, desc="grpo", unit="step")
    async with open_reward_client(rewards_cfg, routing, output) as rewards:
        sync = _WeightSync(cfg, learner, workers, model, engine)
        pipeline = Pipeline(cfg, workers, rewards, prompts, first_step, await sync.start(first_step))
        pipeline.start()
        try:
            last_end = time.monotonic()
            for step in range(first_step, cfg.grpo.steps):
                wait_start = time.monotonic()
                rollouts = await pipeline.next_rollouts()
                generated = time.monotonic()
                await learner.prepare(rollouts.completions, step)
                forward_done = time.monotonic()
                batch = await rollouts.scored  # scoring went on during the first forward pass
                scored = time.monotonic()
                update = await learner.update(batch.groups, step, cfg.seed * 1_000_003 + step)
                weights = await sync.publish(step + 1)
                await pipeline.publish(weights)
                end = time.monotonic()
                step_time = end - last_end
                row = {
                    "step": step,
                    **reward_metrics(batch.groups, step, primary),
                    "loss": update.loss,
                    "kl": update.kl,
                    "clip_fraction": update.clip_fraction,
                    "ratio_mean": update.ratio_mean,
                    "rollout_probs_diff_mean": update.rollout_probs_diff_mean,
                    "rollout_probs_diff_max": update.rollout_probs_diff_max,
                    "learning_rate": learning_rate(cfg.grpo, step),
                    "grad_norm": update.grad_norm,
                    "groups_kept": update.groups_kept,
                    "groups": len(batch.groups),
                    "rollout_retries": batch.retries,
                    # Waiting on rewards: scores still missing after the forward pass that overlapped them.
                    "learner_wait_fraction": (scored - forward_done) / step_time if step_time > 0 else 0.0,
                    "generation_wait_fraction": (generated - wait_start) / step_time if step_time > 0 else 0.0,
                    "step_time_s": step_time,
                    "generate_s": batch.generate_s,
                    "chunk_score_s": batch.score_s,
                    "elapsed_s": time.perf_counter() - started,
                }
                last_end = end
                if eval_prompts and ((step + 1) % cfg.eval.every_steps == 0 or step + 1 == cfg.grpo.steps):
                    # The weights this step's update made (published above); its time counts in the next step.
                    row.update(await evaluate_policy(pipeline, rewards, eval_prompts, routing, cfg, step + 1))
                rows.append(row)
                with (output / "metrics.jsonl").open("a") as f:
                    f.write(json.dumps(row) + "\n")
                with (output / "audit.jsonl").open("a") as f:  # verdicts an independent check disputes
                    f.writelines(json.dumps(example) + "\n" for example in audit_examples(batch.groups, step))
                bar.set_postfix(reward=f"{row['reward_mean'] or 0:.2f}", acc=f"{row['accuracy_mean'] or 0:.2f}",
                                refresh=False)
                bar.update(1)
                done = step + 1
                if done % cfg.output.checkpoint_every_steps == 0 or done == cfg.grpo.steps:
                    await _save_checkpoint(output, done, learner, weights, model, tokenizer,
                                           cfg.output.keep_checkpoints)
        finally:
            bar.close()
            await pipeline.close()
    return rows

