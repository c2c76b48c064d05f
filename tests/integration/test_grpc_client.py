"""VerifierClient against a real server: exactly-once results, parity with in-process scoring, retries, faults."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from grpc_harness import RunningServer, scoring
from grpc_plugins import PLUGINS, ROUTING

from rewards.compose import score_sample
from rewards.routing import RoutingConfig
from rewards.types import Sample, Verdict
from services.client import VerifierClient, VerifierFault, score_sync
from services.config import ClientConfig, FaultPolicy, ServerConfig
from services.jobs import WorkerSpec
from services.worker_main import build_registry
from tests.conftest import free_port

ROUTES = RoutingConfig.from_dict(ROUTING)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = RunningServer(ServerConfig(port=0, scoring=scoring(tmp_path_factory.mktemp("cli"))))
    yield running
    running.stop()


def config(server: RunningServer, **overrides) -> ClientConfig:
    values = {"endpoint": server.address, "max_batch": 8, "max_wait_ms": 2.0, "deadline_s": 30.0}
    values.update(overrides)
    return ClientConfig(**values)


def mixed_samples(n: int) -> list[Sample]:
    kinds = [
        dict(task="format", completion="<think>a</think><answer>1</answer>"),
        dict(task="exact", completion="<think>b</think><answer>7</answer>", answer="7"),
        dict(task="exact", completion="<answer>8</answer>", answer="7"),
        dict(task="exact", completion="no tags at all", answer="7"),
        dict(task="no-such-task", completion="x"),
        dict(task="exact", completion="<answer>7</answer>"),  # no gold answer: the verifier rejects it
    ]
    return [Sample(id=f"s{i}", **kinds[i % len(kinds)]) for i in range(n)]


def test_client_returns_one_result_per_sample_in_order(server):
    samples = mixed_samples(60)
    results = score_sync(config(server), samples, ROUTES)
    assert [r.id for r in results] == [s.id for s in samples]
    by_kind = {r.id: r for r in results}
    assert by_kind["s4"].error_field == "task"
    assert by_kind["s5"].error_field == "answer"
    assert by_kind["s1"].verdict is Verdict.CORRECT


def test_client_results_match_in_process_scoring(server):
    samples = mixed_samples(12)
    registry = build_registry(WorkerSpec(plugins=PLUGINS))
    remote = score_sync(config(server), samples, ROUTES)
    local = [score_sample(s, ROUTES, registry) for s in samples]
    strip = [("elapsed_ms",)]
    for r, lo in zip(remote, local, strict=True):
        a, b = r.to_record(), lo.to_record()
        for (key,) in strip:
            a.pop(key), b.pop(key)
        assert a == b


def test_client_batches_by_size(server):
    batches = server.server.metrics.batch_size
    before_count, before_sum = _histogram(batches)
    samples = [Sample(id=f"b{i}", task="format", completion="x") for i in range(20)]
    score_sync(config(server, max_batch=5, max_wait_ms=200.0), samples, ROUTES)
    count, total = _histogram(batches)
    assert total - before_sum == 20
    assert count - before_count == 4  # full batches leave at once, without waiting 200 ms


def test_verifiers_of_a_task_served_at_one_endpoint_are_asked_in_one_request(server):
    batches = server.server.metrics.batch_size
    before_count, before_sum = _histogram(batches)
    samples = [Sample(id=f"one{i}", task="exact", completion="<answer>7</answer>", answer="7") for i in range(6)]
    results = score_sync(config(server, max_batch=64, max_wait_ms=200.0), samples, ROUTES)
    assert all(set(r.components) == {"exact", "format"} for r in results)
    assert results[0].reward == pytest.approx(1.0)  # routing weights: exact 1.0 + format 0.5 x 0 (no think tag)
    count, total = _histogram(batches)
    assert (count - before_count, total - before_sum) == (1, 6)  # six requests, not twelve


def _histogram(histogram) -> tuple[float, float]:
    values = {s.name: s.value for metric in histogram.collect() for s in metric.samples}
    return values["arbiter_batch_size_count"], values["arbiter_batch_size_sum"]


def test_score_stream_yields_every_sample_exactly_once(server):
    samples = mixed_samples(30)

    async def run() -> list[str]:
        async def source():
            for s in samples:
                yield s

        async with VerifierClient(config(server, max_batch=4), ROUTES) as client:
            return [r.id async for r in client.score_stream(source())]

    ids = asyncio.run(run())
    assert sorted(ids) == sorted(s.id for s in samples)


def test_client_retries_unavailable_across_a_server_restart_exactly_once(tmp_path):
    port = free_port()
    first = RunningServer(ServerConfig(port=port, scoring=scoring(tmp_path, worker_processes=1)))
    cfg = ClientConfig(endpoint=f"127.0.0.1:{port}", retries=12, backoff_initial_s=0.2, backoff_max_s=1.0,
                       deadline_s=10.0)
    samples = mixed_samples(12)
    assert len(score_sync(cfg, samples, ROUTES)) == 12
    first.stop()
    restarted: list[RunningServer] = []

    def restart() -> None:
        time.sleep(1.0)  # the client is retrying against a closed port meanwhile
        restarted.append(RunningServer(ServerConfig(port=port, scoring=scoring(tmp_path, worker_processes=1))))

    thread = threading.Thread(target=restart)
    thread.start()
    try:
        results = score_sync(cfg, samples, ROUTES)
    finally:
        thread.join(60)
        for running in restarted:
            running.stop()
    assert [r.id for r in results] == [s.id for s in samples]
    assert results[1].verdict is Verdict.CORRECT


MIXED = RoutingConfig.from_dict({"tasks": {"mixed": {"format": 1.0, "crash": 1.0}}})
DYING = Sample(id="d", task="mixed", completion="die")


def test_mask_policy_drops_the_faulted_verifier_from_the_reward(server):
    cfg = config(server, fault_policy={"crash": FaultPolicy.MASK})
    [scored] = score_sync(cfg, [DYING], MIXED)
    assert scored.components["crash"].verdict is Verdict.NOT_APPLICABLE
    assert "masked error" in scored.components["crash"].detail
    assert scored.reward == 0.0  # format alone: "die" is not well formed
    assert scored.verdict is Verdict.INCORRECT


def test_a_verifier_whose_shared_request_died_with_another_is_asked_again_alone(server):
    cfg = config(server, fault_policy={"crash": FaultPolicy.MASK, "format": FaultPolicy.FAIL})
    [scored] = score_sync(cfg, [DYING], MIXED)  # format's first answer died with crash's worker: not its fault
    assert scored.components["format"].verdict is Verdict.INCORRECT
    assert scored.components["crash"].verdict is Verdict.NOT_APPLICABLE


def test_fail_policy_raises_verifier_fault(server):
    cfg = config(server, fault_policy={"crash": FaultPolicy.FAIL})
    with pytest.raises(VerifierFault, match="crash"):
        score_sync(cfg, [DYING], MIXED)


def test_retry_policy_reports_the_fault_after_its_retries(server):
    cfg = config(server, retries=1, default_fault_policy=FaultPolicy.RETRY)
    [scored] = score_sync(cfg, [DYING], MIXED)
    assert scored.verdict is Verdict.ERROR
    assert scored.reward is None
    assert "worker process died" in scored.detail
