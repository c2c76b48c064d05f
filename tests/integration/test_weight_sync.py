"""The weight broadcast's wire (trainer/weight_sync.py): a real gloo group on 127.0.0.1, no Ray."""

from __future__ import annotations

import threading

import torch

from trainer.weight_sync import free_address, layout, open_group, receive, send


def test_broadcast_round_delivers_every_tensor_of_every_dtype_to_every_receiver() -> None:
    weights = {"a.weight": torch.randn(3, 4), "a.bias": torch.randn(4), "steps": torch.arange(5),
               "b.weight": torch.randn(2, 2, 2).to(torch.bfloat16)}
    specs = layout(weights)
    address = free_address("127.0.0.1", 3, "gloo")
    received: dict[int, dict[str, torch.Tensor]] = {}

    def receiver(rank: int) -> None:
        group = open_group(address, rank, timeout_s=60)
        received[rank] = receive(group, specs, torch.device("cpu"))

    threads = [threading.Thread(target=receiver, args=(r,)) for r in (1, 2)]
    for t in threads:
        t.start()
    send(open_group(address, 0, timeout_s=60), weights, specs, torch.device("cpu"))
    for t in threads:
        t.join(60)
    assert sorted(received) == [1, 2]
    for got in received.values():
        assert list(got) == list(weights)
        for name, tensor in weights.items():
            assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), name
