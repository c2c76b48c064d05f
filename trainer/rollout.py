"""Rollout workers: Ray actors that sample G completions per prompt with a given policy version.

Losing one is routine (preemptible GPU nodes): `RolloutPool` sends each chunk to the least busy
live actor, and a chunk whose actor or node died is generated again on a live one with the
weights current at that moment, while Ray restarts the lost actor wherever it fits.

The learner publishes weights with `ray.put(state_dict)` after each update; a worker loads them
the first time it is asked to generate with a newer version, so weights cross the object store
once per worker and version. Each completion carries its sampling log-probs (per token, from
the exact weights that generated it) and that version, so the learner's importance ratio
corrects for any lag. On CPU generation is transformers `generate`; with a GPU it is vLLM.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
import torch

from trainer.data import PromptItem
from trainer.policy import Sampled, sample

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
    """transformers generate; the sampling log-probs come from the logits it sampled from."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def load(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state_dict)

    def generate(self, req: RolloutRequest) -> list[Sampled]:
        return sample(self.model, self.tokenizer, [p.prompt for p in req.prompts], req.group_size,
                      req.max_new_tokens, req.temperature, _seed_for(req))


class _VLLMGenerator:
    """vLLM on one GPU; weights are pushed in place as TRL's colocate mode does."""

    def __init__(self, model: Any, tokenizer: Any, workdir: str) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # keep the engine in this process
        from vllm import LLM  # lazily: vLLM exists only on GPU nodes

        path = os.path.join(workdir, "vllm_init")
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        self.tokenizer = tokenizer
        self.llm = LLM(model=path, gpu_memory_utilization=0.5, logprobs_mode="processed_logprobs",
                       max_num_batched_tokens=4096, enable_prefix_caching=False)

    def load(self, state_dict: dict[str, torch.Tensor]) -> None:
        runner = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        runner.load_weights(list(state_dict.items()))
        self.llm.reset_prefix_cache()

    def generate(self, req: RolloutRequest) -> list[Sampled]:
        from vllm import SamplingParams

        params = SamplingParams(n=req.group_size, temperature=req.temperature, max_tokens=req.max_new_tokens,
                                logprobs=0, seed=_seed_for(req), stop_token_ids=[self.tokenizer.eos_token_id])
        # Token ids tokenized as the learner tokenizes them: no special tokens added (a chat template
        # writes its own BOS), so the sampling log-probs and the learner's see the same context.
        prompts = [{"prompt_token_ids": self.tokenizer(p.prompt, add_special_tokens=False)["input_ids"]}
                   for p in req.prompts]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        out = []
        for request_output in outputs:
            for o in request_output.outputs:
                ids = list(o.token_ids)
                out.append(Sampled(ids, [lp[t].logprob for t, lp in zip(ids, o.logprobs, strict=True)]))
        return out


@ray.remote
class RolloutWorker:
    def __init__(self, model_config: Any, tokenizer: Any, workdir: str, use_vllm: bool) -> None:
        from transformers import AutoModelForCausalLM

        from trainer.policy import limit_threads

        limit_threads()
        model = AutoModelForCausalLM.from_config(model_config)
        model.eval()
        self.tokenizer = tokenizer
        self.generator = _VLLMGenerator(model, tokenizer, workdir) if use_vllm else _HFGenerator(model, tokenizer)
        self.version = -1

    def ready(self) -> int:
        """Answers once the actor is up (again), with its process id: how a restarted actor is seen back."""
        return os.getpid()

    def generate(self, weights: list[ray.ObjectRef], version: int, req: RolloutRequest) -> RolloutChunk:
        """`weights` is a one-element list so that Ray does not fetch the state dict unless it is new."""
        import time

        if version != self.version:
            self.generator.load(ray.get(weights[0]))
            self.version = version
        start = time.perf_counter()
        rows = self.generator.generate(req)
        completions = tuple(
            Completion(
                prompt=req.prompts[i // req.group_size], index=i % req.group_size, token_ids=tuple(row.token_ids),
                text=self.tokenizer.decode(row.token_ids, skip_special_tokens=True), logps=tuple(row.logps),
                policy_version=version,
            )
            for i, row in enumerate(rows)
        )
        return RolloutChunk(req, completions, time.perf_counter() - start)


def start_workers(num_workers: int, num_cpus: float, model: Any, tokenizer: Any, workdir: str,
                  resources: dict[str, float] | None = None) -> list[Any]:
    """One actor per worker; with a GPU and vLLM installed (GPU images add it; it is no dependency)
    each holds a GPU and generates with vLLM, otherwise with transformers on CPU.

    Actors are spread over the nodes that fit them, so one node's loss takes as few as possible, and
    Ray restarts a lost one without limit (its chunks are retried by `RolloutPool`, not by Ray).
    """
    use_vllm = torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None
    if torch.cuda.is_available() and not use_vllm:
        log.warning("a CUDA GPU is present but vLLM is not installed: rollouts use transformers on CPU")
    options: dict[str, Any] = {"num_cpus": num_cpus, "resources": dict(resources or {}), "max_restarts": -1,
                               "max_task_retries": 0, "scheduling_strategy": "SPREAD"}
    if use_vllm:
        options["num_gpus"] = 1
    return [
        RolloutWorker.options(**options).remote(model.config, tokenizer, workdir, use_vllm)
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

    A failed call marks its actor lost and the chunk is generated again (same request, so the same
    prompts and group size; the newest weights) on a live actor. Only a call that raised is retried,
    so every chunk comes back exactly once. A lost actor rejoins when it answers `ready` (Ray
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

    async def generate(self, request: RolloutRequest,
                       weights: Callable[[], tuple[int, Any]]) -> tuple[RolloutChunk, int]:
        """-> (the chunk, how many times it was generated again); `weights()` -> (version, object ref)."""
        retries = 0
        while True:
            index = await self._acquire()
            version, ref = weights()
            try:
                return await self.workers[index].generate.remote([ref], version, request), retries
            except LOST as exc:
                if getattr(exc, "actor_init_failed", False):
                    raise  # its __init__ raised: a broken set-up, which a restart would only repeat
                retries += 1
                self._lose(index, exc)
            finally:
                self._busy[index] -= 1

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
