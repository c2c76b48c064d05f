"""`arbiter serve` as a real subprocess: the endpoint line, real calls, a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
ENDPOINT_LINE = re.compile(r"^grpc endpoint: (127\.0\.0\.1):(\d+)$")
START_TIMEOUT_S = 180  # its own Ray cluster, Serve and warm worker pools, on a loaded 2-core machine
TOKEN = "test-token-0123456789"
AUTH = [("authorization", f"Bearer {TOKEN}")]


class ServeProcess:
    """`python -m arbiter.cli serve ...` in its own session, so signals reach it alone."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "ARBITER_TEST_TOKEN": TOKEN}
        env.pop("RAY_ADDRESS", None)
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "arbiter.cli", "serve", *args], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._first = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._first.set()
        self._first.set()

    def endpoint(self) -> str:
        assert self._first.wait(START_TIMEOUT_S), "no endpoint line in time"
        assert self.lines, f"exited with {self.proc.poll()} before printing the endpoint"
        match = ENDPOINT_LINE.match(self.lines[0])
        assert match, f"unexpected first line {self.lines[0]!r}"
        return f"{match[1]}:{match[2]}"

    def terminate(self, timeout_s: float = 120) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


def _write_config(tmp_path: Path, health_port: int, grpc_port: int) -> Path:
    config = {
        "serve": {"grpc_port": grpc_port, "http_port": free_port(), "http_host": "127.0.0.1"},
        "health": {"host": "127.0.0.1", "port": health_port, "probe_interval_s": 0.5},
        "auth": {"token_env": "ARBITER_TEST_TOKEN"},
        "families": {"rules": {"scoring": {"worker_processes": 1}, "num_cpus": 0.1}},
        "router": {"enabled": True, "num_cpus": 0.1},
        "standalone": {"host": "127.0.0.1", "scoring": {"worker_processes": 1, "verifiers": ["format"]}},
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _format_score(endpoint: str, application: str | None, auth: list = AUTH) -> verifier_pb2.ScoreResult:
    sample = verifier_pb2.Sample(id="c1", task="format", completion="<think>a</think>\n<answer>b</answer>")
    metadata = ([("application", application)] if application else []) + auth
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        return await stub.Score(verifier_pb2.ScoreRequest(sample=sample, verifiers=["format"]), metadata=metadata,
                                timeout=60)


async def _health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        return reply.status


@pytest.mark.slow
def test_arbiter_serve_prints_endpoint_answers_with_token_and_exits_cleanly_on_sigterm(tmp_path):
    health_port = free_port()
    config = _write_config(tmp_path, health_port, grpc_port=free_port())
    server = ServeProcess(["--config", str(config)], tmp_path / "serve.log")
    try:
        endpoint = server.endpoint()
        for app in ("rules", "router"):
            result = asyncio.run(_format_score(endpoint, app))
            assert result.verdict == common_pb2.VERDICT_CORRECT
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                asyncio.run(_format_score(endpoint, app, auth=[]))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert asyncio.run(_health(health_port)) == health_pb2.HealthCheckResponse.SERVING
        code = server.terminate()
    finally:
        server.kill()
    log = (tmp_path / "serve.log").read_text()
    assert code == 0, log[-3000:]
    assert server.lines[0] == f"grpc endpoint: {endpoint}"  # then only the metrics line on stdout
    assert [line.partition(" ")[0] for line in server.lines[1:]] == ["metrics:"]
    assert "draining" in log


def test_arbiter_serve_standalone_prints_endpoint_answers_with_token_and_exits_cleanly_on_sigterm(tmp_path):
    config = _write_config(tmp_path, free_port(), grpc_port=free_port())
    server = ServeProcess(["--config", str(config), "--standalone"], tmp_path / "serve.log")
    try:
        endpoint = server.endpoint()
        assert asyncio.run(_format_score(endpoint, None)).verdict == common_pb2.VERDICT_CORRECT
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            asyncio.run(_format_score(endpoint, None, auth=[]))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        code = server.terminate()
    finally:
        server.kill()
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert server.lines == [f"grpc endpoint: {endpoint}"]


def test_arbiter_serve_rejects_an_unknown_config_key_naming_it(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("families:\n  math:\n    worker_count: 3\n")
    proc = subprocess.run([sys.executable, "-m", "arbiter.cli", "serve", "--config", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "families.math.worker_count" in proc.stderr
    assert proc.stdout == ""
