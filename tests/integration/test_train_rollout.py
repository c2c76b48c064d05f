"""Rollout actors: sampling log-probs agree with the learner's, weights arrive version-stamped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import ray
import torch

from trainer.config import ModelConfig
from trainer.data import PromptItem
from trainer.policy import completion_logps, load_policy, make_batch
from trainer.rollout import RolloutRequest, publish_weights, start_workers

PROMPTS = (PromptItem("a", "What is 1+2?", "3", "math"), PromptItem("b", "What is 4+0?", "4", "math"))


def scored_batch(tok, chunk):
    return make_batch(tok, [c.prompt.prompt for c in chunk.completions], [list(c.token_ids) for c in chunk.completions])


def request(step: int) -> RolloutRequest:
    return RolloutRequest(step=step, chunk=0, prompts=PROMPTS, group_size=3, max_new_tokens=12, temperature=1.0,
                          seed=0)


def test_rollout_logps_match_the_learner_and_carry_the_version(ray_cluster, tmp_path) -> None:
    torch.set_num_threads(1)
    model, tok = load_policy(ModelConfig(), seed=0)
    [worker] = start_workers(1, 0.5, model, tok, str(tmp_path))
    chunk = ray.get(worker.generate.remote([publish_weights(model)], 0, request(0)))
    assert len(chunk.completions) == len(PROMPTS) * 3
    assert {c.policy_version for c in chunk.completions} == {0}
    assert [c.prompt.id for c in chunk.completions] == ["a"] * 3 + ["b"] * 3
    batch = scored_batch(tok, chunk)
    with torch.no_grad():
        learner = completion_logps(model, batch)
    for i, c in enumerate(chunk.completions):
        assert torch.allclose(learner[i, : len(c.logps)], torch.tensor(c.logps), atol=1e-5)

    # New weights under a new version: the worker loads them and stamps its completions with it.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    again = ray.get(worker.generate.remote([publish_weights(model)], 1, request(0)))
    assert {c.policy_version for c in again.completions} == {1}
    batch = scored_batch(tok, again)
    with torch.no_grad():
        learner = completion_logps(model, batch)
    assert torch.allclose(learner[0, : len(again.completions[0].logps)], torch.tensor(again.completions[0].logps),
                          atol=1e-5)
    ray.kill(worker)


def test_same_step_and_seed_replays_the_same_completions(ray_cluster, tmp_path) -> None:
    model, tok = load_policy(ModelConfig(), seed=0)
    [worker] = start_workers(1, 0.5, model, tok, str(tmp_path))
    weights = [publish_weights(model)]
    first = ray.get(worker.generate.remote(weights, 0, request(3)))
    second = ray.get(worker.generate.remote(weights, 0, request(3)))
    other = ray.get(worker.generate.remote(weights, 0, request(4)))
    assert [c.token_ids for c in first.completions] == [c.token_ids for c in second.completions]
    assert [c.token_ids for c in first.completions] != [c.token_ids for c in other.completions]
    ray.kill(worker)


class GatedRewards:
    """In-process scoring that records which sample ids were sent and holds every answer until the
    test opens the gate."""

    def __init__(self) -> None:
        from rewards.routing import RoutingConfig
        from trainer.reward_client import InProcessRewardClient

        self.scorer = InProcessRewardClient(RoutingConfig.from_dict({"tasks": {"math": {"math": 1.0, "format": 1.0}}}))
        self.gate = asyncio.Event()
        self.sent: list[str] = []

    async def score(self, samples):
        self.sent.extend(s.id for s in samples)
        scored = await self.scorer.score(samples)
        await self.gate.wait()
        return scored


def run_pipeline(tmp_path, steps: int, max_staleness: int, learner):
    """Run `learner(pipeline, rewards)` against a real pipeline: two rollout actors, gated in-process rewards."""
    from trainer.config import load_config
    from trainer.pipeline import Pipeline

    cfg = load_config(None, {"grpo.steps": steps, "grpo.max_staleness": max_staleness, "grpo.prompts_per_step": 6,
                             "grpo.group_size": 3, "grpo.max_completion_tokens": 8, "rollout.chunks_per_step": 3})
    model, tok = load_policy(ModelConfig(), seed=0)
    workers = start_workers(2, 0.5, model, tok, str(tmp_path))
    prompts = [PromptItem(f"p{i}", f"What is {i}+1?", str(i + 1), "math") for i in range(6)]
    rewards = GatedRewards()

    async def run():
        pipeline = Pipeline(cfg, workers, rewards, prompts, 0, publish_weights(model))
        pipeline.start()
        try:
            return await asyncio.wait_for(learner(pipeline, rewards), 120)
        finally:
            await pipeline.close()
            rewards.scorer.close()

    try:
        return asyncio.run(run())
    finally:
        for w in workers:
            ray.kill(w)


def test_the_learner_gets_a_steps_completions_before_their_scores_in_group_order(ray_cluster, tmp_path) -> None:
    async def learner(pipeline, rewards):
        rollouts = await pipeline.next_rollouts()
        assert not rollouts.scored.done()  # every chunk generated, none scored yet
        rewards.gate.set()
        return rollouts, await rollouts.scored

    rollouts, batch = run_pipeline(tmp_path, 1, 0, learner)
    assert len(rollouts.completions) == 6 * 3
    in_groups = [c for group in batch.groups for c in group.completions]
    assert in_groups == rollouts.completions  # row i of the learner's forward pass is sample i of the batch
    assert all(len(group.scores) == 3 for group in batch.groups)


def test_the_next_steps_chunks_are_scored_only_after_the_step_the_learner_waits_for(ray_cluster, tmp_path) -> None:
    async def learner(pipeline, rewards):
        first = await pipeline.next_rollouts()
        second = await pipeline.next_rollouts()  # staleness 1: generated before any update
        sent_before_the_first_was_scored = list(rewards.sent)
        rewards.gate.set()
        await first.scored
        await second.scored
        return sent_before_the_first_was_scored, rewards.sent

    early, sent = run_pipeline(tmp_path, 2, 1, learner)
    assert len(early) == 6 * 3 and all(i.startswith("s0-") for i in early)
    assert [i.split("-")[0] for i in sent] == ["s0"] * 18 + ["s1"] * 18


@ray.remote
class Gate:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self) -> None:
        await self.event.wait()

    def open(self) -> None:
        self.event.set()


@ray.remote
def held_until_open(gate, weights):
    """The weights, once the gate opens: actors asked to generate with them wait inside `generate`."""
    ray.get(gate.wait.remote())
    return weights


def running_generate(pid: int) -> bool:
    """Ray titles an actor's process `ray::Class.method` while it runs a call (the pool streams chunks)."""
    try:
        return b"RolloutWorker.stream" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def wait_until_back(worker, timeout_s: float = 180.0) -> int:
    """The restarted actor's new pid; calls fail with ActorUnavailableError while Ray restarts it."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ray.get(worker.ready.remote())
        except ray.exceptions.ActorUnavailableError:
            assert time.monotonic() < deadline, "the killed actor was not restarted"
            time.sleep(0.5)


def test_a_chunk_whose_actor_is_killed_is_generated_again_and_every_step_keeps_its_groups(ray_cluster,
                                                                                          tmp_path) -> None:
    import os
    import signal
    import time

    from rewards.routing import RoutingConfig
    from trainer.config import load_config
    from trainer.pipeline import Pipeline, step_prompts
    from trainer.reward_client import InProcessRewardClient

    steps = 3
    cfg = load_config(None, {"grpo.steps": steps, "grpo.max_staleness": 0, "grpo.prompts_per_step": 6,
                             "grpo.group_size": 3, "grpo.max_completion_tokens": 8, "rollout.chunks_per_step": 2})
    model, tok = load_policy(ModelConfig(), seed=0)
    workers = start_workers(2, 0.5, model, tok, str(tmp_path))
    pids = ray.get([w.ready.remote() for w in workers])
    prompts = [PromptItem(f"p{i}", f"What is {i}+1?", str(i + 1), "math") for i in range(8)]
    rewards = InProcessRewardClient(RoutingConfig.from_dict({"tasks": {"math": {"math": 1.0, "format": 1.0}}}))
    gate = Gate.remote()
    # Step 0's two chunks go one to each actor, and both wait inside `generate` for these weights.
    weights = held_until_open.remote(gate, {k: v.clone() for k, v in model.state_dict().items()})

    async def run():
        pipeline = Pipeline(cfg, workers, rewards, prompts, 0, weights)
        pipeline.start()
        try:
            deadline = time.monotonic() + 120
            while not all(running_generate(pid) for pid in pids):
                assert time.monotonic() < deadline, "the actors never started generating"
                await asyncio.sleep(0.1)
            os.kill(pids[1], signal.SIGKILL)
            await gate.open.remote()
            batches = []
            for _ in range(steps):
                rollouts = await asyncio.wait_for(pipeline.next_rollouts(), 180)
                batches.append(await rollouts.scored)
                await pipeline.publish(publish_weights(model))
            return batches
        finally:
            await pipeline.close()
            rewards.close()

    try:
        batches = asyncio.run(run())
        restarted = wait_until_back(workers[1])
    finally:
        for w in workers:
            ray.kill(w)
    print(f"rollout loss: actor pid {pids[1]} killed mid-chunk; chunks generated again per step: "
          f"{[b.retries for b in batches]}; restarted as pid {restarted}")
    assert batches[0].retries == 1  # exactly the killed actor's chunk
    assert restarted != pids[1]  # Ray restarted the actor
    for step, batch in enumerate(batches):
        # Every group of the step, each once, in the step's order, each with all G completions scored.
        assert [g.prompt.id for g in batch.groups] == [p.id for p in step_prompts(prompts, step, 6, cfg.seed)]
        for group in batch.groups:
            assert [c.index for c in group.completions] == [0, 1, 2]
            assert len(group.scores) == 3 and all(c.prompt == group.prompt for c in group.completions)


def test_with_no_rollout_actor_alive_for_the_timeout_the_run_fails_naming_them(ray_cluster, tmp_path) -> None:
    from trainer.rollout import RolloutPool

    model, tok = load_policy(ModelConfig(), seed=0)
    [worker] = start_workers(1, 0.5, model, tok, str(tmp_path))
    ray.get(worker.ready.remote())
    ray.kill(worker, no_restart=True)  # gone for good: nothing will ever answer

    async def run():
        pool = RolloutPool([worker], unavailable_timeout_s=2.0)
        try:
            await pool.generate(request(0), lambda: (0, publish_weights(model)))
        finally:
            await pool.close()

    with pytest.raises(RuntimeError, match=r"no rollout worker alive for 2 s \(worker 0: .*actor"):
        asyncio.run(run())


def test_an_actor_whose_set_up_fails_ends_the_run_at_once(ray_cluster, tmp_path) -> None:
    """A broken set-up is not a lost node: a restart would repeat it, so nothing waits for one."""
    from trainer.rollout import RolloutPool

    model, tok = load_policy(ModelConfig(), seed=0)
    weights = publish_weights(model)
    model.config.vocab_size = -1  # the actor's __init__ cannot build this model
    [worker] = start_workers(1, 0.5, model, tok, str(tmp_path))

    async def run():
        pool = RolloutPool([worker], unavailable_timeout_s=600.0)
        try:
            await pool.generate(request(0), lambda: (0, weights))
        finally:
            await pool.close()

    with pytest.raises(ray.exceptions.ActorDiedError, match="creation task"):
        asyncio.run(asyncio.wait_for(run(), 120))
    ray.kill(worker)
