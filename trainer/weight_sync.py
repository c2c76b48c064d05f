"""Weight broadcast from learner rank 0 to the rollout engines (`rollout.weight_sync: broadcast`).

    learner rank 0 (sender, group rank 0)          every rollout actor (group ranks 1..N)
    open_group(address, 0)          <-- TCPStore -->  open_group(address, i)
    send(full state dict, specs)                      receive(specs) -> {name: tensor}
      one flat buffer per dtype, one broadcast each     views into the received buffers

The group is a torch.distributed ProcessGroup object of its own (gloo on CPU, NCCL on CUDA) built on a
TCPStore that rank 0 hosts, not the default process group: the learner ranks keep theirs for FSDP2,
and a vLLM engine keeps its own. Both sides get the same layout (names, shapes, dtypes: `layout` of the
driver's copy of the model) when the group opens, so a round carries only the tensors' bytes. Packing every tensor of a
dtype into one buffer makes a round one collective per dtype instead of one per tensor (a 0.5B model has
~300 tensors). Plain torch, no Ray and no vLLM: the vLLM side is trainer/vllm_engine.py.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class SyncAddress:
    host: str
    port: int
    world_size: int
    """Rank 0 (the sender) and one rank per rollout actor."""
    backend: str = "gloo"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype


def layout(state_dict: dict[str, torch.Tensor]) -> list[TensorSpec]:
    """The round's tensors, in state-dict order."""
    return [TensorSpec(name, tuple(t.shape), t.dtype) for name, t in state_dict.items()]


def free_address(host: str, world_size: int, backend: str) -> SyncAddress:
    """A port free on `host` now, for rank 0's store."""
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    return SyncAddress(host, port, world_size, backend)


def open_group(address: SyncAddress, rank: int, timeout_s: float = 300.0) -> dist.ProcessGroup:
    """Join the sync group; blocks until all `world_size` ranks have joined. Rank 0 hosts the store."""
    timeout = timedelta(seconds=timeout_s)
    store = dist.TCPStore(address.host, address.port, address.world_size, is_master=rank == 0, timeout=timeout)
    prefixed = dist.PrefixStore("arbiter-weight-sync", store)
    if address.backend == "nccl":
        return dist.ProcessGroupNCCL(prefixed, rank, address.world_size, timeout=timeout)
    options = dist.ProcessGroupGloo._Options()
    options._timeout = timeout
    options._devices = [dist.ProcessGroupGloo.create_device(hostname=address.host)]
    return dist.ProcessGroupGloo(prefixed, rank, address.world_size, options)


def _broadcast(group: dist.ProcessGroup, buffer: torch.Tensor) -> None:
    options = dist.BroadcastOptions()
    options.rootRank = 0
    group.broadcast([buffer], options).wait()


def _dtypes(specs: list[TensorSpec]) -> list[torch.dtype]:
    return sorted({s.dtype for s in specs}, key=str)


def send(group: dist.ProcessGroup, state_dict: dict[str, torch.Tensor], specs: list[TensorSpec],
         device: torch.device) -> None:
    """Rank 0: broadcast the tensors `specs` name, packed per dtype."""
    for dtype in _dtypes(specs):
        parts = [state_dict[s.name].detach().reshape(-1).to(device) for s in specs if s.dtype == dtype]
        _broadcast(group, torch.cat(parts))


def receive(group: dist.ProcessGroup, specs: list[TensorSpec], device: torch.device) -> dict[str, torch.Tensor]:
    """Ranks 1..N: the tensors rank 0 `send`s, in `specs`' order (views into one buffer per dtype)."""
    out: dict[str, torch.Tensor] = {}
    for dtype in _dtypes(specs):
        mine = [s for s in specs if s.dtype == dtype]
        sizes = [int(torch.Size(s.shape).numel()) for s in mine]
        buffer = torch.empty(sum(sizes), dtype=dtype, device=device)
        _broadcast(group, buffer)
        for spec, part in zip(mine, torch.split(buffer, sizes), strict=True):
            out[spec.name] = part.view(spec.shape)
    return {s.name: out[s.name] for s in specs}
