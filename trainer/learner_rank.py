"""One learner rank: the GRPO update of its share of a step, in micro-batches, on an FSDP2-sharded policy.

Plain torch and transformers, no Ray: `trainer/learner_group.py` hosts N of these (Ray actors, or
one in the driver process) and `bench/gpu_learner.py` drives one on a bare GPU host.

    prepare(rows)                 rows -> micro-batches of at most `micro_batch_tokens` padded tokens;
                                  the reference log-probs (beta > 0), micro-batch by micro-batch; the
                                  first micro-batch's forward pass, its graph kept. Needs no rewards,
                                  so it runs while the step's last completions are being scored.
    update(advantages, keep, lr)  the step's normalisers, all-reduced over the ranks -> per micro-batch:
                                  forward, loss = its tokens' sum / the step's normaliser, backward
                                  (gradients accumulate) -> clip the global norm -> AdamW
    full_state_dict()             every weight, gathered once per version onto rank 0's CPU
    save(dir) / load(dir)         the sharded policy and optimizer (torch Distributed Checkpoint)

Why N ranks in micro-batches reproduce the one-batch update (to float rounding): every loss type
is a sum over tokens or sequences divided by a normaliser of the whole step (trainer/loss.py), so
with the step's totals each micro-batch's loss is its own share, gradients add up in `.grad`, and
FSDP2 sums them across ranks (gradient divide factor 1, not its default mean). FSDP2's collectives
need every rank to run as many forward and backward passes as the others: a rank with fewer
micro-batches repeats its last one with weight 0.

The policy is an FSDP2 module at world size 1 too (a one-process group), so bf16 mixed precision
and sharded checkpoints have one code path; on the tiny default FSDP2 at world size 1 cost 5-10%
of a forward+backward pass (measured against the plain module).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor
from transformers import AutoModelForCausalLM, PretrainedConfig

from trainer.config import GRPOConfig, LearnerConfig
from trainer.loss import StepTotals, grpo_loss, loss_stats
from trainer.policy import Batch, completion_logps, pad_completions, pad_prompts


@dataclass(frozen=True)
class Row:
    """One completion to learn from, as token ids (the driver tokenises, ranks need no tokenizer)."""

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    old_logps: tuple[float, ...]
    """Per completion token, under the policy that generated it."""


@dataclass(frozen=True)
class RankStats:
    """The step's figures, summed over every micro-batch of every rank (each rank returns the same)."""

    loss: float
    kl: float
    clip_fraction: float
    ratio_mean: float
    grad_norm: float
    stepped: bool
    """False when the step had no sequence to learn from: no optimizer step was taken."""


@dataclass
class _MicroBatch:
    rows: torch.Tensor  # (b,) indices into the rank's rows
    batch: Batch
    old_logps: torch.Tensor  # (b, T)
    weight: float
    """0 for a repeat that only keeps this rank's collectives in step with the others."""
    ref_logps: torch.Tensor | None = None  # (b, T)
    mask: torch.Tensor | None = field(default=None)  # (b, T) completion mask of the kept rows, set by update


def plan_micro_batches(lengths: list[tuple[int, int]], budget_tokens: int | None) -> list[list[int]]:
    """(prompt, completion) lengths -> row indices per micro-batch.

    Longest rows first, each micro-batch as many rows as fit in `budget_tokens` once padded
    (rows x (longest prompt + longest completion)); a row over the budget alone. Sorting by length
    keeps the padding small; the order of rows does not change the loss, which is a sum.
    """
    if budget_tokens is None:
        return [list(range(len(lengths)))] if lengths else []
    out: list[list[int]] = []
    current: list[int] = []
    prompt_width = completion_width = 0
    for i in sorted(range(len(lengths)), key=lambda i: -sum(lengths[i])):
        p, c = max(prompt_width, lengths[i][0]), max(completion_width, max(1, lengths[i][1]))
        if current and (len(current) + 1) * (p + c) > budget_tokens:
            out.append(current)
            current, p, c = [], lengths[i][0], max(1, lengths[i][1])
        current.append(i)
        prompt_width, completion_width = p, c
    if current:
        out.append(current)
    return out


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("learner.device: cuda, but this learner process sees no CUDA GPU")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def init_process_group(device: torch.device, rank: int = 0, world_size: int = 1,
                       init_method: str | None = None) -> None:
    """Join the learner group's torch.distributed group: NCCL on CUDA, gloo on CPU. Without
    `init_method`, a group of this one process (a file store in a fresh temporary directory)."""
    if init_method is None:
        if world_size != 1:
            raise ValueError("init_method: required for a group of more than one process")
        init_method = "file://" + str(Path(tempfile.mkdtemp(prefix="arbiter-learner-")) / "store")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=init_method, rank=rank,
                            world_size=world_size)


def shard(model: torch.nn.Module, device: torch.device, precision: str) -> None:
    """FSDP2: each decoder layer (the classes transformers names in `_no_split_modules`), then the root."""
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    compute = torch.bfloat16 if precision == "bf16" else torch.float32
    policy = MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=torch.float32)
    layer_classes = set(getattr(model, "_no_split_modules", None) or ())
    for module in [m for m in model.modules() if type(m).__name__ in layer_classes]:
        fully_shard(module, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    model.set_gradient_divide_factor(1.0)  # the loss parts are already over the step's normaliser: sum, not mean


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


class LearnerRank:
    """Needs a torch.distributed process group (`init_process_group`), of one process or many."""

    def __init__(self, model_config: PretrainedConfig, weights: dict[str, torch.Tensor],
                 ref_weights: dict[str, torch.Tensor] | None, grpo: GRPOConfig, learner: LearnerConfig,
                 pad_id: int) -> None:
        self.grpo, self.learner, self.pad_id = grpo, learner, pad_id
        self.device = resolve_device(learner.device)
        self.model = self._build(model_config, weights, trainable=True)
        self.ref_model = None
        if grpo.beta != 0.0:
            if ref_weights is None:
                raise ValueError("ref_weights: required when grpo.beta != 0")
            self.ref_model = self._build(model_config, ref_weights, trainable=False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=grpo.learning_rate,
                                           weight_decay=grpo.weight_decay)
        self._micro: list[_MicroBatch] = []
        self._first_logps: torch.Tensor | None = None

    def _build(self, config: PretrainedConfig, weights: dict[str, torch.Tensor], trainable: bool) -> Any:
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(weights)
        if trainable and self.learner.gradient_checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.to(self.device)
        model.train(trainable)
        model.requires_grad_(trainable)
        shard(model, self.device, self.learner.precision)
        return model

    def _micro_batch(self, rows: list[Row], index: list[int], weight: float) -> _MicroBatch:
        prompt_ids, prompt_mask = pad_prompts([list(rows[i].prompt_ids) for i in index], self.pad_id)
        completion_ids, completion_mask = pad_completions([list(rows[i].completion_ids) for i in index], self.pad_id)
        old = torch.zeros(completion_ids.shape)  # (b, T); padding positions are masked out
        for j, i in enumerate(index):
            old[j, : len(rows[i].old_logps)] = torch.tensor(rows[i].old_logps)
        d = self.device
        batch = Batch(prompt_ids.to(d), prompt_mask.to(d), completion_ids.to(d), completion_mask.to(d))
        return _MicroBatch(torch.tensor(index, dtype=torch.long), batch, old.to(d), weight)

    def _logps(self, model: Any, mb: _MicroBatch) -> torch.Tensor:
        return completion_logps(model, mb.batch, self.grpo.temperature)  # (b, T)

    def prepare(self, rows: list[Row]) -> int:
        """Micro-batches, reference log-probs and the first forward pass of `rows` -> micro-batches run."""
        if not rows:
            raise ValueError("rows: every rank needs at least one row (the group pads short ranks)")
        plan = plan_micro_batches([(len(r.prompt_ids), len(r.completion_ids)) for r in rows],
                                  self.learner.micro_batch_tokens)
        count = torch.tensor([len(plan)], device=self.device)
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
        self._micro = [self._micro_batch(rows, index, 1.0) for index in plan]
        self._micro += [self._micro_batch(rows, plan[-1], 0.0) for _ in range(int(count) - len(plan))]
        if self.ref_model is not None:
            with torch.no_grad():
                for mb in self._micro:
                    mb.ref_logps = self._logps(self.ref_model, mb)
        self._first_logps = self._logps(self.model, self._micro[0])
        return len(self._micro)

    def update(self, advantages: list[float], keep: list[bool], learning_rate: float) -> RankStats:
        """One optimizer step on the prepared rows: `advantages` (computed once over the whole step) and
        `keep` (False: a row outside the loss, e.g. a group dynamic sampling dropped) per row."""
        adv = torch.tensor(advantages, dtype=torch.float32, device=self.device)  # (B_rank,)
        kept = torch.tensor(keep, dtype=torch.float32, device=self.device)  # (B_rank,)
        local = torch.zeros(2, dtype=torch.float64, device=self.device)  # sequences, tokens
        for mb in self._micro:
            mb.mask = mb.batch.completion_mask * kept[mb.rows].unsqueeze(1) * mb.weight  # (b, T)
            local += torch.stack([(kept[mb.rows] * mb.weight).sum(), mb.mask.sum()]).double()
        dist.all_reduce(local)
        totals = StepTotals(sequences=float(local[0]), tokens=float(local[1]))
        if totals.sequences == 0:  # nothing to learn from this step: the weights stay
            self._first_logps = None
            return RankStats(0.0, 0.0, 0.0, 1.0, 0.0, stepped=False)
        g = self.grpo
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        self.optimizer.zero_grad(set_to_none=True)
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)  # loss, kl, clip fraction, ratio mean
        for i, mb in enumerate(self._micro):
            logps = self._first_logps if i == 0 else self._logps(self.model, mb)  # (b, T)
            loss = grpo_loss(
                logps, mb.old_logps, mb.ref_logps, adv[mb.rows], mb.mask, loss_type=g.loss_type, beta=g.beta,
                epsilon_low=g.epsilon_low, epsilon_high=g.epsilon_high, max_completion_length=g.max_completion_tokens,
                kl_bias_correction=g.kl_bias_correction, totals=totals,
            )
            loss.backward()
            stats = loss_stats(logps.detach(), mb.old_logps, mb.ref_logps, adv[mb.rows], mb.mask,
                               epsilon_low=g.epsilon_low, epsilon_high=g.epsilon_high, totals=totals)
            sums += torch.tensor([loss.item(), stats.kl_mean, stats.clip_fraction, stats.ratio_mean],
                                 dtype=torch.float64, device=self.device)
        self._first_logps = None
        grad_norm = _full(torch.nn.utils.clip_grad_norm_(self.model.parameters(), g.max_grad_norm))
        self.optimizer.step()
        dist.all_reduce(sums)
        loss_sum, kl, clip, ratio = sums.tolist()
        return RankStats(loss_sum, kl, clip, ratio, float(grad_norm), stepped=True)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Every weight, unsharded, on rank 0's CPU (other ranks get {}); a collective: every rank calls it."""
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(self.model, options=options)

    def full_gradients(self) -> dict[str, torch.Tensor]:
        """The gradients the last update applied, unsharded, on CPU; a collective: every rank calls it."""
        return {name: _full(p.grad).cpu() for name, p in self.model.named_parameters() if p.grad is not None}

    def save(self, path: Path | str) -> None:
        """This rank's shard of the policy and optimizer state into the checkpoint directory `path`."""
        model_state, optim_state = get_state_dict(self.model, self.optimizer)
        dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(path))

    def load(self, path: Path | str) -> None:
        """The policy and optimizer state `save` wrote (with any number of ranks: DCP reshards)."""
        model_state, optim_state = get_state_dict(self.model, self.optimizer)
        state = {"model": model_state, "optimizer": optim_state}
        dcp.load(state, checkpoint_id=str(path))
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
