"""The learner group: the driver's handle on `learner.ranks` learner ranks (trainer/learner_rank.py).

    driver (the orchestrator)                      every rank
    prepare(completions): tokenise; split the      prepare(rows): micro-batches, reference log-probs,
      step's groups whole across the ranks           the first micro-batch's forward pass
    update(groups, step): advantages once over     update(advantages, keep, lr): the step's normalisers
      the full batch, each rank its rows' share      all-reduced, forward/backward per micro-batch, AdamW
    publish(): the full weights, once a version    full_state_dict() (rank 0 holds it) -> ray.put
    broadcast(workers): the same, sent from rank 0 full_state_dict() -> rank 0 broadcasts it to the
      to every rollout actor at once               actors (trainer/weight_sync.py; rollout.weight_sync)
    save(dir): a sharded checkpoint                dcp.save, each rank its shard

Where ranks run: more than one rank, a cluster with GPUs, or `learner.resources` -> one Ray actor
per rank (num_gpus 1 on a GPU cluster, `num_cpus_per_rank`, the custom resources), joined in one
process group at rank 0's node address. One rank on a CPU cluster runs in the driver process (same
rank code, a one-process group, no actor start-up, no batch through the object store): the
default run is as fast as before the learner group (docs/benchmarks.md, issue 10). A rank that
dies (its process or its node) ends the run with `LearnerRankDied` naming the rank, its node and
process; `--resume` continues from the last checkpoint.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch

from trainer.config import GRPOConfig, LearnerConfig
from trainer.learner import UpdateResult, learning_rate, step_advantages
from trainer.learner_rank import LearnerRank, RankStats, Row, init_process_group, resolve_device
from trainer.pipeline import Group
from trainer.rollout import Completion
from trainer.weight_sync import SyncAddress, TensorSpec, free_address, open_group, send


@dataclass(frozen=True)
class RankPlace:
    rank: int
    node_ip: str
    node_id: str
    pid: int


class LearnerRankDied(RuntimeError):
    """A learner rank's process or node died; the message names which, and how to continue."""

    def __init__(self, place: RankPlace, world_size: int, cause: BaseException) -> None:
        self.place = place
        super().__init__(
            f"learner rank {place.rank} of {world_size} (pid {place.pid}) on node {place.node_ip} "
            f"(node id {place.node_id[:12]}) died: {type(cause).__name__}. The run stops here; "
            "`arbiter train --resume` with the same --output continues from the last checkpoint."
        )


class RankHost:
    """One rank's process-side object: a Ray actor (`RankActor`), or a plain object in the driver."""

    def __init__(self, learner: LearnerConfig) -> None:
        self.learner = learner
        self.rank: LearnerRank | None = None
        self._owns_group = False
        self._index = 0
        self._broadcast: tuple[Any, list[TensorSpec], torch.device] | None = None  # rank 0: group, layout, device

    def place(self, rank: int) -> RankPlace:
        context = ray.get_runtime_context() if ray.is_initialized() else None
        node_id = context.get_node_id() if context else "local"
        return RankPlace(rank, ray.util.get_node_ip_address() if context else "127.0.0.1", node_id, os.getpid())

    def rendezvous_address(self) -> str:
        """tcp://THIS_NODE:FREE_PORT for the other ranks to join (asked of rank 0)."""
        ip = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((ip, 0))
            port = s.getsockname()[1]
        return f"tcp://{ip}:{port}"

    def connect(self, rank: int, world_size: int, init_method: str | None) -> None:
        import torch.distributed as dist

        from trainer.policy import limit_threads

        limit_threads()
        self._index = rank
        if world_size == 1 and dist.is_initialized():  # a process that already has its group (a test, a bench)
            return
        init_process_group(resolve_device(self.learner.device), rank, world_size, init_method)
        self._owns_group = True

    def build(self, model_config: Any, weights: dict[str, torch.Tensor], ref_weights: dict[str, torch.Tensor] | None,
              grpo: GRPOConfig, pad_id: int) -> None:
        self.rank = LearnerRank(model_config, weights, ref_weights, grpo, self.learner, pad_id)

    def prepare(self, rows: list[Row]) -> int:
        return self._rank.prepare(rows)

    def update(self, advantages: list[float], keep: list[bool], lr: float) -> RankStats:
        return self._rank.update(advantages, keep, lr)

    def publish(self) -> ray.ObjectRef | None:
        """The full weights into the object store once (rank 0); every rank takes part in the gather."""
        weights = self._rank.full_state_dict()
        return ray.put(weights) if weights else None

    def broadcast_address(self, world_size: int, engine: str) -> SyncAddress:
        """Rank 0: where the weight-sync group of this rank and `world_size - 1` rollout actors meets.
        NCCL when this rank and vLLM engines are on GPUs, else gloo (CPU tensors)."""
        nccl = self._rank.device.type == "cuda" and engine == "vllm"
        host = ray.util.get_node_ip_address() if ray.is_initialized() else "127.0.0.1"
        return free_address(host, world_size, "nccl" if nccl else "gloo")

    def open_broadcast(self, address: SyncAddress, specs: list[TensorSpec]) -> None:
        """Rank 0 joins the weight-sync group as its sender (the other ranks only take part in the gather)."""
        if self._index == 0:
            device = self._rank.device if address.backend == "nccl" else torch.device("cpu")
            self._broadcast = (open_group(address, 0), specs, device)

    def broadcast(self) -> None:
        """Gather the full weights (every rank) and broadcast them from rank 0 to the rollout actors."""
        weights = self._rank.full_state_dict()
        if self._broadcast is not None:
            group, specs, device = self._broadcast
            send(group, weights, specs, device)

    def full_gradients(self) -> dict[str, torch.Tensor]:
        return self._rank.full_gradients()

    def save(self, path: str) -> None:
        self._rank.save(path)

    def load(self, path: str) -> None:
        self._rank.load(path)

    def close(self) -> None:
        import torch.distributed as dist

        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()

    @property
    def _rank(self) -> LearnerRank:
        if self.rank is None:
            raise RuntimeError("learner rank used before build()")
        return self.rank


RankActor = ray.remote(RankHost)


def runs_in_driver(learner: LearnerConfig, cluster_gpus: float) -> bool:
    return learner.ranks == 1 and not learner.resources and cluster_gpus == 0


def split_groups(num_groups: int, ranks: int) -> list[tuple[int, int]]:
    """Contiguous, whole groups per rank -> [start, end) group indices; a rank left without a group
    gets group 0 again (outside the loss) so that its collectives keep in step."""
    base, extra = divmod(num_groups, ranks)
    spans, start = [], 0
    for r in range(ranks):
        size = base + (1 if r < extra else 0)
        spans.append((start, start + size) if size else (0, 1))
        start += size
    return spans


class LearnerGroup:
    """Start with `LearnerGroup.start(...)`; every step: `prepare`, `update`, `publish`."""

    def __init__(self, hosts: list[Any], places: list[RankPlace], remote: bool, grpo: GRPOConfig,
                 tokenizer: Any) -> None:
        self.hosts, self.places, self.remote = hosts, places, remote
        self.grpo, self.tokenizer = grpo, tokenizer
        self._spans: list[tuple[int, int]] = []
        self._padding: list[bool] = []

    @classmethod
    def start(cls, learner: LearnerConfig, grpo: GRPOConfig, model: Any, ref_weights: dict[str, torch.Tensor] | None,
              tokenizer: Any, resume_dir: Path | None = None) -> LearnerGroup:
        """Start the ranks with `model`'s weights (and the reference's), then load `resume_dir`'s sharded
        policy and optimizer state if given."""
        gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else torch.cuda.device_count()
        if learner.device == "cuda" and not gpus:
            raise RuntimeError("learner.device: cuda, but the Ray cluster has no GPU")
        weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if runs_in_driver(learner, gpus):
            host = RankHost(learner)
            host.connect(0, 1, None)
            host.build(model.config, weights, ref_weights, grpo, tokenizer.pad_token_id)
            group = cls([host], [host.place(0)], remote=False, grpo=grpo, tokenizer=tokenizer)
        else:
            options: dict[str, Any] = {"num_cpus": learner.num_cpus_per_rank, "resources": dict(learner.resources)}
            if gpus and learner.device != "cpu":
                options["num_gpus"] = 1
            hosts = [RankActor.options(**options).remote(learner) for _ in range(learner.ranks)]
            places = ray.get([h.place.remote(r) for r, h in enumerate(hosts)])
            group = cls(hosts, places, remote=True, grpo=grpo, tokenizer=tokenizer)
            try:
                address = ray.get(hosts[0].rendezvous_address.remote())
                group._sync("connect", [(r, learner.ranks, address) for r in range(learner.ranks)])
                weights_ref = ray.put(weights)
                ref_ref = ray.put(ref_weights) if ref_weights is not None else None
                group._sync("build", [(model.config, weights_ref, ref_ref, grpo, tokenizer.pad_token_id)] * len(hosts))
            except BaseException:
                group.close()
                raise
        if resume_dir is not None:
            group._sync("load", [(str(resume_dir),)] * len(group.hosts))
        return group

    @property
    def world_size(self) -> int:
        return len(self.hosts)

    async def _all(self, method: str, args: list[tuple[Any, ...]]) -> list[Any]:
        """Call `method` on every rank at once; a dead rank raises LearnerRankDied at once (the others
        would wait for it in a collective forever)."""
        if not self.remote:
            return [await asyncio.to_thread(getattr(self.hosts[0], method), *args[0])]
        tasks = [asyncio.ensure_future(self._one(r, method, a)) for r, a in enumerate(args)]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                raise task.exception()
        return [t.result() for t in tasks]

    async def _one(self, rank: int, method: str, args: tuple[Any, ...]) -> Any:
        try:
            return await getattr(self.hosts[rank], method).remote(*args)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            raise LearnerRankDied(self.places[rank], self.world_size, exc) from exc

    def _sync(self, method: str, args: list[tuple[Any, ...]]) -> list[Any]:
        return asyncio.run(self._all(method, args))

    async def prepare(self, completions: list[Completion], version: int | None = None) -> None:
        """Hand each rank its whole groups of the step; they start the forward passes that need no rewards.
        `version`: the updates applied so far; the completions it generated are on-policy and measure
        rollout_probs_diff_* (None: not measured)."""
        g = self.grpo.group_size
        prompt_ids = self.tokenizer([c.prompt.prompt for c in completions], add_special_tokens=False)["input_ids"]
        rows = [Row(tuple(p), tuple(c.token_ids), tuple(c.logps), c.policy_version == version)
                for p, c in zip(prompt_ids, completions, strict=True)]
        num_groups = len(rows) // g
        self._spans = split_groups(num_groups, self.world_size)
        self._padding = [r >= num_groups for r in range(self.world_size)]
        await self._all("prepare", [(rows[s * g : e * g],) for s, e in self._spans])

    async def update(self, groups: list[Group], step: int, step_seed: int) -> UpdateResult:
        """`groups` in the order of the completions `prepare` got. Advantages over the full batch (of the
        groups dynamic sampling keeps), then one optimizer step over all ranks."""
        g = self.grpo.group_size
        advantages, keep, kept = step_advantages(groups, self.grpo, step_seed)
        lr = learning_rate(self.grpo, step)
        args = [(advantages[s * g : e * g].tolist(), (keep[s * g : e * g] & (not pad)).tolist(), lr)
                for (s, e), pad in zip(self._spans, self._padding, strict=True)]
        stats: RankStats = (await self._all("update", args))[0]
        return UpdateResult(stats.loss, stats.kl, stats.clip_fraction, stats.ratio_mean, kept, stats.grad_norm,
                            stats.probs_diff_mean, stats.probs_diff_max)

    async def publish(self) -> ray.ObjectRef:
        """The current weights in the object store, gathered once for every rollout worker."""
        return (await self._all("publish", [()] * self.world_size))[0]

    async def open_broadcast(self, workers: list[Any], specs: list[TensorSpec], engine: str) -> None:
        """Form the weight-sync group: rank 0 (group rank 0) and each rollout actor (group rank i + 1)."""
        address = (await self._one(0, "broadcast_address", (len(workers) + 1, engine)) if self.remote
                   else self.hosts[0].broadcast_address(len(workers) + 1, engine))
        await asyncio.gather(self._all("open_broadcast", [(address, specs)] * self.world_size),
                             *(w.join_broadcast.remote(address, i + 1, specs) for i, w in enumerate(workers)))

    async def broadcast(self, workers: list[Any], version: int) -> None:
        """The current weights to every rollout actor at once: rank 0 sends while they receive."""
        await asyncio.gather(self._all("broadcast", [()] * self.world_size),
                             *(w.receive_weights.remote(version) for w in workers))

    async def full_gradients(self) -> dict[str, torch.Tensor]:
        return (await self._all("full_gradients", [()] * self.world_size))[0]

    async def save(self, path: Path) -> None:
        await self._all("save", [(str(path),)] * self.world_size)

    def close(self) -> None:
        if self.remote:
            for host in self.hosts:
                ray.kill(host)
        else:
            self.hosts[0].close()
