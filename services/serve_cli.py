"""`arbiter serve`: run the verifier cluster described by a cluster config.

    arbiter serve [--config configs/cluster.yaml] [--address RAY_ADDRESS] [--standalone]

On Ray (default): start a local Ray cluster (or join the one at --address),
check every external verifier, start Serve with the arbiter.v1.Verifier gRPC
proxy, deploy every application, call each one through the proxy, start the
grpc.health.v1 endpoint, and only then print on stdout

    grpc endpoint: HOST:PORT
    metrics: http://HOST:PORT/metrics

(the second is the Ray node's metrics export, where the replicas' metrics are;
everything else goes to the log on stderr). On Ctrl-C or SIGTERM:
health NOT_SERVING, every replica answers UNAVAILABLE (retryable) and finishes
its calls in flight within graceful_shutdown_timeout_s (services/drain.py), then
Ray is shut down if this process started it (with Serve's controller and
proxies); on a joined cluster the applications are deleted, and Serve is shut
down too if this process started it, and left running otherwise.

--standalone runs the single grpc.aio server of services.server instead (no
Ray), configured by the `standalone` section, and prints the same endpoint line (and
the metrics line when `standalone.metrics_port` is set).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable

import grpc

from arbiter.v1 import verifier_pb2, verifier_pb2_grpc
from rewards.registry import RegistryError
from services import cluster_config
from services.auth import token_from_env, token_metadata
from services.cluster_config import ClusterConfig, ConfigError
from services.exposure import check_exposure
from services.health import HealthReporter, Probe
from services.server import run_standalone, stop_on_signals

log = logging.getLogger("arbiter.serve")

DEFAULT_CONFIG = "configs/cluster.yaml"
_READY_TIMEOUT_S = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"cluster config YAML (default {DEFAULT_CONFIG})")
    parser.add_argument("--address", default=None,
                        help="join the Ray cluster at this address (e.g. HOST:6379 or auto); default: start one")
    parser.add_argument("--standalone", action="store_true",
                        help="run one grpc.aio server (no Ray), configured by the `standalone` section")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = cluster_config.load(args.config)
        check_exposure(config, args.standalone)
        token = token_from_env(config.auth.token_env, "auth.token_env")
    except (OSError, ConfigError) as exc:
        print(f"arbiter serve: {exc}", file=sys.stderr)
        return 2
    log.info("config %s: %s", args.config, json.dumps(cluster_config.to_dict(config), sort_keys=True))
    try:
        if args.standalone:
            check_externals(config)
            return run_standalone(config.standalone.server_config(config, token))
        return _serve_on_ray(config, token, args.address)
    except (ConfigError, RegistryError) as exc:
        print(f"arbiter serve: {exc}", file=sys.stderr)
        return 2


def check_externals(config: ClusterConfig) -> None:
    """Every external verifier passes the registry's checks and answers Describe (services.external)."""
    from services.external import validate_external

    for verifier, name in config.external_verifiers():
        external = config.external[name]
        meta = validate_external(verifier, external.address, timeout_s=external.timeout_s)
        log.info("external verifier %s at %s: version %s, reference %s",
                 verifier, external.address, meta.version, meta.reference)


# --- on Ray Serve -------------------------------------------------------------------------------


def _serve_on_ray(config: ClusterConfig, token: str | None, address: str | None) -> int:
    import ray
    from ray import serve

    from services.drain import drain_replicas, start_signal
    from services.serve_app import deploy, serve_config

    check_externals(config)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started_ray = address is None
    # "local" always starts a new cluster, never silently joining one found on the machine. Replica
    # logs stay in Ray's log directory: stdout carries only the endpoint and metrics lines.
    # The node started here exports the replicas' ray.util.metrics on serve.metrics_port.
    metrics = {} if address else {"_metrics_export_port": config.serve.metrics_port}
    ray.init(address=address or "local", include_dashboard=False, configure_logging=False, log_to_driver=False,
             **metrics)
    # Serve's controller is a named actor; one already there belongs to the joined cluster's owner.
    named = ray.util.list_named_actors(all_namespaces=True)
    serve_was_running = any(a["name"] == "SERVE_CONTROLLER_ACTOR" for a in named)
    try:
        proxies = serve_config(config)  # the proxy options a KubeRay serveConfigV2 would carry
        serve.start(http_options=proxies["http_options"], grpc_options=proxies["grpc_options"])
        drain_signal = start_signal()
        apps = deploy(config)
        host = "127.0.0.1" if started_ray else ray.util.get_node_ip_address()
        sections = [*config.families.values(), *config.plugins.values(), config.router]
        grace_s = max(section.graceful_shutdown_timeout_s for section in sections)

        def drain() -> None:
            # Every replica answers UNAVAILABLE from here on, finishes its calls in flight and closes its
            # worker pool (services/drain.py); deleting an app first would answer NOT_FOUND meanwhile.
            log.info("draining applications %s", ", ".join(apps))
            drain_replicas(drain_signal, apps, grace_s)
            if started_ray:
                return  # stopping Ray stops the proxies: clients then see UNAVAILABLE, never NOT_FOUND
            for app in reversed(apps):
                serve.delete(app)  # idle by now
            if not serve_was_running:
                serve.shutdown()
            else:
                log.info("applications deleted; Serve keeps running for the joined cluster's other users")

        lines = [f"grpc endpoint: {host}:{config.serve.grpc_port}", f"metrics: {node_metrics_url(host)}"]
        return asyncio.run(_run_until_signal(config, token, lines, apps, drain))
    finally:
        if started_ray:
            ray.shutdown()  # also stops Serve's controller and proxies


def node_metrics_url(host: str) -> str:
    """Where this node's metrics agent exports the replicas' metrics (Prometheus text format)."""
    import ray

    here = ray.get_runtime_context().get_node_id()
    (port,) = [node["MetricsExportPort"] for node in ray.nodes() if node["NodeID"] == here]
    return f"http://{host}:{port}/metrics"


def app_probe(stub: verifier_pb2_grpc.VerifierStub, app: str, token: str | None, timeout_s: float) -> Probe:
    """A real ListVerifiers call to one Serve application through the proxy."""
    metadata = (("application", app), *token_metadata(token))

    async def probe() -> object:
        return await stub.ListVerifiers(verifier_pb2.ListVerifiersRequest(), metadata=metadata, timeout=timeout_s)

    return probe


async def _run_until_signal(config: ClusterConfig, token: str | None, lines: list[str], apps: list[str],
                            drain: Callable[[], None]) -> int:
    """Probe until every app answers, print `lines` (the endpoint first), serve until a signal, then
    drain while the health endpoint says NOT_SERVING."""
    stop = stop_on_signals()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{config.serve.grpc_port}") as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        probes = {app: app_probe(stub, app, token, config.health.probe_timeout_s) for app in apps}
        health = HealthReporter(probes, config.health.probe_interval_s, config.health.probe_timeout_s)
        await _wait_until_answering(health, stop)
        if stop.is_set():
            await asyncio.to_thread(drain)
            return 0
        health_port = await health.start(config.health.host, config.health.port)
        log.info("grpc.health.v1 on %s:%d; applications: %s (send metadata `application: NAME`)",
                 config.health.host, health_port, ", ".join(apps))
        print("\n".join(lines), flush=True)
        await stop.wait()
        log.info("draining: health NOT_SERVING")
        await health.drain()
        await asyncio.to_thread(drain)
        await health.stop()
    return 0


async def _wait_until_answering(health: HealthReporter, stop: asyncio.Event) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while not stop.is_set() and not await health.probe_once():
        if time.monotonic() > deadline:
            raise ConfigError(f"applications did not answer within {_READY_TIMEOUT_S:.0f} s: {health.last_failures}")
        await asyncio.sleep(0.5)
