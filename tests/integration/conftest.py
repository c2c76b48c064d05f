"""Fixtures for the Ray Serve tests: ONE Serve instance and ONE set of apps per session.

Starting Serve and deploying apps costs tens of seconds on 2 cores, so every
Serve test shares `serve_grpc` (Serve with the Verifier gRPC proxy on free
ports, on top of the root conftest's `ray_cluster`) and `serve_apps` (the apps
of SERVE_TEST_CONFIG, deployed once). Serve's gRPC proxy binds every interface
(Ray 2.60 has no host option for it); the tests only ever connect to 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
# Long enough for a cold worker pool on a loaded 2-core machine.
SERVE_REQUEST_TIMEOUT_S = 60.0

# A real plug-in distribution, installed on the fly: a package plus a .dist-info declaring
# the entry point, put on the plug-in replicas' PYTHONPATH through the config's runtime_env.
PLUGIN_MODULE = '''
import time

from rewards.types import VerifierResult


class Sleepy:
    """Sleeps metadata["sleep_s"] seconds, then calls a non-empty completion correct."""

    name, version, reference = "sleepy", "1", "none"

    def score(self, sample):
        time.sleep(float(sample.metadata.get("sleep_s", 0)))
        if sample.completion.strip():
            return VerifierResult.correct(detail="slept")
        return VerifierResult.no_answer("empty completion")
'''


@dataclass(frozen=True)
class ServeEndpoints:
    grpc: str  # "127.0.0.1:PORT" of Serve's gRPC proxy
    http: str


@dataclass(frozen=True)
class ServeApps:
    grpc: str
    config: object  # services.cluster_config.ClusterConfig
    apps: list[str]
    external_address: str


def _install_plugin(root: Path) -> Path:
    (root / "arbiter_sleepy").mkdir()
    (root / "arbiter_sleepy" / "__init__.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    dist = root / "arbiter_sleepy-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: arbiter-sleepy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[arbiter.verifiers]\nsleepy = arbiter_sleepy:Sleepy\n")
    return root


@pytest.fixture(scope="session")
def serve_grpc(ray_cluster):
    """Serve started once, with the arbiter.v1.Verifier servicer on Serve's gRPC proxy, on free ports."""
    from ray import serve

    from services.serve_app import SERVICER_FUNCTIONS

    grpc_port, http_port = free_port(), free_port()
    serve.start(
        http_options={"host": "127.0.0.1", "port": http_port},
        grpc_options={
            "port": grpc_port,
            "grpc_servicer_functions": SERVICER_FUNCTIONS,
            "request_timeout_s": SERVE_REQUEST_TIMEOUT_S,
        },
    )
    yield ServeEndpoints(f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}")
    serve.shutdown()


@pytest.fixture(scope="session")
def external_verifier():
    """examples/external_verifier/server.py in its own process, on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "examples/external_verifier/server.py"), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert "listening" in line, f"external verifier did not start: {line!r}"
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def serve_apps(serve_grpc, external_verifier, tmp_path_factory):
    """rules (2 replicas), math, the `sleepy` entry-point plug-in (2 replicas, tiny queues),
    the external json_match verifier by address, and the router: deployed once, as `arbiter serve` does."""
    from services import cluster_config
    from services.serve_app import deploy
    from services.serve_cli import check_externals

    plugin_path = _install_plugin(tmp_path_factory.mktemp("plugin"))
    config = cluster_config.parse(
        {
            "families": {
                "rules": {"scoring": {"worker_processes": 1}, "autoscaling": {"min_replicas": 2, "max_replicas": 2}},
                "math": {"scoring": {"worker_processes": 2, "cache_entries": 0}},
            },
            "plugins": {
                "sleepy": {
                    "scoring": {"worker_processes": 1, "cache_entries": 0},
                    "max_ongoing_requests": 2,
                    "max_queued_requests": 2,
                    "autoscaling": {"min_replicas": 2, "max_replicas": 2},
                    "runtime_env": {"env_vars": {"PYTHONPATH": str(plugin_path)}},
                }
            },
            "external": {"json_match": {"address": external_verifier}},
        },
        source="serve test config",
    )
    check_externals(config)
    apps = deploy(config)
    return ServeApps(serve_grpc.grpc, config, apps, external_verifier)
