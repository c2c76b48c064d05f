"""The one implementation of arbiter.v1.Verifier and arbiter.v1.Sandbox, shared by every host.

The standalone grpc.aio server (services.server) and the Ray Serve deployments
(services.serve_app) both wrap VerifierServicer. Its transport-free methods
(`score`, `score_batch`, `score_stream`, `list_verifiers`, `describe`) take and
return messages and raise ServiceError(code, message); the grpc.aio methods
(`Score`, ...) only translate ServiceError into a status on the context.

Per sample: decode and validate (errors name the wire field), admit against a
bounded in-flight count (RESOURCE_EXHAUSTED beyond it, UNAVAILABLE while
draining), ship the verdict-cache entries known for its reference, score in a
worker process, record metrics and new cache entries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from protos.arbiter.v1 import sandbox_pb2, sandbox_pb2_grpc, verifier_pb2, verifier_pb2_grpc
from rewards.compose import ScoredSample
from rewards.routing import RoutingConfig
from rewards.types import Sample, SampleError
from sandbox.api import RunRequest
from services import convert
from services.cache import VerdictCache, reference_digest
from services.config import SandboxCaps, ScoringConfig
from services.metrics import Metrics
from services.workers import Catalogue, ExecuteJob, ExecuteOutcome, Job, JobOutcome, WorkerPool, WorkerSpec

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A call-level failure with its gRPC status; per-sample problems travel in results instead."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(code, message)  # both arguments, so Ray can pickle it across processes
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def _invalid(error: SampleError) -> ServiceError:
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"{error.field}: {error.message}")


def _wire_error(scored: ScoredSample) -> ScoredSample:
    """A verifier names the Sample field it rejects ("tests"); the wire names the request's ("sample.tests_json")."""
    if scored.error_field is None:
        return scored
    return dataclasses.replace(scored, error_field=convert.field_to_wire(scored.error_field))


class VerifierServicer(verifier_pb2_grpc.VerifierServicer):
    def __init__(self, config: ScoringConfig, metrics: Metrics | None = None) -> None:
        config.validate()
        self.config = config
        self.metrics = metrics or Metrics()
        self.routing = RoutingConfig.load_or_default(config.routing_file)
        self.cache = VerdictCache(config.cache_entries)
        spec = WorkerSpec(self.routing, config.verifiers, dict(config.plugins), dict(config.external), config.math)
        self.pool = WorkerPool(spec, config.worker_processes, config.sample_timeout_s, self._on_restart)
        self.catalogue: Catalogue | None = None
        self.draining = False
        self._in_flight = 0
        self._room = asyncio.Condition()

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start and warm the worker processes; the servicer is ready when this returns."""
        self.catalogue = await asyncio.to_thread(self.pool.start)
        for name, why in self.catalogue.unavailable.items():
            log.warning("verifier %s is unavailable: %s", name, why)
        log.info("servicer ready: %d workers, verifiers %s", self.config.worker_processes,
                 ", ".join(sorted(self.catalogue.verifiers)))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def ready(self) -> bool:
        return self.catalogue is not None and not self.draining

    async def begin_drain(self) -> None:
        """Refuse new work with UNAVAILABLE; samples already admitted still finish."""
        self.draining = True
        async with self._room:
            self._room.notify_all()

    async def close(self) -> None:
        await self.begin_drain()
        await asyncio.to_thread(self.pool.close)

    def _on_restart(self, reason: str) -> None:
        self.metrics.worker_restarts.labels(reason.split()[0]).inc()

    # --- admission ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.catalogue is None:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "warming up: worker processes are starting")
        if self.draining:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "draining: this server is shutting down")

    def _admit(self, n: int) -> None:
        self._check_open()
        if self._in_flight + n > self.config.max_in_flight_samples:
            self.metrics.errors.labels("over_capacity").inc()
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"over capacity: {self._in_flight} samples in flight, {n} more would exceed "
                f"max_in_flight_samples={self.config.max_in_flight_samples}; retry with back-off",
            )
        self._in_flight += n
        self.metrics.in_flight.set(self._in_flight)

    async def _admit_wait(self) -> None:
        """Streams wait for room instead of failing: gRPC flow control then slows the sender."""
        async with self._room:
            await self._room.wait_for(lambda: self.draining or self._in_flight < self.config.max_in_flight_samples)
            self._admit(1)

    async def _release(self, n: int) -> None:
        self._in_flight -= n
        self.metrics.in_flight.set(self._in_flight)
        async with self._room:
            self._room.notify_all()

    def _check_size(self, request: Any) -> None:
        size = request.ByteSize()
        if size > self.config.max_request_bytes:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"request: {size} bytes exceed max_request_bytes={self.config.max_request_bytes}")

    # --- one sample ---------------------------------------------------------------------------

    def _prepare(self, request: verifier_pb2.ScoreRequest) -> Job:
        """Decode and validate one request into a job; SampleError names the field."""
        if not request.HasField("sample"):
            raise SampleError("sample", "missing required field")
        sample = convert.sample_from_proto(request.sample)
        if len(sample.completion) > self.config.max_completion_chars:
            raise SampleError("sample.completion", f"{len(sample.completion)} characters exceed "
                              f"max_completion_chars={self.config.max_completion_chars}")
        assert self.catalogue is not None
        served = self.catalogue.verifiers
        named = [request.verifier] if request.verifier else list(request.verifiers)
        if request.verifier and request.verifiers:
            raise SampleError("verifiers", "set either verifier or verifiers, not both")
        if named:
            field = "verifier" if request.verifier else "verifiers"
            for name in named:
                if name not in served:
                    known = ", ".join(sorted(served))
                    raise SampleError(field, f"unknown verifier {name!r}; served: {known}")
            if len(set(named)) != len(named):
                raise SampleError(field, f"names a verifier twice: {named}")
            return self._job(sample, tuple(named), named)
        try:
            names = [wv.verifier for wv in self.routing.route(sample.task)]
        except SampleError as exc:
            raise SampleError("sample.task", exc.message) from None
        missing = [n for n in names if n not in served]
        if missing:
            raise SampleError("sample.task", f"task {sample.task!r} routes to {missing[0]!r}, "
                              "which this server does not serve")
        return self._job(sample, None, names)

    def _job(self, sample: Sample, only: tuple[str, ...] | None, names: list[str]) -> Job:
        digests, known = {}, {}
        if self.cache.enabled:
            assert self.catalogue is not None
            for name in names:
                meta = self.catalogue.verifiers[name]
                digest = reference_digest(name, meta.version, meta.reference, sample)
                if digest is not None:
                    digests[name] = digest
                    known[name] = self.cache.group(digest)
        return Job(sample, only, digests, known)

    async def _score_job(self, job: Job) -> tuple[ScoredSample, list[str]]:
        start = time.perf_counter()
        future = self.pool.submit_async(job)
        self.metrics.queue_depth.set(self.pool.queue_depth)
        outcome = await future
        self.metrics.queue_depth.set(self.pool.queue_depth)
        self.metrics.sample_latency.observe(time.perf_counter() - start)
        return outcome.scored, self._record(job, outcome)

    def _record(self, job: Job, outcome: JobOutcome) -> list[str]:
        """Metrics and cache entries from one outcome; returns the names answered from the cache."""
        scored, m = outcome.scored, self.metrics
        m.sample_verdicts.labels(scored.verdict.value).inc()
        if outcome.fault == "timeout":
            m.timeouts.inc()
        if outcome.fault is not None:
            m.errors.labels(outcome.fault).inc()
        elif scored.is_input_error:
            m.errors.labels("input_error").inc()
        for name, result in scored.components.items():
            m.verdicts.labels(name, result.verdict.value).inc()
        hits = []
        for run in outcome.runs:
            digest = job.digests.get(run.verifier)
            if digest is None or run.cache_key is None:
                m.latency.labels(run.verifier).observe(run.elapsed_s)
                continue
            self.cache.record(run.verifier, run.hit)
            m.cache_lookups.labels(run.verifier, "hit" if run.hit else "miss").inc()
            if run.hit:
                hits.append(run.verifier)
                continue
            m.latency.labels(run.verifier).observe(run.elapsed_s)
            result = scored.components.get(run.verifier)
            if result is not None:
                self.cache.put(digest, run.cache_key, result)
        return hits

    async def _score_admitted(self, request: verifier_pb2.ScoreRequest) -> verifier_pb2.ScoreResult:
        """One already-admitted request to one result; input errors become per-item error results."""
        try:
            try:
                job = self._prepare(request)
            except SampleError as exc:
                self.metrics.errors.labels("input_error").inc()
                return convert.scored_to_proto(ScoredSample.input_error(request.sample.id or None, exc))
            scored, hits = await self._score_job(job)
            return convert.scored_to_proto(_wire_error(scored), hits)
        finally:
            await self._release(1)

    # --- transport-free API -------------------------------------------------------------------

    async def score(self, request: verifier_pb2.ScoreRequest) -> verifier_pb2.ScoreResult:
        self._check_size(request)
        self._check_open()
        try:
            job = self._prepare(request)
        except SampleError as exc:
            self.metrics.errors.labels("input_error").inc()
            raise _invalid(exc) from None
        self._admit(1)
        try:
            scored, hits = await self._score_job(job)
        finally:
            await self._release(1)
        if scored.is_input_error:
            wired = _wire_error(scored)
            raise _invalid(SampleError(wired.error_field or "", wired.detail))
        return convert.scored_to_proto(scored, hits)

    async def score_with(self, sample: Sample, verifier: str) -> ScoredSample:
        """Score an already-built sample with one verifier (for Sandbox.Grade); input errors come back inside."""
        self._check_open()
        assert self.catalogue is not None
        if verifier not in self.catalogue.verifiers:
            why = self.catalogue.unavailable.get(verifier, "not served here")
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, f"verifier {verifier!r} is unavailable: {why}")
        self._admit(1)
        try:
            scored, _ = await self._score_job(self._job(sample, (verifier,), [verifier]))
        finally:
            await self._release(1)
        return scored

    async def execute(self, request: RunRequest) -> ExecuteOutcome:
        """Run a program in a worker's sandbox (for Sandbox.Execute), admitted like one sample."""
        self._admit(1)
        try:
            outcome = await self.pool.submit_async(ExecuteJob(request))
        finally:
            await self._release(1)
        if outcome.fault is not None:
            self.metrics.errors.labels(outcome.fault).inc()
        return outcome

    async def score_batch(self, request: verifier_pb2.ScoreBatchRequest) -> verifier_pb2.ScoreBatchResponse:
        self._check_size(request)
        n = len(request.requests)
        if n > self.config.max_batch_items:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"requests: {n} items exceed max_batch_items={self.config.max_batch_items}")
        self._admit(n)
        self.metrics.batch_size.observe(n)
        tasks = [asyncio.ensure_future(self._score_admitted(r)) for r in request.requests]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            raise
        return verifier_pb2.ScoreBatchResponse(results=results)

    async def score_stream(
        self, requests: AsyncIterator[verifier_pb2.ScoreRequest]
    ) -> AsyncIterator[verifier_pb2.ScoreResult]:
        """Results in completion order, keyed by sample id; ids must be unique among those in flight."""
        self._check_open()
        done: asyncio.Queue[Any] = asyncio.Queue()
        pending_ids: set[str] = set()
        tasks: set[asyncio.Task[verifier_pb2.ScoreResult]] = set()
        end = object()

        async def read() -> None:
            async for request in requests:
                self._check_size(request)
                sample_id = request.sample.id
                if not sample_id:
                    raise _invalid(SampleError("sample.id", "must be non-empty: stream results are keyed by it"))
                if sample_id in pending_ids:
                    raise _invalid(SampleError("sample.id", f"{sample_id!r} is already in flight on this stream"))
                await self._admit_wait()
                pending_ids.add(sample_id)
                task = asyncio.ensure_future(self._score_admitted(request))
                tasks.add(task)
                task.add_done_callback(done.put_nowait)

        async def read_then_end() -> None:
            try:
                await read()
                done.put_nowait(end)
            except BaseException as exc:
                done.put_nowait(exc)
                raise

        reader = asyncio.ensure_future(read_then_end())
        reading = True
        try:
            while reading or tasks:
                item = await done.get()
                if item is end:
                    reading = False
                elif isinstance(item, BaseException):
                    raise item
                else:
                    tasks.discard(item)
                    result = item.result()
                    pending_ids.discard(result.id)
                    yield result
        finally:
            reader.cancel()
            for task in tasks:
                task.cancel()

    def _stats(self, verifier: str | None = None) -> verifier_pb2.CacheStats:
        return convert.cache_stats_to_proto(self.cache.stats(verifier))

    def list_verifiers(self, request: verifier_pb2.ListVerifiersRequest) -> verifier_pb2.ListVerifiersResponse:
        self._check_open()
        assert self.catalogue is not None
        return verifier_pb2.ListVerifiersResponse(
            verifiers=[convert.verifier_info(m.name, m.version, m.reference, m.address)
                       for _, m in sorted(self.catalogue.verifiers.items())],
            tasks=convert.routing_to_proto(self.routing),
            cache=self._stats(),
        )

    def describe(self, request: verifier_pb2.DescribeRequest) -> verifier_pb2.DescribeResponse:
        self._check_open()
        assert self.catalogue is not None
        meta = self.catalogue.verifiers.get(request.name)
        if meta is None:
            why = self.catalogue.unavailable.get(request.name)
            detail = f"failed to load: {why}" if why else f"served: {', '.join(sorted(self.catalogue.verifiers))}"
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"name: unknown verifier {request.name!r}; {detail}")
        return verifier_pb2.DescribeResponse(
            verifier=convert.verifier_info(meta.name, meta.version, meta.reference, meta.address),
            cache=self._stats(meta.name),
        )

    # --- grpc.aio methods ---------------------------------------------------------------------

    async def Score(self, request, context):
        return await _unary(self.score(request), context)

    async def ScoreBatch(self, request, context):
        return await _unary(self.score_batch(request), context)

    async def ScoreStream(self, request_iterator, context):
        try:
            async for result in self.score_stream(request_iterator):
                yield result
        except ServiceError as exc:
            await context.abort(exc.code, exc.message)

    async def ListVerifiers(self, request, context):
        return await _unary(_now(self.list_verifiers, request), context)

    async def Describe(self, request, context):
        return await _unary(_now(self.describe, request), context)


async def _now(fn: Any, request: Any) -> Any:
    return fn(request)


async def _unary(call: Any, context: grpc.aio.ServicerContext) -> Any:
    try:
        return await call
    except ServiceError as exc:
        await context.abort(exc.code, exc.message)


class SandboxServicer(sandbox_pb2_grpc.SandboxServicer):
    """Execute and Grade, run in the verifier servicer's worker processes; requests are held to the server's caps."""

    def __init__(self, caps: SandboxCaps, max_concurrent: int, verifier: VerifierServicer) -> None:
        self.caps = caps
        self._slots = asyncio.Semaphore(max_concurrent)
        self._verifier = verifier  # Grade is the code verifier's job, run in its worker processes

    def _check_caps(self, msg: sandbox_pb2.Limits) -> None:
        for name in convert.LIMIT_FIELDS:
            if msg.HasField(name) and getattr(msg, name) > getattr(self.caps, name):
                raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"limits.{name}: {getattr(msg, name)} exceeds the server's cap "
                                   f"{getattr(self.caps, name)}")

    async def execute(self, request: sandbox_pb2.ExecuteRequest) -> sandbox_pb2.ExecuteResponse:
        self._check_caps(request.limits)
        try:
            run_request = convert.run_request_from_proto(request)
        except SampleError as exc:
            raise _invalid(exc) from None
        async with self._slots:
            outcome = await self._verifier.execute(run_request)
        if outcome.refused is not None:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, outcome.refused)
        return convert.run_result_to_proto(outcome.result)

    async def grade(self, request: sandbox_pb2.GradeRequest) -> sandbox_pb2.GradeResponse:
        try:
            sample = convert.grade_sample_from_proto(request)
        except SampleError as exc:
            raise _invalid(exc) from None
        scored = await self._verifier.score_with(sample, "code")
        if scored.is_input_error:
            raise _invalid(SampleError(convert.grade_field_to_wire(scored.error_field or ""), scored.detail))
        return convert.grade_response(scored)

    async def Execute(self, request, context):
        return await _unary(self.execute(request), context)

    async def Grade(self, request, context):
        return await _unary(self.grade(request), context)
