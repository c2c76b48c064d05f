"""The server side's core: arbiter.v1.Verifier and arbiter.v1.Sandbox, once, with no transport.

Read this file top to bottom to know what the server does with a sample. Two hosts
adapt it and add nothing but their transport: the standalone grpc.aio server
(services.servicer, services.server) and the Ray Serve replicas (services.serve_app).
Each public method takes and returns arbiter.v1 messages and raises ServiceError(code,
message) for a call-level failure; a per-sample problem travels inside its result.

One sample's path:
1. decode and validate (services.convert; an error names the wire field);
2. route: a request naming `verifiers` gets exactly those, components only, because
   its caller routed and composes; one naming none is routed by `sample.task` through
   this server's routing and composed here (rewards.compose), once;
3. admit against a bounded in-flight count (RESOURCE_EXHAUSTED beyond it for unary and
   batch calls; a stream waits for room, so gRPC flow control slows its sender);
   UNAVAILABLE while warming up or draining;
4. ship the verdict-cache entries known for its reference (services.cache) and score it
   in a warm worker process (services.workers; reward code never runs here), held to
   `sample_timeout_s` and to each verifier's declared deadline;
5. record metrics and new cache entries, and answer exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from arbiter.v1 import sandbox_pb2, verifier_pb2
from rewards.compose import ScoredSample
from rewards.routing import WeightedVerifier
from rewards.types import Sample, SampleError
from services import convert
from services.cache import VerdictCache, reference_digest
from services.config import ScoringConfig, check
from services.jobs import Catalogue, ExecuteJob, ExecuteOutcome, Job, JobOutcome, WorkerSpec
from services.metrics import Metrics
from services.streams import keyed_results
from services.workers import ScoringPool

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A call-level failure: a gRPC status code and its message. It pickles by the code's name, so
    it crosses Ray's process boundaries (Serve replicas, the router) unchanged."""

    def __init__(self, code: grpc.StatusCode | str, message: str) -> None:
        self.code = grpc.StatusCode[code] if isinstance(code, str) else code
        self.message = message
        super().__init__(self.code.name, message)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def invalid(error: SampleError) -> ServiceError:
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"{error.field}: {error.message}")


def _wire_error(scored: ScoredSample) -> ScoredSample:
    """A verifier names the Sample field it rejects ("tests"); the wire names the request's ("sample.tests_json")."""
    if scored.error_field is None:
        return scored
    return dataclasses.replace(scored, error_field=convert.field_to_wire(scored.error_field))


@functools.lru_cache(maxsize=1024)
def _named_route(names: tuple[str, ...]) -> tuple[WeightedVerifier, ...]:
    """The route of a request naming its verifiers, each at weight 1: one object per name list, so that
    the jobs of a batch share it (pickled once per round trip, one deadline computed for it)."""
    return tuple(WeightedVerifier(name, 1.0) for name in names)


class VerifierCore:
    def __init__(self, config: ScoringConfig, metrics: Metrics | None = None) -> None:
        check(config)
        self.config = config
        self.metrics = metrics or Metrics()
        self.routing = config.routes
        self.cache = VerdictCache(config.cache_entries)
        spec = WorkerSpec(config.verifiers, dict(config.plugins), dict(config.external), config.math)
        self.pool = ScoringPool(spec, config.worker_processes, config.sample_timeout_s, self._on_restart)
        self.catalogue: Catalogue | None = None
        self.draining = False
        self._in_flight = 0
        self._room = asyncio.Condition()
        self._sandbox_slots = asyncio.Semaphore(config.worker_processes)

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start and warm the worker processes; the core is ready when this returns."""
        self.catalogue = await asyncio.to_thread(self.pool.start)
        for name, why in self.catalogue.unavailable.items():
            log.warning("verifier %s is unavailable: %s", name, why)
        log.info("core ready: %d workers, verifiers %s", self.config.worker_processes,
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
        """Decode, validate and route one request into a job; SampleError names the field."""
        if not request.HasField("sample"):
            raise SampleError("sample", "missing required field")
        sample = convert.sample_from_proto(request.sample)
        if len(sample.completion) > self.config.max_completion_chars:
            raise SampleError("sample.completion", f"{len(sample.completion)} characters exceed "
                              f"max_completion_chars={self.config.max_completion_chars}")
        assert self.catalogue is not None
        served = self.catalogue.verifiers
        named = list(request.verifiers)
        if named:
            for name in named:
                if name not in served:
                    raise SampleError("verifiers", f"unknown verifier {name!r}; served: {', '.join(sorted(served))}")
            if len(set(named)) != len(named):
                raise SampleError("verifiers", f"names a verifier twice: {named}")
            return self._job(sample, _named_route(tuple(named)), compose=False)
        try:
            route = self.routing.route(sample.task)
        except SampleError as exc:
            raise SampleError("sample.task", exc.message) from None
        missing = [wv.verifier for wv in route if wv.verifier not in served]
        if missing:
            raise SampleError("sample.task", f"task {sample.task!r} routes to {missing[0]!r}, "
                              "which this server does not serve")
        return self._job(sample, route, compose=True)

    def _job(self, sample: Sample, route: tuple[WeightedVerifier, ...], compose: bool) -> Job:
        digests, known = {}, {}
        if self.cache.enabled:
            assert self.catalogue is not None
            for name in (wv.verifier for wv in route):
                meta = self.catalogue.verifiers[name]
                digest = reference_digest(name, meta.version, meta.reference, sample)
                if digest is not None:
                    digests[name] = digest
                    known[name] = self.cache.group(digest)
        return Job(sample, route, compose, digests, known)

    async def _score_job(self, job: Job) -> tuple[ScoredSample, list[str]]:
        start = time.perf_counter()
        future = self.pool.submit_async(job)
        self.metrics.queue_depth.set(self.pool.queue_depth)
        outcome = await future
        self.metrics.queue_depth.set(self.pool.queue_depth)
        self.metrics.sample_latency.observe(time.perf_counter() - start)
        return outcome.scored, self._record(job, outcome)  # type: ignore[union-attr]

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
                return convert.input_error_to_proto(request.sample.id, exc)
            scored, hits = await self._score_job(job)
            return convert.scored_to_proto(_wire_error(scored), hits)
        finally:
            await self._release(1)

    # --- arbiter.v1.Verifier --------------------------------------------------------------------

    async def score(self, request: verifier_pb2.ScoreRequest) -> verifier_pb2.ScoreResult:
        self._check_size(request)
        self._check_open()
        try:
            job = self._prepare(request)
        except SampleError as exc:
            self.metrics.errors.labels("input_error").inc()
            raise invalid(exc) from None
        self._admit(1)
        try:
            scored, hits = await self._score_job(job)
        finally:
            await self._release(1)
        if scored.is_input_error:
            wired = _wire_error(scored)
            raise invalid(SampleError(wired.error_field or "", wired.detail))
        return convert.scored_to_proto(scored, hits)

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
        """Results as each is ready, keyed by sample id (services.streams). A bad item (no id, an id
        already in flight on this stream, an oversized or malformed request) gets its own error result
        and the stream goes on; a stream waits for room instead of failing."""
        self._check_open()
        async for result in keyed_results(requests, self._score_admitted, self._admit_wait, problem=self._too_big,
                                          rejected=self.metrics.errors.labels("input_error").inc):
            yield result

    def _too_big(self, request: verifier_pb2.ScoreRequest) -> SampleError | None:
        size = request.ByteSize()
        if size > self.config.max_request_bytes:
            return SampleError("request", f"{size} bytes exceed max_request_bytes={self.config.max_request_bytes}")
        return None

    def list_verifiers(self, request: verifier_pb2.ListVerifiersRequest) -> verifier_pb2.ListVerifiersResponse:
        self._check_open()
        assert self.catalogue is not None
        return verifier_pb2.ListVerifiersResponse(
            verifiers=[convert.verifier_info(m.name, m.version, m.reference, m.address)
                       for _, m in sorted(self.catalogue.verifiers.items())],
            tasks=convert.routing_to_proto(self.routing),
            cache=convert.cache_stats_to_proto(self.cache.stats()),
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
            cache=convert.cache_stats_to_proto(self.cache.stats(meta.name)),
        )

    # --- arbiter.v1.Sandbox: programs and Grade run in the same worker processes ---------------

    async def execute(self, request: sandbox_pb2.ExecuteRequest) -> sandbox_pb2.ExecuteResponse:
        caps = self.config.sandbox_caps
        for name in convert.LIMIT_FIELDS:
            if name != "network" and request.limits.HasField(name) and getattr(request.limits, name) > \
                    getattr(caps, name):
                raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"limits.{name}: {getattr(request.limits, name)} "
                                   f"exceeds the server's cap {getattr(caps, name)}")
        try:
            run_request = convert.run_request_from_proto(request)
        except SampleError as exc:
            raise invalid(exc) from None
        async with self._sandbox_slots:
            self._admit(1)
            try:
                outcome: ExecuteOutcome = await self.pool.submit_async(ExecuteJob(run_request))  # type: ignore[assignment]
            finally:
                await self._release(1)
        if outcome.fault is not None:
            self.metrics.errors.labels(outcome.fault).inc()
        if outcome.refused is not None:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, outcome.refused)
        return convert.run_result_to_proto(outcome.result)  # type: ignore[arg-type]

    async def grade(self, request: sandbox_pb2.GradeRequest) -> sandbox_pb2.GradeResponse:
        try:
            sample = convert.grade_sample_from_proto(request)
        except SampleError as exc:
            raise invalid(exc) from None
        self._check_open()
        assert self.catalogue is not None
        if "code" not in self.catalogue.verifiers:
            why = self.catalogue.unavailable.get("code", "not served here")
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, f"verifier 'code' is unavailable: {why}")
        self._admit(1)
        try:
            scored, _ = await self._score_job(self._job(sample, _named_route(("code",)), compose=True))
        finally:
            await self._release(1)
        if scored.is_input_error:
            raise invalid(SampleError(convert.grade_field_to_wire(scored.error_field or ""), scored.detail))
        return convert.grade_response(scored)
