"""The standalone server over real sockets: every RPC, validation, faults, back-pressure, cache, health."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from grpc_harness import RunningServer, interactive_stream, scoring
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_plugins import PLUGINS
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from services.config import ServerConfig
from tests.conftest import free_port

WELL_FORMED = "<think>2+2</think><answer>4</answer>"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = RunningServer(ServerConfig(port=0, scoring=scoring(tmp_path_factory.mktemp("srv"),
                                                                 max_in_flight_samples=8, max_batch_items=8,
                                                                 max_completion_chars=1000)))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.address) as channel:
        yield verifier_pb2_grpc.VerifierStub(channel)


def sample(id: str, task: str = "format", completion: str = WELL_FORMED, **fields) -> verifier_pb2.Sample:
    return verifier_pb2.Sample(id=id, task=task, completion=completion, **fields)


def request(*args, verifier: str = "", **kwargs) -> verifier_pb2.ScoreRequest:
    return verifier_pb2.ScoreRequest(sample=sample(*args, **kwargs), verifiers=[verifier] if verifier else [])


def sleeper(id: str, sleep_s: float) -> verifier_pb2.ScoreRequest:
    return request(id, task="sleep", metadata_json=json.dumps({"sleep_s": sleep_s}))


def test_score_returns_the_routed_composed_result(stub):
    result = stub.Score(request("a", task="exact", answer="4"), timeout=30)
    assert result.id == "a"
    assert result.verdict == common_pb2.VERDICT_CORRECT
    assert result.reward == pytest.approx(1.5)  # exact 1.0 + format 0.5
    assert [c.verifier for c in result.components] == ["exact", "format"]  # routing order, primary first


def test_score_with_an_explicit_verifier_uses_that_verifier_alone(stub):
    result = stub.Score(request("a", task="exact", answer="4", verifier="format"), timeout=30)
    assert [c.verifier for c in result.components] == ["format"]
    assert result.components[0].result.score == 1.0
    assert not result.HasField("reward")  # the caller named the verifiers: it composes


def test_request_naming_several_verifiers_gets_each_component_in_order_and_no_reward(stub):
    named = verifier_pb2.ScoreRequest(sample=sample("v", task="exact", answer="4"), verifiers=["format", "exact"])
    result = stub.Score(named, timeout=30)
    assert [c.verifier for c in result.components] == ["format", "exact"]
    assert [c.result.score for c in result.components] == [1.0, 1.0]
    assert result.verdict == common_pb2.VERDICT_CORRECT
    assert not result.HasField("reward")  # the caller weights and composes the components


def test_batch_with_one_bad_item_answers_every_item(stub):
    batch = verifier_pb2.ScoreBatchRequest(requests=[
        request("ok-1"),
        request("bad", task="exact", tests_json="{not json"),
        request("ok-2", completion="no tags"),
    ])
    results = stub.ScoreBatch(batch, timeout=30).results
    assert [r.id for r in results] == ["ok-1", "bad", "ok-2"]
    assert results[0].verdict == common_pb2.VERDICT_CORRECT
    assert results[1].error.field == "sample.tests_json"
    assert results[1].verdict == common_pb2.VERDICT_ERROR
    assert results[2].verdict == common_pb2.VERDICT_INCORRECT


def test_stream_returns_every_result_keyed_by_id(stub):
    requests = [sleeper("slow", 1.0), request("fast-1"), request("fast-2"), request("bad", task="nope")]
    results = {r.id: r for r in stub.ScoreStream(iter(requests), timeout=30)}
    assert set(results) == {"slow", "fast-1", "fast-2", "bad"}
    assert results["slow"].verdict == common_pb2.VERDICT_CORRECT
    assert results["bad"].error.field == "sample.task"


def test_stream_results_come_back_before_the_client_half_closes_and_a_bad_item_gets_its_own_error(server):
    requests = [request("first"), request(""), request("big", completion="x" * 1001), request("last")]
    results = asyncio.run(interactive_stream(server.address, requests))
    assert [r.id for r in results] == ["first", "", "big", "last"]
    assert [r.verdict for r in (results[0], results[3])] == [common_pb2.VERDICT_CORRECT] * 2
    assert results[1].error.field == "sample.id"
    assert results[2].error.field == "sample.completion"


def test_stream_answers_an_id_already_in_flight_with_an_error_keyed_by_it_and_goes_on(server):
    async def go():
        async with grpc.aio.insecure_channel(server.address) as channel:
            call = verifier_pb2_grpc.VerifierStub(channel).ScoreStream(timeout=30)
            await call.write(sleeper("dup", 1.0))
            await call.write(request("dup"))
            duplicate = await call.read()  # long before the sleeper is done
            await call.write(request("after"))
            rest = {(r := await call.read()).id: r for _ in range(2)}
            await call.done_writing()
            return duplicate, rest

    duplicate, rest = asyncio.run(go())
    assert (duplicate.id, duplicate.error.field) == ("dup", "sample.id")
    assert "already in flight" in duplicate.error.message
    assert {k: r.verdict for k, r in rest.items()} == {"dup": common_pb2.VERDICT_CORRECT,
                                                       "after": common_pb2.VERDICT_CORRECT}


def test_list_verifiers_shows_served_verifiers_routes_and_cache(stub):
    reply = stub.ListVerifiers(verifier_pb2.ListVerifiersRequest(), timeout=10)
    names = {v.name for v in reply.verifiers}
    assert {"format", "sleep", "crash", "exact"} <= names
    assert {t.task for t in reply.tasks} == {"sleep", "crash", "exact", "format"}
    assert reply.cache.capacity > 0


def test_describe_gives_version_and_reference(stub):
    info = stub.Describe(verifier_pb2.DescribeRequest(name="exact"), timeout=10).verifier
    assert (info.name, info.version, info.reference) == ("exact", "1", verifier_pb2.REFERENCE_ANSWER)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.Score(verifier_pb2.ScoreRequest(), timeout=10), "sample:"),
        (lambda s: s.Score(request("x", verifier="nope"), timeout=10), "verifiers:"),
        (lambda s: s.Score(verifier_pb2.ScoreRequest(sample=sample("x"), verifiers=["format", "nope"]), timeout=10),
         "verifiers:"),
        (lambda s: s.Score(verifier_pb2.ScoreRequest(sample=sample("x"), verifiers=["format", "format"]), timeout=10),
         "verifiers:"),
        (lambda s: s.Score(request("x", task="nope"), timeout=10), "sample.task:"),
        (lambda s: s.Score(request("x", metadata_json="[1]"), timeout=10), "sample.metadata_json:"),
        (lambda s: s.Score(request("x", completion="x" * 1001), timeout=10), "sample.completion:"),
        (lambda s: s.Score(request("x", task="exact"), timeout=10), "sample.answer:"),
        (lambda s: s.ScoreBatch(verifier_pb2.ScoreBatchRequest(requests=[request("x")] * 2000), timeout=10),
         "requests:"),
        (lambda s: s.Describe(verifier_pb2.DescribeRequest(name="nope"), timeout=10), "name:"),
    ],
    ids=["no-sample", "unknown-verifier", "unknown-in-verifiers", "verifiers-repeat-a-name",
         "unknown-task", "metadata-not-object", "completion-too-long",
         "verifier-rejects-sample", "batch-too-large", "describe-unknown"],
)
def test_malformed_request_is_invalid_argument_naming_the_field(stub, call, field):
    with pytest.raises(grpc.RpcError) as info:
        call(stub)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(field)


def test_deadline_exceeded_when_scoring_outlives_the_call(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.Score(sleeper("late", 2.0), timeout=0.3)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_overrunning_sample_gets_timeout_and_the_worker_is_replaced(stub):
    result = stub.Score(sleeper("stuck", 60.0), timeout=60)  # worker timeout is 3 s
    assert result.verdict == common_pb2.VERDICT_TIMEOUT
    assert not result.HasField("reward")
    after = stub.ScoreBatch(verifier_pb2.ScoreBatchRequest(requests=[request(f"n{i}") for i in range(4)]),
                            timeout=60)
    assert all(r.verdict == common_pb2.VERDICT_CORRECT for r in after.results)


def test_worker_death_is_an_explicit_error_and_the_worker_is_replaced(stub):
    batch = verifier_pb2.ScoreBatchRequest(requests=[request("dies", task="crash", completion="die"),
                                                     request("lives", task="crash", completion="fine")])
    dies, lives = stub.ScoreBatch(batch, timeout=60).results
    assert dies.verdict == common_pb2.VERDICT_ERROR
    assert "worker process died" in dies.detail
    assert lives.verdict == common_pb2.VERDICT_CORRECT
    again = stub.ScoreBatch(verifier_pb2.ScoreBatchRequest(requests=[request(f"n{i}") for i in range(4)]),
                            timeout=60)
    assert all(r.verdict == common_pb2.VERDICT_CORRECT for r in again.results)


def test_over_capacity_is_resource_exhausted(server, stub):
    full = verifier_pb2.ScoreBatchRequest(requests=[sleeper(f"r{i}", 0.3) for i in range(8)])  # capacity 8
    first = stub.ScoreBatch.future(full, timeout=60)
    deadline = time.monotonic() + 10
    while server.server.verifier.in_flight < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(grpc.RpcError) as info:
        stub.Score(request("one-more"), timeout=10)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(first.result().results) == 8  # the admitted batch is unharmed


def test_same_answer_for_the_same_reference_is_served_from_the_cache(stub):
    before = stub.Describe(verifier_pb2.DescribeRequest(name="exact"), timeout=10).cache
    first = stub.Score(request("c1", task="exact", answer="17", completion="<think>a</think><answer>17</answer>"),
                       timeout=30)
    second = stub.Score(request("c2", task="exact", answer="17",
                                completion="<think>other reasoning</think><answer>17</answer>"), timeout=30)
    other_gold = stub.Score(request("c3", task="exact", answer="18",
                                    completion="<think>a</think><answer>17</answer>"), timeout=30)
    cached = {r.id: {c.verifier for c in r.components if c.cached} for r in (first, second, other_gold)}
    assert cached == {"c1": set(), "c2": {"exact"}, "c3": set()}
    assert second.verdict == first.verdict == common_pb2.VERDICT_CORRECT
    assert other_gold.verdict == common_pb2.VERDICT_INCORRECT
    after = stub.Describe(verifier_pb2.DescribeRequest(name="exact"), timeout=10).cache
    assert after.hits - before.hits == 1
    assert after.misses - before.misses == 2


def test_completions_of_one_prompt_in_one_batch_hit_the_cache(stub):
    batch = verifier_pb2.ScoreBatchRequest(requests=[
        request(f"g{i}", task="exact", answer="42", completion=f"<think>path {i}</think><answer>42</answer>")
        for i in range(6)
    ])
    results = stub.ScoreBatch(batch, timeout=30).results
    assert all(r.verdict == common_pb2.VERDICT_CORRECT for r in results)
    hits = sum(c.cached for r in results for c in r.components if c.verifier == "exact")
    assert hits >= 4  # at most one miss per worker process (2 here)


def test_health_reflection_and_metrics_are_served(server, stub):
    stub.Score(request("h"), timeout=30)
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "arbiter.v1.Verifier"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                               timeout=5)
        services = {s.name for r in replies for s in r.list_services_response.service}
        lookup = reflection_pb2.ServerReflectionRequest(file_containing_symbol="arbiter.v1.Verifier")
        [found] = reflect.ServerReflectionInfo(iter([lookup]), timeout=5)
        assert found.file_descriptor_response.file_descriptor_proto  # what grpcurl needs to build requests
    assert {"arbiter.v1.Verifier", "arbiter.v1.Sandbox", "grpc.health.v1.Health"} <= services
    text = server.server.metrics.render().decode()
    assert 'arbiter_verdicts_total{verdict="correct",verifier="format"}' in text


def test_metrics_are_exposed_over_http(tmp_path):
    running = RunningServer(ServerConfig(port=0, metrics_port=0, enable_sandbox_service=False,
                                         scoring=scoring(tmp_path, worker_processes=1)))
    try:
        with grpc.insecure_channel(running.address) as channel:
            verifier_pb2_grpc.VerifierStub(channel).Score(request("m"), timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{running.server.metrics_port}/metrics", timeout=10) as page:
            text = page.read().decode()
    finally:
        running.stop()
    assert 'arbiter_sample_verdicts_total{verdict="correct"} 1.0' in text
    assert "arbiter_verifier_latency_seconds_bucket" in text


def test_standalone_server_serves_until_sigterm_then_drains_and_exits(tmp_path):
    port = free_port()
    code = ("from services.server import run_standalone; from services.config import ServerConfig, ScoringConfig; "
            f"raise SystemExit(run_standalone(ServerConfig(port={port}, grace_s=1, "
            "scoring=ScoringConfig(worker_processes=1, verifiers=('format',)))))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()


def test_server_is_not_serving_until_its_workers_are_warm(tmp_path):
    plugins = {**PLUGINS, "slow_start": "grpc_plugins:SlowStartVerifier"}
    running = RunningServer(ServerConfig(port=0, enable_sandbox_service=False, scoring=scoring(
        tmp_path, worker_processes=1, plugins=plugins, verifiers=("format", "slow_start"))), wait=False)
    try:
        with grpc.insecure_channel(running.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            check = health_pb2.HealthCheckRequest(service="arbiter.v1.Verifier")
            status = health.Check(check, timeout=10, wait_for_ready=True).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as info:
                verifier_pb2_grpc.VerifierStub(channel).Score(request("early"), timeout=10)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "warming up" in info.value.details()
            running.starting.result(60)
            assert health.Check(check, timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.starting.result(60)
        running.stop()


def test_draining_server_is_not_serving_refuses_new_calls_and_finishes_old_ones(tmp_path):
    running = RunningServer(ServerConfig(port=0, scoring=scoring(tmp_path, worker_processes=1)))
    with grpc.insecure_channel(running.address) as channel:
        stub = verifier_pb2_grpc.VerifierStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        in_flight = stub.Score.future(sleeper("in-flight", 1.5), timeout=30)
        deadline = time.monotonic() + 10
        while running.server.verifier.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # let it be admitted before draining starts
        running.call(running.server.drain())
        status = health.Check(health_pb2.HealthCheckRequest(service="arbiter.v1.Verifier"), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Score(request("late"), timeout=5)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        assert in_flight.result().verdict == common_pb2.VERDICT_CORRECT
    running.stop()
