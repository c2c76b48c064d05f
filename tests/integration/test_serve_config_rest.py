"""The RayService's serveConfigV2, deployed the way the KubeRay operator deploys it, answers gRPC.

A real Ray head with its dashboard runs as a subprocess in its own session; the config from
deploy/kuberay/rayservice.yaml is PUT to /api/serve/applications/ (the operator's call), and the
apps are then called through Serve's gRPC proxy with the generated stubs. Local changes to the
config, and only these: the proxies' ports (free ports instead of 8000/9000), the HTTP host
(127.0.0.1), and one worker process per replica (the pod sizes assume 16 cores, this machine
has 2). The head advertises the `verifier` resource the replicas ask for, as a verifier pod does,
and has $ARBITER_TOKEN, as the pods get it from their Secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from dashboard_http import http

from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from rewards.types import Sample
from services import convert
from services.cluster_config import FAMILY_VERIFIERS
from tests.conftest import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RAYSERVICE = REPO / "deploy" / "kuberay" / "rayservice.yaml"
# Ray swaps 127.0.0.1 for the machine's network address when it is a node address; another
# loopback address keeps the node, and all traffic, on loopback.
NODE_IP = "127.0.0.2"
DEPLOY_TIMEOUT_S = 240.0
# What the Secret arbiter-verifier-token puts into every Ray container as $ARBITER_TOKEN.
TOKEN = "rest-test-token-0123456789"
CALL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RayHead:
    dashboard: str
    session_id: int
    temp_dir: Path


def session_pids(session_id: int) -> list[int]:
    """Every live process whose session is `session_id` (what `ray start` and its children share)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def stop_session(session_id: int) -> None:
    """SIGKILL the session, then wait until none of its processes is left."""
    deadline = time.monotonic() + 30
    while pids := session_pids(session_id):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert time.monotonic() < deadline, f"processes of session {session_id} survive SIGKILL: {pids}"
        time.sleep(0.2)


def serve_config_v2() -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(RAYSERVICE.read_text()) if d and d["kind"] == "RayService"]
    return yaml.safe_load(doc["spec"]["serveConfigV2"])


def local_copy(config: dict[str, Any], http_port: int, grpc_port: int) -> dict[str, Any]:
    config["http_options"].update(host="127.0.0.1", port=http_port)
    config["grpc_options"]["port"] = grpc_port
    for app in config["applications"]:
        if "scoring" in app["args"]:
            app["args"]["scoring"]["worker_processes"] = 1
    return config


def replica_demand(config: dict[str, Any]) -> dict[str, float]:
    """CPUs and `verifier` units the minimum replicas of every app ask for together."""
    total = {"CPU": 0.0, "verifier": 0.0}
    for app in config["applications"]:
        section = app["args"].get("router", app["args"])  # the router app nests its options
        replicas = section["autoscaling"]["min_replicas"]
        total["CPU"] += replicas * section["num_cpus"]
        total["verifier"] += replicas * section["resources"]["verifier"]
    return total


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    # Ray's socket paths must stay short: a temp root of our own rather than pytest's tmp_path.
    temp_dir = Path(tempfile.mkdtemp(prefix="arbrest-", dir="/tmp"))
    demand = replica_demand(serve_config_v2())
    gcs, dashboard, client, agent_http, agent_grpc, env_agent, metrics = (free_port() for _ in range(7))
    command = [
        str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--disable-usage-stats",
        f"--node-ip-address={NODE_IP}", f"--port={gcs}", "--include-dashboard=true",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={env_agent}", f"--metrics-export-port={metrics}",
        f"--num-cpus={int(demand['CPU']) + 1}", "--num-gpus=0",
        f"--resources={json.dumps({'verifier': int(demand['verifier']) + 1})}",
        "--object-store-memory=200000000", f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "ARBITER_TOKEN": TOKEN}
    log = (temp_dir / "ray-start.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    head = RayHead(f"http://127.0.0.1:{dashboard}", process.pid, temp_dir)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"ray start exited:\n{(temp_dir / 'ray-start.log').read_text()[-3000:]}"
            try:
                if "success" in http("GET", f"{head.dashboard}/api/gcs_healthz")[1]:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass  # the dashboard is still starting
            assert time.monotonic() < deadline, "the Ray dashboard did not come up in 120 s"
            time.sleep(1)
        yield head
    finally:
        stop_session(process.pid)
        process.wait()
        log.close()
        leaked = [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(temp_dir).encode() in _read(p)]
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not leaked, f"Ray processes outlived the test: {leaked}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


@dataclass(frozen=True)
class Deployed:
    grpc: str
    http: str
    apps: list[str]


@pytest.fixture(scope="module")
def deployed(ray_head: RayHead) -> Deployed:
    http_port, grpc_port = free_port(), free_port()
    config = local_copy(serve_config_v2(), http_port, grpc_port)
    status, text = http("PUT", f"{ray_head.dashboard}/api/serve/applications/", config)
    assert status == 200, f"the dashboard refused the config ({status}): {text[:2000]}"
    apps = [app["name"] for app in config["applications"]]
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    while True:
        details = json.loads(http("GET", f"{ray_head.dashboard}/api/serve/applications/")[1])
        statuses = {name: details["applications"].get(name, {}).get("status") for name in apps}
        failed = {n: details["applications"][n].get("message") for n, s in statuses.items() if s == "DEPLOY_FAILED"}
        assert not failed, f"deployment failed: {failed}"
        if set(statuses.values()) == {"RUNNING"}:
            break
        assert time.monotonic() < deadline, f"apps not RUNNING after {DEPLOY_TIMEOUT_S:.0f} s: {statuses}"
        time.sleep(2)
    return Deployed(grpc=f"127.0.0.1:{grpc_port}", http=f"http://127.0.0.1:{http_port}", apps=apps)


def call(deployed: Deployed, app: str, method: str, request: Any) -> Any:
    async def go() -> Any:
        async with grpc.aio.insecure_channel(deployed.grpc) as channel:
            stub = verifier_pb2_grpc.VerifierStub(channel)
            metadata = [("application", app), ("authorization", f"Bearer {TOKEN}")]
            return await getattr(stub, method)(request, metadata=metadata, timeout=CALL_TIMEOUT_S)

    return asyncio.run(go())


def math_request(sample_id: str) -> verifier_pb2.ScoreRequest:
    completion = "<think>\n2 plus 3\n</think>\n<answer>\n\\boxed{5}\n</answer>"
    sample = Sample(id=sample_id, task="math", completion=completion, answer="5")
    return verifier_pb2.ScoreRequest(sample=convert.sample_to_proto(sample))


def test_every_app_of_the_rayservice_config_comes_up(deployed: Deployed) -> None:
    assert set(deployed.apps) == {"rules", "math", "code", "router"}


@pytest.mark.parametrize("app", ["rules", "math", "code"])
def test_each_family_app_lists_its_verifiers_over_grpc(deployed: Deployed, app: str) -> None:
    response = call(deployed, app, "ListVerifiers", verifier_pb2.ListVerifiersRequest())
    assert set(FAMILY_VERIFIERS[app]) <= {v.name for v in response.verifiers}


@pytest.mark.parametrize("app", ["math", "router"])
def test_math_sample_scores_correct_through_the_deployed_config(deployed: Deployed, app: str) -> None:
    result = call(deployed, app, "Score", math_request(f"rest-{app}"))
    assert result.id == f"rest-{app}"
    assert result.verdict == common_pb2.VERDICT_CORRECT
    assert [c.verifier for c in result.components] == ["math", "format"]


def test_http_proxy_answers_kuberays_readiness_probe(deployed: Deployed) -> None:
    status, body = http("GET", f"{deployed.http}/-/healthz")
    assert status == 200 and "success" in body
