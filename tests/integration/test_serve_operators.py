"""`arbiter serve` on Ray Serve as an operator runs it: one real process (rules, code, the `sleepy`
plug-in and the router, with a token), reached through real sockets.

Loopback binds where Ray lets the host be chosen, the Sandbox service through Serve, the metrics
URL it prints, and last, draining: every call gets UNAVAILABLE (retryable) until the process exits.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml

from arbiter.v1 import common_pb2, sandbox_pb2, sandbox_pb2_grpc
from tests.conftest import free_port
from tests.integration.conftest import _install_plugin
from tests.integration.test_operator_defaults import (
    accepts,
    assert_drained_with_unavailable,
    drain_while_calling,
    format_request,
    non_loopback_address,
    sleepy_request,
)
from tests.integration.test_serve_cli import AUTH, ServeProcess, _format_score

pytestmark = pytest.mark.slow

METRICS_LINE = re.compile(r"^metrics: (http://127\.0\.0\.1:\d+/metrics)$")
METRICS_EXPORT_DEADLINE_S = 90  # Ray's metrics agent exports what the replicas recorded every few seconds
TESTS = json.dumps({"kind": "assert", "test": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]})


class Cluster:
    def __init__(self, server: ServeProcess, endpoint: str, ports: dict[str, int], log: Path) -> None:
        self.server, self.endpoint, self.ports, self.log = server, endpoint, ports, log

    def line(self, pattern: re.Pattern, timeout_s: float = 30) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.server.lines:
                if match := pattern.match(line):
                    return match
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern.pattern} in {self.server.lines}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-operators")
    ports = {"grpc": free_port(), "http": free_port(), "health": free_port(), "metrics": free_port()}
    small = {"scoring": {"worker_processes": 1, "cache_entries": 0}, "num_cpus": 0.1}
    config = {
        "serve": {"grpc_port": ports["grpc"], "http_port": ports["http"], "metrics_port": ports["metrics"]},
        "health": {"port": ports["health"], "probe_interval_s": 0.5},
        "auth": {"token_env": "ARBITER_TEST_TOKEN"},
        "families": {"rules": small, "code": small},
        "plugins": {"sleepy": {**small, "graceful_shutdown_timeout_s": 60,
                               "runtime_env": {"env_vars": {"PYTHONPATH": str(_install_plugin(root))}}}},
        "router": {"num_cpus": 0.1, "graceful_shutdown_timeout_s": 60},
    }
    (root / "cluster.yaml").write_text(yaml.safe_dump(config))
    server = ServeProcess(["--config", str(root / "cluster.yaml")], root / "serve.log")
    try:
        yield Cluster(server, server.endpoint(), ports, root / "serve.log")
    finally:
        server.kill()


# --- 6a: loopback unless named ------------------------------------------------------------------


def test_serve_binds_its_http_proxy_and_health_endpoint_to_loopback_by_default(cluster):
    outside = non_loopback_address()
    for name in ("http", "health"):
        assert accepts("127.0.0.1", cluster.ports[name]), name
        assert not accepts(outside, cluster.ports[name]), f"{name} answers on {outside}"


def test_serve_grpc_proxy_on_every_interface_refuses_calls_without_the_token(cluster):
    outside = f"{non_loopback_address()}:{cluster.ports['grpc']}"  # Ray 2.60 binds it on [::]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        asyncio.run(_format_score(outside, "router", auth=[]))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert asyncio.run(_format_score(outside, "router")).verdict == common_pb2.VERDICT_CORRECT


# --- 6c: the Sandbox service through Serve -------------------------------------------------------


async def _sandbox(endpoint: str, application: str, method: str, request, auth=AUTH):
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = sandbox_pb2_grpc.SandboxStub(channel)
        return await getattr(stub, method)(request, metadata=[("application", application), *auth], timeout=120)


@pytest.mark.parametrize("application", ["router", "code"])
def test_serve_runs_sandbox_execute_and_grade(cluster, application):
    run = asyncio.run(_sandbox(cluster.endpoint, application, "Execute",
                               sandbox_pb2.ExecuteRequest(language="python", source="print(input()[::-1])",
                                                          stdin="abc")))
    assert run.status == sandbox_pb2.RUN_STATUS_OK and run.stdout == "cba\n"
    graded = asyncio.run(_sandbox(cluster.endpoint, application, "Grade",
                                  sandbox_pb2.GradeRequest(language="python", tests_json=TESTS,
                                                           source="def add(a, b):\n    return a + b")))
    assert graded.verdict == common_pb2.VERDICT_CORRECT


def test_serve_sandbox_refuses_bad_requests_and_missing_tokens_like_the_standalone_server(cluster):
    over_cap = sandbox_pb2.ExecuteRequest(language="python", source="pass",
                                          limits=sandbox_pb2.Limits(memory_mib=1 << 20))
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        asyncio.run(_sandbox(cluster.endpoint, "router", "Execute", over_cap))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert invalid.value.details().startswith("limits.memory_mib:")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        asyncio.run(_sandbox(cluster.endpoint, "router", "Execute", over_cap, auth=[]))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


# --- 7: metrics where the deployment runs ---------------------------------------------------------


def test_serve_prints_a_metrics_url_that_exports_latency_and_verdicts_after_scoring(cluster):
    assert cluster.server.lines[0] == f"grpc endpoint: {cluster.endpoint}"
    url = cluster.line(METRICS_LINE)[1]
    assert url == f"http://127.0.0.1:{cluster.ports['metrics']}/metrics"
    assert asyncio.run(_format_score(cluster.endpoint, "router")).verdict == common_pb2.VERDICT_CORRECT
    wanted = ('ray_arbiter_verifier_latency_seconds_bucket{', 'verifier="format"',
              'ray_arbiter_verdicts_total{', 'verdict="correct"')
    deadline = time.monotonic() + METRICS_EXPORT_DEADLINE_S
    while True:
        with urllib.request.urlopen(url, timeout=10) as page:
            text = page.read().decode()
        latency = [line for line in text.splitlines() if line.startswith(wanted[0]) and wanted[1] in line]
        verdicts = [line for line in text.splitlines()
                    if line.startswith(wanted[2]) and wanted[1] in line and wanted[3] in line]
        if latency and verdicts:
            break
        assert time.monotonic() < deadline, f"no per-verifier latency and verdict counts at {url} in time"
        time.sleep(2)
    assert float(verdicts[0].rpartition(" ")[2]) >= 1


# --- 6b: draining answers UNAVAILABLE until the end (this test ends the process: keep it last) ----


def test_serve_draining_answers_unavailable_until_the_process_exits(cluster):
    probes = [("router", format_request()), ("rules", format_request()), ("sleepy", sleepy_request("s", 0))]
    result, seen = asyncio.run(drain_while_calling(cluster.server, cluster.endpoint,
                                                   ("router", sleepy_request("slow", 6)), probes))
    assert cluster.server.proc.wait(120) == 0, cluster.log.read_text()[-3000:]
    assert_drained_with_unavailable(result, seen)
