"""Operators' defaults of `arbiter serve`, through real sockets: loopback binds unless a host is named,
and no listener reachable from the network without a token unless the config opts out explicitly."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import urllib.request
from typing import Any

import grpc
import pytest
import yaml

from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from tests.conftest import free_port
from tests.integration.conftest import _install_plugin
from tests.integration.test_serve_cli import AUTH, REPO, ServeProcess, _format_score


def non_loopback_address() -> str:
    """This machine's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("no non-loopback interface on this machine: cannot tell a loopback bind from a wildcard one")
        address = probe.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("no non-loopback interface on this machine: cannot tell a loopback bind from a wildcard one")
    return address


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def write_config(tmp_path, standalone: dict | None = None, **sections) -> str:
    config = {"serve": {"grpc_port": free_port(), "http_port": free_port()},
              "standalone": {"scoring": {"worker_processes": 1, "verifiers": ["format"]}, **(standalone or {})},
              **sections}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def serve_exits(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arbiter.cli", "serve", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def sleepy_request(sample_id: str, sleep_s: float) -> verifier_pb2.ScoreRequest:
    sample = verifier_pb2.Sample(id=sample_id, task="sleepy", completion="done",
                                 metadata_json=json.dumps({"sleep_s": sleep_s}))
    return verifier_pb2.ScoreRequest(sample=sample, verifiers=["sleepy"])


async def drain_while_calling(server: ServeProcess, endpoint: str, slow: tuple[str | None, Any],
                              probes: list[tuple[str | None, Any]]) -> tuple[Any, list[tuple[str, bool]]]:
    """SIGTERM `server` while the slow (application, request) is in flight, then send each probe until the
    process has exited -> (the slow call's result, (status code name, process still up?) per probe)."""

    def metadata(application: str | None) -> list:
        return ([("application", application)] if application else []) + AUTH

    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        in_flight = asyncio.ensure_future(stub.Score(slow[1], metadata=metadata(slow[0]), timeout=120))
        await asyncio.sleep(2)  # let it be admitted
        assert not in_flight.done(), "the slow call finished before the drain began"
        server.proc.send_signal(signal.SIGTERM)
        seen: list[tuple[str, bool]] = []
        while server.proc.poll() is None or len(seen) < 3 * len(probes):
            for application, request in probes:
                alive = server.proc.poll() is None
                try:
                    await stub.Score(request, metadata=metadata(application), timeout=30)
                    seen.append(("OK", alive))
                except grpc.aio.AioRpcError as exc:
                    seen.append((exc.code().name, alive))
            await asyncio.sleep(0.1)
        return await in_flight, seen


def format_request() -> verifier_pb2.ScoreRequest:
    sample = verifier_pb2.Sample(id="f", task="format", completion="<think>a</think>\n<answer>b</answer>")
    return verifier_pb2.ScoreRequest(sample=sample, verifiers=["format"])


def assert_drained_with_unavailable(result: verifier_pb2.ScoreResult, seen: list[tuple[str, bool]]) -> None:
    assert result.verdict == common_pb2.VERDICT_CORRECT  # the call in flight when the drain began finished
    refused = {code for code, _ in seen if code != "OK"}
    assert refused == {"UNAVAILABLE"}, f"while draining: {seen}"
    assert ("UNAVAILABLE", True) in seen, f"no call was refused while the server was still up: {seen}"
    first_refused = next(i for i, (code, _) in enumerate(seen) if code != "OK")
    assert all(code != "OK" for code, _ in seen[first_refused:]), f"served again after refusing: {seen}"


def test_standalone_binds_loopback_by_default(tmp_path):
    outside = non_loopback_address()
    server = ServeProcess(["--config", write_config(tmp_path), "--standalone"], tmp_path / "serve.log")
    try:
        endpoint = server.endpoint()
        port = int(endpoint.rpartition(":")[2])
        assert endpoint == f"127.0.0.1:{port}"
        assert asyncio.run(_format_score(endpoint, None, auth=[])).verdict == common_pb2.VERDICT_CORRECT
        assert not accepts(outside, port), f"the server answers on {outside}: it bound more than loopback"
    finally:
        server.kill()


def test_standalone_on_every_interface_without_auth_refuses_to_start_naming_the_key(tmp_path):
    proc = serve_exits(["--config", write_config(tmp_path, {"host": "0.0.0.0"}), "--standalone"])
    assert proc.returncode == 2
    assert "auth.token_env" in proc.stderr and "standalone.host" in proc.stderr
    assert "auth.allow_unauthenticated" in proc.stderr
    assert proc.stdout == ""


def test_standalone_on_every_interface_with_a_token_is_reachable_from_outside(tmp_path):
    outside = non_loopback_address()
    config = write_config(tmp_path, {"host": "0.0.0.0"}, auth={"token_env": "ARBITER_TEST_TOKEN"})
    server = ServeProcess(["--config", config, "--standalone"], tmp_path / "serve.log")
    try:
        port = int(server.endpoint().rpartition(":")[2])
        assert asyncio.run(_format_score(f"{outside}:{port}", None)).verdict == common_pb2.VERDICT_CORRECT
    finally:
        server.kill()


def test_standalone_on_every_interface_with_allow_unauthenticated_starts_and_warns(tmp_path):
    config = write_config(tmp_path, {"host": "0.0.0.0"}, auth={"allow_unauthenticated": True})
    server = ServeProcess(["--config", config, "--standalone"], tmp_path / "serve.log")
    try:
        endpoint = server.endpoint()
        assert asyncio.run(_format_score(endpoint, None, auth=[])).verdict == common_pb2.VERDICT_CORRECT
    finally:
        server.kill()
    assert "WITHOUT authentication" in (tmp_path / "serve.log").read_text()


def test_serve_without_auth_refuses_to_start_because_its_grpc_proxy_binds_every_interface(tmp_path):
    proc = serve_exits(["--config", write_config(tmp_path)])
    assert proc.returncode == 2
    assert "auth.token_env" in proc.stderr and "Ray Serve's gRPC proxy" in proc.stderr
    assert proc.stdout == ""


def test_standalone_prints_its_metrics_url_which_exports_latency_and_verdicts_after_scoring(tmp_path):
    metrics_port = free_port()
    server = ServeProcess(["--config", write_config(tmp_path, {"metrics_port": metrics_port}), "--standalone"],
                          tmp_path / "serve.log")
    try:
        endpoint = server.endpoint()
        assert asyncio.run(_format_score(endpoint, None, auth=[])).verdict == common_pb2.VERDICT_CORRECT
        assert server.lines[1] == f"metrics: http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(server.lines[1].removeprefix("metrics: "), timeout=10) as page:
            text = page.read().decode()
    finally:
        server.kill()
    assert 'arbiter_verifier_latency_seconds_bucket{le="+Inf",verifier="format"} 1.0' in text
    assert 'arbiter_verdicts_total{verdict="correct",verifier="format"} 1.0' in text


def test_standalone_draining_answers_unavailable_until_the_process_exits(tmp_path, monkeypatch):
    (tmp_path / "plugin").mkdir()
    monkeypatch.setenv("PYTHONPATH", str(_install_plugin(tmp_path / "plugin")))
    scoring = {"worker_processes": 2, "verifiers": ["format", "sleepy"]}  # sleepy: an entry point on PYTHONPATH
    config = write_config(tmp_path, {"scoring": scoring, "grace_s": 60}, auth={"token_env": "ARBITER_TEST_TOKEN"})
    server = ServeProcess(["--config", config, "--standalone"], tmp_path / "serve.log")
    try:
        endpoint = server.endpoint()
        result, seen = asyncio.run(drain_while_calling(server, endpoint, (None, sleepy_request("slow", 6)),
                                                       [(None, format_request())]))
        assert server.proc.wait(120) == 0, (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        server.kill()
    assert_drained_with_unavailable(result, seen)
