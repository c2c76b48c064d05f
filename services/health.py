"""A real grpc.health.v1 endpoint for the Ray Serve deployment, for Kubernetes to probe.

Serve's gRPC proxy answers only its own ``ray.serve.RayServeAPIService/Healthz``
(``grpc.health.v1`` is UNIMPLEMENTED there), and that says the proxy is up, not
that any verifier answers. So `arbiter serve` runs this small grpc.aio server on
its own port (``health.port`` in the cluster config) next to the proxy. It calls
every Serve application through the proxy with a real ListVerifiers request,
every ``probe_interval_s``, and reports:

- ``""`` (the whole server) and ``arbiter.v1.Verifier``: SERVING only when every
  application answered the last round, NOT_SERVING otherwise;
- one service per application name (``math``, ``rules``, ...), each on its own.

Before the first round completes everything is NOT_SERVING; once draining starts
(SIGTERM) everything is NOT_SERVING for good, so the load balancer stops sending
traffic while in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from arbiter.v1 import verifier_pb2

log = logging.getLogger(__name__)

OVERALL = ""
VERIFIER_SERVICE = verifier_pb2.DESCRIPTOR.services_by_name["Verifier"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

Probe = Callable[[], Awaitable[object]]


class HealthReporter:
    """Serves grpc.health.v1 on its own port; its statuses follow periodic probes of every app."""

    def __init__(self, probes: Mapping[str, Probe], interval_s: float = 2.0, timeout_s: float = 5.0) -> None:
        if not probes:
            raise ValueError("HealthReporter needs at least one probe")
        self._probes = dict(probes)
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._servicer = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.last_failures: dict[str, str] = {}

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind, start serving (NOT_SERVING until a probe round passes) and start probing; returns the port."""
        for service in (OVERALL, VERIFIER_SERVICE, *self._probes):
            await self._servicer.set(service, NOT_SERVING)
        self._server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, self._server)
        bound = self._server.add_insecure_port(f"{host}:{port}")
        await self._server.start()
        self._loop_task = asyncio.create_task(self._probe_forever())
        return bound

    async def probe_once(self) -> bool:
        """Run every probe concurrently, publish the statuses, and say whether all passed."""
        names = list(self._probes)
        outcomes = await asyncio.gather(*(self._run_probe(name) for name in names))
        self.last_failures = {name: why for name, why in zip(names, outcomes, strict=True) if why is not None}
        for name, why in zip(names, outcomes, strict=True):
            await self._servicer.set(name, SERVING if why is None else NOT_SERVING)
        healthy = not self.last_failures
        for service in (OVERALL, VERIFIER_SERVICE):
            await self._servicer.set(service, SERVING if healthy else NOT_SERVING)
        return healthy

    async def drain(self) -> None:
        """NOT_SERVING for every service, permanently: the first step of a graceful stop."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        await self._servicer.enter_graceful_shutdown()

    async def stop(self, grace_s: float = 1.0) -> None:
        await self.drain()
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None

    async def _run_probe(self, name: str) -> str | None:
        """None when the app answered in time, else why not (a failed probe is a status, not a crash)."""
        try:
            await asyncio.wait_for(self._probes[name](), self._timeout_s)
        except TimeoutError:
            return f"no answer within {self._timeout_s}s"
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        return None

    async def _probe_forever(self) -> None:
        was_healthy: bool | None = None
        while True:
            healthy = await self.probe_once()
            if healthy != was_healthy:
                log.info("health: %s %s", "SERVING" if healthy else "NOT_SERVING", self.last_failures or "")
                was_healthy = healthy
            await asyncio.sleep(self._interval_s)
