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
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

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


def services_routing(routing: RoutingConfig) -> dict[str, dict[str, float]]:
    """The routing as the services' configs take it (data, not a file), each task's verifiers in
    routing order: the first is the task's primary."""
    return routing.to_dict()["tasks"]


TRAIN_APP = "arbiter-train"


def serve_is_running() -> bool:
    from ray import serve

    status = serve.status()
    return bool(status.proxies or status.applications)


def start_serve() -> str:
    """Start Serve with the Verifier gRPC servicer on free loopback ports -> its gRPC endpoint."""
    from ray import serve
    from ray.exceptions import ActorDiedError

    from services.serve_app import SERVICER_FUNCTION

    grpc_port = _free_port()
    for attempt in range(3):
        try:
            serve.start(
                http_options={"host": "127.0.0.1", "port": _free_port()},
                grpc_options={"port": grpc_port, "grpc_servicer_functions": [SERVICER_FUNCTION]},
            )
            break
        except ActorDiedError:  # the controller replaced a proxy that was slow to start; it keeps our ports
            if attempt == 2:
                raise
            log.warning("Serve proxy restarted during start-up; waiting for the new one")
    return f"127.0.0.1:{grpc_port}"


def deploy_verifiers(routing: RoutingConfig, app: str = TRAIN_APP, worker_processes: int = 2) -> str:
    """Deploy, on the running Serve instance, the apps serving every verifier the routing needs
    -> the name of the app to call.

    One family (every task's primary verifier in it): that family's app, which also serves the
    verifiers its tasks route to (format for math), under a name of its own (`app`) so that it
    never replaces an app someone else deployed on the same cluster. Several (math and code in
    one run): the app of every family the routing uses (rules for format) and the router, which
    sends each verifier of a sample to its family's app.
    """
    from ray import serve

    from services.cluster_config import FAMILY_VERIFIERS, ROUTER_APP, ClusterConfig, DeploymentConfig, RouterConfig
    from services.config import ScoringConfig, check
    from services.serve_app import build_app, deploy

    primaries = {routing.primary(task) for task in routing.tasks}
    families = sorted({family for family, names in FAMILY_VERIFIERS.items() if primaries & set(names)})
    if not families or not primaries <= {name for family in families for name in FAMILY_VERIFIERS[family]}:
        raise ValueError(f"rewards.routing: the trainer deploys built-in verifier families; primaries "
                         f"{sorted(primaries)} are not all in one (run `arbiter serve` and set rewards.endpoint)")
    deployment = DeploymentConfig(scoring=ScoringConfig(worker_processes=worker_processes), num_cpus=0.5)
    if len(families) > 1:
        # The router sends each verifier a client names to its family's app: all of them are needed.
        families = sorted({family for family, names in FAMILY_VERIFIERS.items()
                           if routing.verifier_names() & set(names)})
    cluster = ClusterConfig(routing=services_routing(routing), router=RouterConfig(enabled=len(families) > 1),
                            families=dict.fromkeys(families, deployment))
    check(cluster)
    if len(families) > 1:
        deploy(cluster)
        app = ROUTER_APP
    else:
        serve.run(build_app(cluster, families[0]), name=app, route_prefix=f"/{app}")
    log.info("verifiers %s deployed on Ray Serve, called through app %r", ", ".join(sorted(routing.verifier_names())),
             app)
    return app


def prepare_serve(cfg: RewardsConfig, routing: RoutingConfig, workdir: Path) -> tuple[RewardsConfig, bool]:
    """For the serve backend without an endpoint: start Serve and deploy the verifiers on the connected
    Ray cluster -> (config pointing at them, True: Serve was started here and is ours to shut down)."""
    if cfg.backend != "serve" or cfg.endpoint is not None:
        return cfg, False
    if serve_is_running():
        raise RuntimeError("Ray Serve already runs on this cluster and its gRPC port is not ours to guess: "
                           "set rewards.endpoint (and rewards.application) to use its verifiers")
    endpoint = start_serve()
    application = deploy_verifiers(routing, worker_processes=cfg.worker_processes)
    return dataclasses.replace(cfg, endpoint=endpoint, application=application), True


def shutdown_serve() -> None:
    from ray import serve

    serve.shutdown()


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

    server = None
    cfg, started_serve = await asyncio.to_thread(prepare_serve, cfg, routing, workdir)
    endpoint = cfg.endpoint
    if endpoint is None:  # standalone: a real gRPC server on loopback, in this event loop
        from services.server import create_server

        scoring = ScoringConfig(worker_processes=cfg.worker_processes, routing=services_routing(routing))
        server, port = create_server(ServerConfig(host="127.0.0.1", port=0, scoring=scoring))
        await server.start()
        endpoint = f"127.0.0.1:{port}"
    client = VerifierClient(ClientConfig(endpoint=endpoint, application=cfg.application, deadline_s=cfg.timeout_s,
                                         max_batch=cfg.max_batch, max_wait_ms=cfg.max_wait_ms), routing)
    try:
        yield client
    finally:
        await client.close()
        if server is not None:
            await server.stop(grace_s=1.0)
        if started_serve:
            await asyncio.to_thread(shutdown_serve)


def score_blocking(cfg: RewardsConfig, routing: RoutingConfig, samples: Sequence[Sample], workdir: Path
                   ) -> list[ScoredSample]:
    """Score a whole list from synchronous code (`arbiter sample`, `arbiter eval`), Ray started if needed."""
    started_ray = False
    if cfg.backend == "serve" and cfg.endpoint is None:
        import ray

        if not ray.is_initialized():
            ray.init(address="local", include_dashboard=False, configure_logging=False,
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
