"""The asynchronous rollout -> reward -> learner pipeline.

    producer (one asyncio task)       for each step s: wait until the learner's version >= s - max_staleness,
                                      then split the step's prompts into chunks and send each to the least
                                      busy live rollout actor with the newest weights (a chunk whose actor
                                      or node dies is generated again on a live one: rollout.RolloutPool)
    chunk tasks (one per chunk)       take the chunk's groups as the engine finishes each (a Ray streaming
                                      generator), send each to the verifiers at once (after the step
                                      before is scored), collect the scores; the step's completions and
                                      groups are put back in chunk and prompt order, never arrival order
    learner (the caller)              `rollouts = await pipeline.next_rollouts()`: the step's completions,
                                      all generated (its forward pass needs no rewards), then
                                      `await rollouts.scored`: the step's groups, complete and scored

With max_staleness 0 the learner and the rollouts take turns (synchronous GRPO). With 1, the
actors generate step s+1 while the learner trains on step s, so the learner's wait shrinks to
whatever generation plus scoring takes beyond one update; step s+1's chunks wait to be scored
until step s is, so they never delay the batch the learner needs first; and because the learner
gets a step's completions before their scores, its forward pass runs while the last chunk is
still being scored. Old log-probs always come from the generating weights, so the ratio in the loss corrects
for the lag.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from rewards.compose import ScoredSample
from rewards.types import Sample
from trainer.config import TrainConfig
from trainer.data import PromptItem
from trainer.reward_client import RewardClient
from trainer.rollout import Completion, RolloutChunk, RolloutGroup, RolloutPool, RolloutRequest


@dataclass
class Group:
    """All G completions of one prompt with their scores, in sample order."""

    prompt: PromptItem
    completions: list[Completion]
    scores: list[ScoredSample]


@dataclass
class StepBatch:
    groups: list[Group]
    """In the order of `StepRollouts.completions`: group i holds completions i*G .. i*G+G-1."""
    generate_s: float = 0.0
    score_s: float = 0.0
    """Mean time one scoring call took (sent to all results back): one per set of groups that left the
    engine together (with transformers, one per chunk)."""
    retries: int = 0
    """Chunks generated again because their rollout actor or node was lost."""


@dataclass
class StepRollouts:
    """A step's completions once all are generated; `scored` resolves when all are scored too."""

    completions: list[Completion]
    """Chunk order, each prompt's G completions consecutive."""
    scored: asyncio.Future[StepBatch]


@dataclass
class _Pending:
    chunks: int
    generated: asyncio.Future[StepRollouts]
    scored: asyncio.Future[StepBatch]
    previous: asyncio.Future[StepBatch] | None
    """The step before's `scored`: this step's chunks are scored after it, in the order the learner needs them."""
    rollouts: dict[int, RolloutChunk] = field(default_factory=dict)  # by chunk index
    groups: dict[int, list[Group]] = field(default_factory=dict)  # by chunk index
    generate_s: float = 0.0
    score_s: float = 0.0
    score_calls: int = 0
    retries: int = 0

    def fail(self, exc: Exception) -> None:
        if not self.generated.done():
            self.generated.set_exception(exc)
            self.scored.cancel()  # the learner never got it; the next step's chunks take cancelled as finished
        elif not self.scored.done():
            self.scored.set_exception(exc)


def step_prompts(prompts: list[PromptItem], step: int, count: int, seed: int) -> list[PromptItem]:
    """The prompts of one step, a pure function of (seed, step) so that a resumed run replays the same ones."""
    rng = random.Random(seed * 7919 + step)
    return rng.sample(prompts, count) if count <= len(prompts) else rng.choices(prompts, k=count)


def chunk_sizes(total: int, chunks: int) -> list[int]:
    """Halving chunk sizes (25 prompts in 5 chunks: 13, 6, 3, 2, 1).

    Each chunk is scored while the next one generates, so only the last chunk's scoring is on the
    learner's critical path: keeping that chunk small hides nearly all of the reward latency,
    while the big first chunks keep generation batched.
    """
    sizes, remaining = [], total
    for left in range(chunks, 0, -1):
        size = remaining if left == 1 else min(remaining - (left - 1), math.ceil(remaining / 2))
        sizes.append(size)
        remaining -= size
    return sizes


def to_samples(step: int, completions: tuple[Completion, ...], prefix: str = "s") -> list[Sample]:
    """Sample ids `s{step}-{prompt id}-{index}` (training) or `eval{version}-...` (evaluation)."""
    return [c.prompt.to_sample(f"{prefix}{step}-{c.prompt.id}-{c.index}", c.text) for c in completions]


class Pipeline:
    def __init__(
        self,
        cfg: TrainConfig,
        workers: list[Any],
        rewards: RewardClient,
        prompts: list[PromptItem],
        first_step: int,
        weights: Any,
    ) -> None:
        self.cfg = cfg
        self.pool = RolloutPool(workers, cfg.rollout.unavailable_timeout_s)
        self.rewards = rewards
        self.prompts = prompts
        self.version = first_step
        """Updates applied so far; the weights in `self.weights` are this version."""
        self.weights = weights
        self.next_step = first_step
        self._pending: dict[int, _Pending] = {}
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._producer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._producer = asyncio.create_task(self._produce())
        # A producer that dies must wake a learner waiting for the step it will never register.
        self._producer.add_done_callback(lambda _: asyncio.ensure_future(self._wake()))

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def publish(self, weights: Any) -> None:
        """The learner finished one update: newer weights for the rollouts that start from now on."""
        async with self._changed:
            self.version += 1
            self.weights = weights
            self._changed.notify_all()

    def _current_weights(self) -> tuple[int, Any]:
        return self.version, self.weights

    async def generate(self, request: RolloutRequest) -> RolloutChunk:
        """One chunk outside the step schedule (evaluation), on a live actor, with the newest weights."""
        return await self.pool.generate(request, self._current_weights)

    async def next_rollouts(self) -> StepRollouts:
        """The next step's completions, once all are generated (their scores may still be on the way)."""
        step = self.next_step
        async with self._changed:
            await self._changed.wait_for(lambda: step in self._pending or self._producer_failed())
        self._raise_producer_error()
        rollouts = await self._pending[step].generated
        del self._pending[step]
        self.next_step += 1
        return rollouts

    def _producer_failed(self) -> bool:
        return self._producer is not None and self._producer.done()

    def _raise_producer_error(self) -> None:
        if self._producer is not None and self._producer_failed() and not self._producer.cancelled():
            exc = self._producer.exception()
            if exc is not None:
                raise exc

    async def _produce(self) -> None:
        g, r = self.cfg.grpo, self.cfg.rollout
        step = self.next_step
        previous: asyncio.Future[StepBatch] | None = None
        while step < g.steps:
            async with self._changed:
                await self._changed.wait_for(lambda s=step: self.version >= s - g.max_staleness)
                loop = asyncio.get_running_loop()
                pending = _Pending(r.chunks_per_step, loop.create_future(), loop.create_future(), previous)
                previous = pending.scored
                self._pending[step] = pending
                self._changed.notify_all()
            chosen = step_prompts(self.prompts, step, g.prompts_per_step, self.cfg.seed)
            offset = 0
            for chunk_index, size in enumerate(chunk_sizes(len(chosen), r.chunks_per_step)):
                part = tuple(chosen[offset : offset + size])
                offset += size
                request = RolloutRequest(step, chunk_index, part, g.group_size, g.max_completion_tokens,
                                         g.temperature, self.cfg.seed)
                # Tasks start in creation order, so chunks reach the actors in step order.
                task = asyncio.create_task(self._chunk(request, pending))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            step += 1

    async def _chunk(self, request: RolloutRequest, pending: _Pending) -> None:
        scoring: list[asyncio.Task[list[Group]]] = []
        try:
            arrived: dict[int, RolloutGroup] = {}
            retries = 0
            async for finished, retries in self.pool.stream(request, self._current_weights):  # noqa: B007
                arrived.update((g.position, g) for g in finished)
                # Groups are scored as they leave the engine, while the engine works on the chunk's long tail.
                scoring.append(asyncio.create_task(self._score(finished, request, pending)))
            pending.retries += retries  # the last group's count is the chunk's
            index = request.chunk
            completions = tuple(c for i in sorted(arrived) for c in arrived[i].completions)
            pending.rollouts[index] = RolloutChunk(request, completions, max(g.generate_s for g in arrived.values()))
            pending.generate_s += pending.rollouts[index].generate_s
            if len(pending.rollouts) == pending.chunks:
                # Chunk order, not arrival order: the batch (and a resumed run) does not depend on timing.
                everything = [c for i in sorted(pending.rollouts) for c in pending.rollouts[i].completions]
                pending.generated.set_result(StepRollouts(everything, pending.scored))
            scored = {position: group for part in await asyncio.gather(*scoring) for position, group in part}
            pending.groups[index] = [scored[i] for i in sorted(scored)]
            pending.score_calls += len(scoring)
            if len(pending.groups) == pending.chunks and not pending.scored.done():
                groups = [group for i in sorted(pending.groups) for group in pending.groups[i]]
                pending.scored.set_result(StepBatch(groups, pending.generate_s, pending.score_s / pending.score_calls,
                                                    pending.retries))
        except BaseException as exc:  # the learner awaits these futures: it must hear about any failure
            for task in scoring:
                task.cancel()
            pending.fail(exc if isinstance(exc, Exception) else RuntimeError("chunk cancelled"))
            raise

    async def _score(self, finished: tuple[RolloutGroup, ...], request: RolloutRequest,
                     pending: _Pending) -> list[tuple[int, Group]]:
        """One scoring call for the groups that left the engine together -> (position, scored group)."""
        if pending.previous is not None:
            # With max_staleness >= 1 the next step's first groups are ready while this step's last
            # are still scoring; they would only delay the batch the learner is waiting for.
            await asyncio.wait([pending.previous])
        completions = tuple(c for g in finished for c in g.completions)
        sent = time.monotonic()
        scores = await self.rewards.score(to_samples(request.step, completions))
        pending.score_s += time.monotonic() - sent
        if len(scores) != len(completions):
            raise RuntimeError(f"reward client returned {len(scores)} results for {len(completions)} samples")
        out, offset = [], 0
        for g in finished:
            size = len(g.completions)
            out.append((g.position, Group(request.prompts[g.position], list(g.completions),
                                          list(scores[offset : offset + size]))))
            offset += size
        return out

    async def close(self) -> None:
        tasks = [t for t in (self._producer, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pool.close()
