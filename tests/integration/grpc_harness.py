"""A real Arbiter server on 127.0.0.1, run on its own event loop in a background thread.

Tests then talk to it over real sockets with ordinary (sync or async) clients.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import grpc
from grpc_plugins import PLUGINS, ROUTING

from services.config import ScoringConfig, ServerConfig
from services.server import ArbiterServer, create_server


def scoring(directory: Path, **overrides: Any) -> ScoringConfig:
    """Two workers serving the test plug-ins and format, with a worker timeout short enough to test."""
    values: dict[str, Any] = {
        "worker_processes": 2,
        # Only what the tests route to: warming math (sympy) would slow every start and restart.
        "verifiers": tuple(sorted({v for route in ROUTING["tasks"].values() for v in route})),
        "plugins": PLUGINS,
        "routing": ROUTING["tasks"],
        "sample_timeout_s": 3.0,
    }
    values.update(overrides)
    return ScoringConfig(**values)


class RunningServer:
    def __init__(self, config: ServerConfig, wait: bool = True) -> None:
        """With wait=False the server is bound and starting; `starting.result()` waits for SERVING."""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: ArbiterServer
        self.server, self.port = self.call(self._create(config))
        self.starting = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop)
        if wait:
            self.starting.result(120)
        self.address = f"127.0.0.1:{self.port}"

    @staticmethod
    async def _create(config: ServerConfig) -> tuple[ArbiterServer, int]:
        return create_server(config)

    def call(self, coro: Coroutine[Any, Any, Any], timeout_s: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self, grace_s: float = 0.5) -> None:
        self.call(self.server.stop(grace_s))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def interactive_stream(address: str, requests: list[Any], metadata: tuple[tuple[str, str], ...] = (),
                             timeout_s: float = 60.0) -> list[Any]:
    """ScoreStream as an interactive client uses it: write one request, read its result, then write the
    next; the stream is half-closed only after every result came back."""
    from arbiter.v1 import verifier_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        call = verifier_pb2_grpc.VerifierStub(channel).ScoreStream(metadata=metadata, timeout=timeout_s)
        results = []
        for request in requests:
            await call.write(request)
            results.append(await asyncio.wait_for(call.read(), timeout_s))
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        return results

