"""An external verifier in its own process, plugged in by address: validated, routed by the client and the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from grpc_harness import RunningServer

from rewards.registry import RegistryError
from rewards.routing import RoutingConfig
from rewards.types import Sample, Verdict
from services.client import score_sync
from services.config import ClientConfig, ScoringConfig, ServerConfig
from services.external import validate_external
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ROUTES = {"tasks": {"json": {"json_match": 1.0, "format": 0.5}, "format": {"format": 1.0}}}
SAMPLES = [
    Sample(id="right", task="json", completion='<think>k</think><answer>{"a": [1, 2]}</answer>', answer='{"a":[1,2]}'),
    Sample(id="wrong", task="json", completion='<think>k</think><answer>{"a": 1}</answer>', answer='{"a":[1,2]}'),
    Sample(id="bad-gold", task="json", completion="<answer>1</answer>", answer="{oops"),
    Sample(id="plain", task="format", completion="<think>k</think><answer>1</answer>"),
]


@pytest.fixture(scope="module")
def external():
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "external_verifier" / "server.py"),
                             "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # printed once the port is bound
        assert "listening" in line, f"external verifier did not start: {line!r}"
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def arbiter(tmp_path_factory, external):
    running = RunningServer(ServerConfig(port=0, scoring=ScoringConfig(
        worker_processes=1, routing=ROUTES["tasks"], verifiers=("format", "json_match"),
        external={"json_match": external})))
    yield running
    running.stop()


def _check(results):
    by_id = {r.id: r for r in results}
    assert [r.id for r in results] == [s.id for s in SAMPLES]
    assert by_id["right"].verdict is Verdict.CORRECT
    assert by_id["right"].reward == pytest.approx(1.5)
    assert by_id["right"].components["json_match"].answer == '{"a": [1, 2]}'
    assert by_id["wrong"].verdict is Verdict.INCORRECT
    assert by_id["bad-gold"].error_field == "answer"
    assert by_id["plain"].reward == 1.0


def test_validate_external_accepts_a_server_that_describes_the_name(external):
    meta = validate_external("json_match", external)
    assert (meta.name, meta.version, meta.reference, meta.address) == ("json_match", "1", "answer", external)


@pytest.mark.parametrize(("name", "message"), [("format", "duplicate"), ("other", "Describe failed"),
                                               ("Bad Name", "invalid verifier name")])
def test_validate_external_rejects_clashes_unknown_names_and_bad_names(external, name, message):
    with pytest.raises(RegistryError, match=message):
        validate_external(name, external)


def test_client_routes_a_task_to_the_external_verifier_by_address(arbiter, external):
    cfg = ClientConfig(endpoint=arbiter.address, endpoints={"json_match": external}, deadline_s=30.0)
    _check(score_sync(cfg, SAMPLES, RoutingConfig.from_dict(ROUTES)))


def test_server_routing_includes_the_external_verifier(arbiter):
    cfg = ClientConfig(endpoint=arbiter.address, deadline_s=30.0)  # every verifier via the Arbiter server
    _check(score_sync(cfg, SAMPLES, RoutingConfig.from_dict(ROUTES)))
