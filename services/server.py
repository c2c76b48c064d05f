"""The standalone grpc.aio server: Verifier + Sandbox + health + reflection on one port.

    server, port = create_server(ServerConfig(port=0))
    await server.start()          # serves at once; health says SERVING once workers are warm
    ...
    await server.stop(grace_s=5)  # NOT_SERVING, new calls UNAVAILABLE, in-flight ones finish

`run_standalone(config)` is the blocking entry point that `arbiter serve --standalone` calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from arbiter.v1 import sandbox_pb2, sandbox_pb2_grpc, verifier_pb2_grpc
from services.auth import TokenInterceptor, server_credentials
from services.config import ServerConfig, check
from services.core import VerifierCore
from services.health import VERIFIER_SERVICE
from services.metrics import Metrics
from services.servicer import SandboxServicer, VerifierServicer

log = logging.getLogger(__name__)

SANDBOX_SERVICE = sandbox_pb2.DESCRIPTOR.services_by_name["Sandbox"].full_name
_IDLE_POLL_S = 0.05
_HEADROOM_BYTES = 4 << 20  # let slightly oversized requests through so the servicer can name the field


class ArbiterServer:
    """One grpc.aio server around the core (services.core), with health, reflection and metrics."""

    def __init__(self, config: ServerConfig) -> None:
        check(config)
        self.config = config
        self.metrics = Metrics()
        self.verifier = VerifierCore(config.scoring, self.metrics)
        self.health = health.aio.HealthServicer()
        interceptors = [TokenInterceptor(config.token)] if config.token else []
        size = config.scoring.max_request_bytes + _HEADROOM_BYTES
        self.grpc = grpc.aio.server(
            interceptors=interceptors,
            options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)],
        )
        verifier_pb2_grpc.add_VerifierServicer_to_server(VerifierServicer(self.verifier), self.grpc)
        services = [VERIFIER_SERVICE]
        if config.enable_sandbox_service:
            sandbox_pb2_grpc.add_SandboxServicer_to_server(SandboxServicer(self.verifier), self.grpc)
            services.append(SANDBOX_SERVICE)
        self.services = services
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection([*services, health.SERVICE_NAME, reflection.SERVICE_NAME], self.grpc)
        address = f"{config.host}:{config.port}"
        if config.tls is not None:
            self.port = self.grpc.add_secure_port(address, server_credentials(config.tls))
        else:
            self.port = self.grpc.add_insecure_port(address)
        self.metrics_port: int | None = None

    async def _set_health(self, status: int) -> None:
        for name in ("", *self.services):
            await self.health.set(name, status)

    async def start(self) -> None:
        """Accept calls now (answered UNAVAILABLE while warming), then warm workers and go SERVING."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.grpc.start()
        if self.config.metrics_port is not None:
            self.metrics_port = self.metrics.serve_http(self.config.metrics_port, self.config.host)
        await self.verifier.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("arbiter listening on %s:%d (tls=%s, token=%s)", self.config.host, self.port,
                 self.config.tls is not None, self.config.token is not None)

    async def drain(self) -> None:
        """NOT_SERVING, and UNAVAILABLE for new calls; admitted samples still finish."""
        await self.health.enter_graceful_shutdown()
        await self.verifier.begin_drain()

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain, wait drain_delay_s for load balancers to notice, then give in-flight calls `grace_s`.

        gRPC itself stops only once the admitted samples are done (or `grace_s` is up): until then every
        new call is answered UNAVAILABLE by the servicer, whereas a stopping grpc server cancels the
        calls it has received and not yet handed over (CANCELLED, which no client retries)."""
        grace = self.config.grace_s if grace_s is None else grace_s
        await self.drain()
        await asyncio.sleep(self.config.drain_delay_s)
        deadline = time.monotonic() + grace
        while self.verifier.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(_IDLE_POLL_S)
        await self.grpc.stop(max(0.0, deadline - time.monotonic()))
        await self.verifier.close()
        self.metrics.stop_http()

    async def wait_for_termination(self) -> None:
        await self.grpc.wait_for_termination()


def create_server(config: ServerConfig) -> tuple[ArbiterServer, int]:
    """Build and bind (port 0 = any free port); call `await server.start()` inside a running loop."""
    server = ArbiterServer(config)
    return server, server.port


def _resolved(config: ServerConfig) -> str:
    shown = dataclasses.asdict(config)
    if shown["token"]:
        shown["token"] = "***"
    return json.dumps(shown, sort_keys=True, default=str)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM; call inside the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(config: ServerConfig) -> None:
    server, port = create_server(config)
    log.info("config: %s", _resolved(config))
    stop = stop_on_signals()
    await server.start()  # returns once the worker processes are warm
    # A wildcard bind is reachable on loopback; print an address a client can dial.
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "[::]") else config.host
    print(f"grpc endpoint: {host}:{port}", flush=True)
    if server.metrics_port is not None:
        print(f"metrics: http://{host}:{server.metrics_port}/metrics", flush=True)
    await stop.wait()
    log.info("draining (grace %.1f s)", config.grace_s)
    await server.stop()


def run_standalone(config: ServerConfig) -> int:
    """Serve until SIGINT/SIGTERM, then drain gracefully; `arbiter serve --standalone` calls it once
    its external verifiers answer. Prints the stdout line ``grpc endpoint: HOST:PORT`` when SERVING, then
    ``metrics: http://HOST:PORT/metrics`` when the config exposes metrics."""
    asyncio.run(_serve(config))
    return 0
