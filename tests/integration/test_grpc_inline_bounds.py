"""Verifiers run inline in a scoring worker, held to the deadline they declare; the pool kills at it.

The math verifier compares inline there (no pool of its own); a pathological answer must still
come back as TIMEOUT within the math deadline, well before the sample's backstop, and the server
must keep serving.
"""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_harness import RunningServer

from arbiter.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from rewards.math import MathConfig
from rewards.routing import RoutingConfig
from rewards.types import Sample, Verdict
from services.config import ScoringConfig, ServerConfig
from services.jobs import Job, WorkerSpec
from services.workers import ScoringPool

BACKSTOP_S = 60.0  # the sample timeout: far above the inline deadlines, so hitting it would fail the tests
SLACK_S = 3.0  # to notice the overrun, kill the worker and answer, on a loaded 2-core machine
MATH_DEADLINE_S = MathConfig().timeout_s  # the registry builds the math verifier with the defaults


ROUTES = RoutingConfig.from_dict({"tasks": {"step": {"bounded_step": 1.0}, "step_then_sleep": {"bounded_step": 1.0,
                                                                                               "sleep": 1.0}}})


@pytest.fixture(scope="module")
def step_pool():
    plugins = {"bounded_step": "grpc_plugins:BoundedStepVerifier", "sleep": "grpc_plugins:SleepVerifier"}
    spec = WorkerSpec(verifiers=("bounded_step", "sleep"), plugins=plugins)
    pool = ScoringPool(spec, size=1, timeout_s=BACKSTOP_S)
    pool.start()
    yield pool
    pool.close()


def step_job(id: str, task: str = "step", **metadata: float) -> Job:
    return Job(Sample(id=id, task=task, completion="x", metadata=metadata), ROUTES.route(task))


def test_verifier_past_its_declared_deadline_times_out_before_the_sample_timeout(step_pool):
    start = time.monotonic()
    outcome = step_pool.submit(step_job("stuck", step_s=120)).result(BACKSTOP_S)
    elapsed_s = time.monotonic() - start
    assert outcome.scored.verdict is Verdict.TIMEOUT
    assert outcome.fault == "timeout"
    assert "the step took longer than 0.5 s" in outcome.scored.detail
    assert elapsed_s < 0.5 + SLACK_S
    assert step_pool.submit(step_job("next")).result(120).scored.verdict is Verdict.CORRECT


def test_the_next_verifier_of_a_sample_is_held_to_the_sample_timeout_only(step_pool):
    outcome = step_pool.submit(step_job("after", "step_then_sleep", sleep_s=1.0)).result(BACKSTOP_S)
    assert outcome.scored.verdict is Verdict.CORRECT


@pytest.fixture(scope="module")
def math_server():
    scoring = ScoringConfig(worker_processes=1, verifiers=("format", "math"), sample_timeout_s=BACKSTOP_S)
    server = RunningServer(ServerConfig(port=0, enable_sandbox_service=False, scoring=scoring))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def math_stub(math_server):
    with grpc.insecure_channel(math_server.address) as channel:
        yield verifier_pb2_grpc.VerifierStub(channel)


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_scoring_workers_compare_math_without_a_pool_of_their_own(math_server, math_stub):
    result = math_stub.Score(math_request("half", "\\frac{1}{2}", "0.5"), timeout=60)
    assert result.verdict == common_pb2.VERDICT_CORRECT
    workers = [w for w in math_server.server.verifier.pool.pool._workers if w is not None]
    assert workers
    assert all(children(w.process.pid) == [] for w in workers)  # one process hop per sample, not two


def math_request(id: str, answer: str, gold: str) -> verifier_pb2.ScoreRequest:
    completion = f"<think>working</think><answer>\\boxed{{{answer}}}</answer>"
    return verifier_pb2.ScoreRequest(sample=verifier_pb2.Sample(id=id, task="math", completion=completion,
                                                                answer=gold))


@pytest.mark.slow
def test_pathological_math_answer_times_out_at_the_math_deadline_and_the_server_keeps_serving(math_stub):
    start = time.monotonic()
    result = math_stub.Score(math_request("tower", "9^{9^{9^{9^{9}}}}", "5"), timeout=BACKSTOP_S)
    elapsed_s = time.monotonic() - start
    assert result.verdict == common_pb2.VERDICT_TIMEOUT
    assert not result.HasField("reward")
    assert f"math comparison took longer than {MATH_DEADLINE_S:g} s" in result.detail
    assert elapsed_s < MATH_DEADLINE_S + SLACK_S
    batch = verifier_pb2.ScoreBatchRequest(requests=[math_request(f"ok{i}", f"\\frac{{{i}}}{{2}}", f"{i / 2}")
                                                     for i in range(1, 5)])
    after = math_stub.ScoreBatch(batch, timeout=120)  # the replacement worker warms up first
    assert [r.verdict for r in after.results] == [common_pb2.VERDICT_CORRECT] * 4
