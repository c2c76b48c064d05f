"""The worker pool behind the servicer: several samples per round trip, kill-enforced timeouts, replacement."""

from __future__ import annotations

import concurrent.futures

import pytest
from grpc_plugins import PLUGINS, ROUTING

from rewards.routing import RoutingConfig
from rewards.types import Sample, Verdict
from services.jobs import Job, WorkerSpec
from services.workers import ScoringPool

ROUTES = RoutingConfig.from_dict(ROUTING)


@pytest.fixture(scope="module")
def pool():
    spec = WorkerSpec(verifiers=("crash", "sleep", "format"), plugins=PLUGINS)
    pool = ScoringPool(spec, size=1, timeout_s=2.0)
    pool.start()
    yield pool
    pool.close()


def job(id: str, task: str, completion: str = "ok", sleep_s: float = 0) -> Job:
    return Job(Sample(id=id, task=task, completion=completion, metadata={"sleep_s": sleep_s}), ROUTES.route(task))


def verdicts(pool: ScoringPool, jobs: list[Job]) -> dict[str, Verdict]:
    futures = [pool.submit(j) for j in jobs]  # queued together: one worker takes them as one chunk
    concurrent.futures.wait(futures, timeout=120)
    return {f.result().scored.id: f.result().scored.verdict for f in futures}


def test_a_dying_sample_in_a_chunk_spares_the_samples_after_it(pool):
    busy = job("busy", "sleep", sleep_s=0.5)  # the rest queue up behind it and leave as one chunk
    jobs = [busy, job("a", "crash"), job("b", "crash"), job("dies", "crash", "die"), job("c", "crash"),
            job("d", "crash")]
    got = verdicts(pool, jobs)
    assert got == {"busy": Verdict.CORRECT, "a": Verdict.CORRECT, "b": Verdict.CORRECT, "dies": Verdict.ERROR,
                   "c": Verdict.CORRECT, "d": Verdict.CORRECT}


def test_an_overrunning_sample_in_a_chunk_times_out_alone(pool):
    busy = job("busy", "sleep", sleep_s=0.5)
    jobs = [busy, job("quick", "sleep"), job("stuck", "sleep", sleep_s=30), job("after", "sleep")]
    assert verdicts(pool, jobs) == {"busy": Verdict.CORRECT, "quick": Verdict.CORRECT, "stuck": Verdict.TIMEOUT,
                                    "after": Verdict.CORRECT}


def test_a_cancelled_job_that_has_not_started_is_skipped(pool):
    blocker = pool.submit(job("blocker", "sleep", sleep_s=0.5))
    skipped = pool.submit(job("skipped", "format"))
    assert skipped.cancel()
    assert blocker.result(60).scored.verdict is Verdict.CORRECT
    assert pool.submit(job("next", "format")).result(60).scored.id == "next"


def test_closed_pool_answers_instead_of_hanging():
    spec = WorkerSpec(verifiers=("sleep",), plugins=PLUGINS)
    pool = ScoringPool(spec, size=1, timeout_s=30.0)
    pool.start()
    running = pool.submit(job("running", "sleep", sleep_s=10))
    queued = pool.submit(job("queued", "sleep"))
    pool.close()
    assert running.result(30).scored.verdict is Verdict.ERROR
    assert queued.result(30).scored.verdict is Verdict.ERROR
    assert "shut" in queued.result().scored.detail
