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

from rewards.strict_config import ConfigError, from_dict

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
    prompts: str | None = "examples/arith_prompts.jsonl"
    """JSONL lines {"id", "prompt", "answer", "task"}; a relative path is looked up in the working
    directory, then in the repository (so the default runs from anywhere). null: generated only."""
    generated: tuple[Literal["linear_functions"], ...] = ()
    """Task families generated in code (trainer/code_tasks.py), added to `prompts`."""


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
    resources: dict[str, float] = field(default_factory=dict)
    """Ray custom resources each rollout actor asks for, e.g. {rollout_gpu: 1}: pins rollouts to the
    nodes that advertise them (deploy/kuberay and deploy/local/cluster.sh use `rollout_gpu`)."""


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
class ClusterConfig:
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
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        g = self.grpo
        checks = [
            (g.group_size >= 2, "grpo.group_size: must be at least 2 (advantages are relative within a group)"),
            (g.steps >= 1, "grpo.steps: must be at least 1"),
            (g.prompts_per_step >= 1, "grpo.prompts_per_step: must be at least 1"),
            (g.max_staleness >= 0, "grpo.max_staleness: must be >= 0"),
            (g.temperature > 0, "grpo.temperature: must be > 0"),
            (self.rollout.num_workers >= 1, "rollout.num_workers: must be at least 1"),
            (
                1 <= self.rollout.chunks_per_step <= g.prompts_per_step,
                "rollout.chunks_per_step: must be between 1 and grpo.prompts_per_step",
            ),
            (0.0 <= self.sft.generated_correct_fraction <= 1.0, "sft.generated_correct_fraction: must be in [0, 1]"),
            (bool(self.rewards.routing), "rewards.routing: must route at least one task"),
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
