"""The server's side of its scoring workers: rewards.pool running services.worker_main.

Reward code never runs on a gRPC handler or the event loop: each job goes to a warm
worker process (the one killable pool, rewards.pool) with its deadline as data: the
sample's `sample_timeout_s` in all, and for each verifier that declares a bound on an
inline step (the math comparison) that bound on its part. A job past either gets its
worker killed and an explicit TIMEOUT; a worker that dies gets its sample an ERROR;
either way the sample comes back exactly once and the pool keeps its size.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable

from rewards.compose import ScoredSample
from rewards.pool import Deadline, PoolClosed, WorkerCrashed, WorkerFault, WorkerPool, WorkerPoolConfig, WorkerTimeout
from rewards.routing import WeightedVerifier
from rewards.types import Verdict
from sandbox.api import RunResult, Status
from services.jobs import Catalogue, ExecuteJob, ExecuteOutcome, Job, JobOutcome, WorkerSpec

log = logging.getLogger(__name__)


class ScoringPool:
    """`size` warm scoring workers; submit() is safe from any thread, submit_async() from the loop."""

    def __init__(self, spec: WorkerSpec, size: int, timeout_s: float,
                 on_restart: Callable[[str], None] | None = None) -> None:
        self.timeout_s = timeout_s
        self.catalogue: Catalogue | None = None
        self._on_restart = on_restart or (lambda reason: None)
        config = WorkerPoolConfig(handler="services.worker_main:handle", workers=size,
                            setup="services.worker_main:setup", setup_arg=spec)
        self.pool = WorkerPool(config, on_replace=self._replaced)
        # id(route) -> (route, its deadline); the route is held so that its id is never reused
        self._deadlines: dict[int, tuple[tuple[WeightedVerifier, ...], Deadline]] = {}

    def start(self) -> Catalogue:
        """Start and warm every worker (blocking: call it off the event loop)."""
        self.catalogue = self.pool.start(wait=True)
        return self.catalogue

    def _replaced(self, reason: str) -> None:
        log.warning("scoring worker replaced: %s", reason)
        self._on_restart(reason)

    @property
    def queue_depth(self) -> int:
        return self.pool.queue_depth

    def deadline(self, job: Job | ExecuteJob) -> Deadline:
        """The sample's timeout in all, and each verifier's declared bound on its own step."""
        if isinstance(job, ExecuteJob):
            return Deadline(self.timeout_s, "the program")
        known = self._deadlines.get(id(job.route))
        if known is None or known[0] is not job.route:  # one per route object: routes are interned
            verifiers = self.catalogue.verifiers if self.catalogue is not None else {}
            steps = tuple(getattr(verifiers.get(wv.verifier), "deadline", None) for wv in job.route)
            known = self._deadlines[id(job.route)] = (job.route, Deadline(self.timeout_s, "scoring", steps))
        return known[1]

    def submit(self, job: Job | ExecuteJob) -> concurrent.futures.Future[JobOutcome | ExecuteOutcome]:
        """A future of the JobOutcome (for a Job) or ExecuteOutcome (for an ExecuteJob); never a fault."""
        start = time.perf_counter()
        answer: concurrent.futures.Future[JobOutcome | ExecuteOutcome] = concurrent.futures.Future()
        inner = self.pool.submit(job, self.deadline(job))

        pending = [answer]  # emptied once settled, so the two futures do not keep each other alive

        def settle(done: concurrent.futures.Future[JobOutcome | ExecuteOutcome]) -> None:
            target = pending.pop()
            if done.cancelled():
                target.cancel()
            elif isinstance(done.exception(), WorkerFault):
                target.set_result(faulted(job, done.exception(), start))  # type: ignore[arg-type]
            else:
                target.set_result(done.result())

        answer.add_done_callback(lambda a: inner.cancel() if a.cancelled() else None)
        inner.add_done_callback(settle)
        return answer

    def submit_async(self, job: Job | ExecuteJob) -> Awaitable[JobOutcome | ExecuteOutcome]:
        """submit() for a coroutine on the running loop: queued now, answered when awaited;
        cancelling the awaiting task skips a job that has not started."""
        start = time.perf_counter()
        return _settled(self.pool.submit_async(job, self.deadline(job)), job, start)

    def close(self) -> None:
        """Stop now: queued and running jobs are answered with an ERROR, the processes are killed."""
        self.pool.close()


async def _settled(waiter: Awaitable[JobOutcome | ExecuteOutcome], job: Job | ExecuteJob, start: float
                   ) -> JobOutcome | ExecuteOutcome:
    try:
        return await waiter
    except WorkerFault as fault:
        return faulted(job, fault, start)


def faulted(job: Job | ExecuteJob, fault: WorkerFault, start: float) -> JobOutcome | ExecuteOutcome:
    """The outcome of a job the pool, not a verifier, ended: a timeout, a dead worker, a handler
    that raised outside any verifier, or a shut-down."""
    if isinstance(fault, WorkerTimeout):
        kind, verdict = "timeout", Verdict.TIMEOUT
    elif isinstance(fault, PoolClosed):
        kind, verdict = "error", Verdict.ERROR
        fault = PoolClosed("not scored: the server is shutting down")
    elif isinstance(fault, WorkerCrashed):
        kind, verdict = "worker_died", Verdict.ERROR
    else:
        kind, verdict = "error", Verdict.ERROR
    detail = f"worker process died while scoring: {fault}" if kind == "worker_died" else str(fault)
    elapsed_s = time.perf_counter() - start
    if isinstance(job, ExecuteJob):
        result = RunResult(Status.SANDBOX_ERROR, None, None, "", "", elapsed_s, 0.0, None, detail)
        return ExecuteOutcome(result, fault=kind if kind != "error" else None)
    scored = ScoredSample(job.sample.id, None, verdict, {}, elapsed_s * 1000, detail)
    return JobOutcome(scored, fault=kind if kind != "error" else None)
