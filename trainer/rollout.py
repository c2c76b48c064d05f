"""Rollout workers: Ray actors that sample G completions per prompt with a given policy version.

The learner publishes weights with `ray.put(state_dict)` after each update; a worker loads them
the first time it is asked to generate with a newer version, so weights cross the object store
once per worker and version. Each completion carries its sampling log-probs (per token, from
the exact weights that generated it) and that version, so the learner's importance ratio
corrects for any lag. On CPU generation is transformers `generate`; with a GPU it is vLLM.
"""

from __future__ import annotations

import importlib.util
import logging
import os
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
    return (req.seed * 1_000_003 + req.step * 1_009 + req.chunk) % (2**31)


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
        outputs = self.llm.generate([p.prompt for p in req.prompts], params, use_tqdm=False)
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
    each holds a GPU and generates with vLLM, otherwise with transformers on CPU."""
    use_vllm = torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None
    if torch.cuda.is_available() and not use_vllm:
        log.warning("a CUDA GPU is present but vLLM is not installed: rollouts use transformers on CPU")
    options: dict[str, Any] = {"num_cpus": num_cpus, "resources": dict(resources or {})}
    if use_vllm:
        options["num_gpus"] = 1
    return [
        RolloutWorker.options(**options).remote(model.config, tokenizer, workdir, use_vllm)
        for _ in range(num_workers)
    ]


def publish_weights(model: torch.nn.Module) -> ray.ObjectRef:
    """Put a CPU copy of the weights in the object store once; every worker fetches the same object."""
    return ray.put({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
