"""What runs inside a scoring worker process: build the verifiers once, then score jobs.

A worker is a rewards.pool worker (`setup` once, `handle` per job). It never routes
and never decides policy: each Job names its verifiers in order, and says whether to
compose a reward from them. Scoring yields once per verifier, so the pool holds each
verifier to the deadline it declares (the math comparison's) as well as the sample's.
"""

from __future__ import annotations

import dataclasses
import functools
import pkgutil
import time
from collections import OrderedDict
from collections.abc import Generator
from typing import Any

from rewards.compose import ScoredSample, compose, run_verifier, verdict_of
from rewards.math import MathVerifier
from rewards.registry import Registry
from rewards.types import SampleError, VerifierResult
from services.cache import entry_key
from services.jobs import Catalogue, ComponentRun, ExecuteJob, ExecuteOutcome, Job, JobOutcome, VerifierMeta, WorkerSpec

_LOCAL_CACHE_ENTRIES = 4096


def build_registry(spec: WorkerSpec) -> Registry:
    registry = Registry()
    # This process is killable itself: the math verifier compares inline, under the deadline it
    # declares, instead of in a pool of its own (one process hop per sample, not two).
    registry.configure("math", functools.partial(MathVerifier, dataclasses.replace(spec.math, workers=0)))
    for name, target in spec.plugins.items():
        registry.add(name, lambda target=target: pkgutil.resolve_name(target)())
    if spec.external:
        from services.external import RemoteVerifier  # grpc only where a remote verifier needs it

        for name, address in spec.external.items():
            registry.add(name, lambda name=name, address=address: RemoteVerifier(name, address))
    return registry


def warm(registry: Registry, spec: WorkerSpec) -> Catalogue:
    """Build every served verifier now, and call its optional warm() (imports, its own pools),
    so that the first sample does not pay for them."""
    verifiers, unavailable = {}, {}
    for name in spec.verifiers or registry.names():
        try:
            v = registry.get(name)
            if callable(getattr(v, "warm", None)):
                v.warm()
        except Exception as exc:  # reported per verifier: one missing plug-in must not sink the rest
            unavailable[name] = f"{type(exc).__name__}: {exc}"
            continue
        verifiers[name] = VerifierMeta(name, v.version, v.reference, getattr(v, "address", ""),
                                       getattr(v, "deadline", None))
    return Catalogue(verifiers, unavailable)


class LocalEntries:
    """This worker's own recent results: a prompt's completions scored together in one batch
    cannot hit the server's cache (nothing is in it yet), but they can hit this one."""

    def __init__(self, capacity: int = _LOCAL_CACHE_ENTRIES) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str], VerifierResult] = OrderedDict()

    def get(self, digest: str, key: str) -> VerifierResult | None:
        result = self._entries.get((digest, key))
        if result is not None:
            self._entries.move_to_end((digest, key))
        return result

    def put(self, digest: str, key: str, result: VerifierResult) -> None:
        if result.verdict.is_fault:
            return
        self._entries[(digest, key)] = result
        self._entries.move_to_end((digest, key))
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


class _Worker:
    """This process's verifiers and local cache."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.registry = build_registry(spec)
        self.catalogue = warm(self.registry, spec)
        self.local = LocalEntries()

    def component(self, job: Job, name: str) -> tuple[VerifierResult, ComponentRun]:
        """One verifier's result, from a cache when it can; SampleError when it rejects the sample."""
        start = time.perf_counter()
        verifier = self.registry.get(name)
        digest = job.digests.get(name)
        key = entry_key(verifier, job.sample) if digest is not None else None
        if digest is not None and key is not None:
            cached = job.known.get(name, {}).get(key) or self.local.get(digest, key)
            if cached is not None:
                return cached, ComponentRun(name, time.perf_counter() - start, key, True)
        result = run_verifier(name, job.sample, self.registry)
        if digest is not None and key is not None:
            self.local.put(digest, key, result)
        return result, ComponentRun(name, time.perf_counter() - start, key, False)

    def score(self, job: Job) -> Generator[str, None, JobOutcome]:
        """Yields each verifier's name as it finishes (the end of its deadline), returns the outcome."""
        start = time.perf_counter()
        components: list[tuple[str, float, VerifierResult]] = []
        runs: list[ComponentRun] = []
        for wv in job.route:
            try:
                result, run = self.component(job, wv.verifier)
            except SampleError as exc:
                elapsed_ms = (time.perf_counter() - start) * 1000
                return JobOutcome(ScoredSample.input_error(job.sample.id, exc, elapsed_ms), tuple(runs))
            components.append((wv.verifier, wv.weight, result))
            runs.append(run)
            yield wv.verifier
        if job.compose:
            reward, verdict, detail = compose(components)
        else:  # the caller composes: no reward here, only the per-item verdict
            reward, (verdict, detail) = None, verdict_of(components)
        scored = ScoredSample(job.sample.id, reward, verdict, {n: r for n, _, r in components},
                              (time.perf_counter() - start) * 1000, detail)
        return JobOutcome(scored, tuple(runs))


_worker: _Worker | None = None  # this process's one instance, built by setup()


def setup(spec: WorkerSpec) -> Catalogue:
    global _worker
    _worker = _Worker(spec)
    return _worker.catalogue


def handle(job: Job | ExecuteJob) -> Any:
    assert _worker is not None, "setup() runs before the first job"
    if isinstance(job, ExecuteJob):
        return run_execute(job)
    return _worker.score(job)


def run_execute(job: ExecuteJob) -> ExecuteOutcome:
    import sandbox  # only workers that execute programs start a warm jail pool

    try:
        return ExecuteOutcome(sandbox.run(job.request))
    except ValueError as exc:
        return ExecuteOutcome(None, refused=str(exc))
