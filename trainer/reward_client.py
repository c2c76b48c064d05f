"""How the trainer gets rewards: one Protocol, three backends chosen by `rewards.backend`.

    serve       verifier apps deployed on the Ray cluster by Ray Serve, called over gRPC through
                the services client (the default: the same path a production run takes)
    standalone  one grpc.aio verifier server (services.server) on 127.0.0.1, in this process's loop
    inprocess   rewards.score_sample in a thread pool: no network, for debugging the trainer alone

The trainer sees `RewardClient.score(samples) -> list[ScoredSample]` and nothing else: no
protobuf, no concrete verifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import yaml

from rewards.compose import ScoredSample, score_sample
from rewards.routing import RoutingConfig
from rewards.types import Sample
from trainer.config import RewardsConfig

log = logging.getLogger(__name__)


class RewardClient(Protocol):
    async def score(self, samples: Sequence[Sample]) -> list[ScoredSample]:
        """Exactly one ScoredSample per sample, in order (a fault is an explicit ERROR/TIMEOUT, never 0)."""
        ...


class InProcessRewardClient:
    """rewards.score_sample in threads: verifiers that enforce their own timeouts keep them."""

    def __init__(self, routing: RoutingConfig, threads: int = 2) -> None:
        self.routing = routing
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reward")

    async def score(self, samples: Sequence[Sample]) -> list[ScoredSample]:
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(
            *(loop.run_in_executor(self.pool, score_sample, s, self.routing) for s in samples)
        ))

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_routing(routing: RoutingConfig, workdir: Path) -> str:
    """The services read routing from a file: write ours where every process can read it."""
    path = workdir / "routing.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(routing.to_dict()))
    return str(path.resolve())


def deploy_on_serve(routing_file: str) -> tuple[str, bool]:
    """Start Serve on the connected Ray cluster (if needed) and deploy one app serving every verifier
    the routing needs -> (gRPC endpoint, whether Serve was started here and must be shut down)."""
    from ray import serve

    from services.cluster_config import ClusterConfig, DeploymentConfig, RouterConfig
    from services.config import ScoringConfig
    from services.serve_app import SERVICER_FUNCTION, deploy

    routing = RoutingConfig.load(routing_file)
    # One family app per primary verifier; it also serves the verifiers its tasks route to, so the
    # front router is not needed and clients need no `application` metadata.
    primaries = sorted({route[0].verifier for route in routing.tasks.values()})
    from services.cluster_config import FAMILY_VERIFIERS

    families = sorted({f for f, names in FAMILY_VERIFIERS.items() for p in primaries if p in names})
    deployment = DeploymentConfig(scoring=ScoringConfig(worker_processes=1), num_cpus=0.5)
    cluster = ClusterConfig(
        routing_file=routing_file,
        router=RouterConfig(enabled=len(families) > 1),
        families={name: deployment for name in families},
    )
    cluster.validate()
    grpc_port = _free_port()
    serve.start(
        http_options={"host": "127.0.0.1", "port": _free_port()},
        grpc_options={"port": grpc_port, "grpc_servicer_functions": [SERVICER_FUNCTION]},
    )
    apps = deploy(cluster)
    if len(apps) > 1:
        raise NotImplementedError(
            f"routing needs several verifier apps ({', '.join(apps)}); the services client sends no "
            "`application` metadata yet, so route every task to one family"
        )
    log.info("verifiers deployed on Ray Serve: %s at 127.0.0.1:%d", ", ".join(apps), grpc_port)
    return f"127.0.0.1:{grpc_port}", True


@contextlib.asynccontextmanager
async def open_reward_client(cfg: RewardsConfig, routing: RoutingConfig, workdir: Path) -> AsyncIterator[RewardClient]:
    """The configured backend, started (and torn down on exit) as needed."""
    if cfg.backend == "inprocess":
        client = InProcessRewardClient(routing)
        try:
            yield client
        finally:
            client.close()
        return

    from services.client import VerifierClient
    from services.config import ClientConfig, ScoringConfig, ServerConfig

    routing_file = write_routing(routing, workdir)
    server = None
    started_serve = False
    if cfg.endpoint is not None:
        endpoint = cfg.endpoint
    elif cfg.backend == "standalone":
        from services.server import create_server

        server, port = create_server(ServerConfig(
            host="127.0.0.1", port=0, scoring=ScoringConfig(worker_processes=1, routing_file=routing_file),
        ))
        await server.start()
        endpoint = f"127.0.0.1:{port}"
    else:
        endpoint, started_serve = await asyncio.to_thread(deploy_on_serve, routing_file)
    client = VerifierClient(ClientConfig(endpoint=endpoint, deadline_s=cfg.timeout_s), routing)
    try:
        yield client
    finally:
        await client.close()
        if server is not None:
            await server.stop(grace_s=1.0)
        if started_serve:
            from ray import serve

            await asyncio.to_thread(serve.shutdown)


def score_blocking(cfg: RewardsConfig, routing: RoutingConfig, samples: Sequence[Sample], workdir: Path,
                   ray_address: str | None = None) -> list[ScoredSample]:
    """Score a whole list from synchronous code (`arbiter sample`, `arbiter eval`), Ray started if needed."""
    started_ray = False
    if cfg.backend == "serve" and cfg.endpoint is None:
        import ray

        if not ray.is_initialized():
            ray.init(address=ray_address or "local", include_dashboard=False, configure_logging=False,
                     log_to_driver=False)
            started_ray = True

    async def run() -> list[ScoredSample]:
        async with open_reward_client(cfg, routing, workdir) as client:
            return await client.score(samples)

    try:
        return asyncio.run(run())
    finally:
        if started_ray:
            import ray

            ray.shutdown()
