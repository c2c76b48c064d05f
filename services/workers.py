"""Warm worker processes that run reward code, one sample at a time, under a kill-enforced timeout.

Reward code never runs on a gRPC handler or the event loop: each sample is sent
over a pipe to a worker process that already imported and built its verifiers.
One supervising thread per worker sends a job and waits for the answer; if the
answer is late the thread kills the process, answers TIMEOUT and starts a
replacement; if the process dies (a segfault in a C extension, the OOM killer)
the sample gets an explicit ERROR and the worker is replaced. Either way the
sample comes back exactly once and the pool keeps its size.

Each worker declares itself a bounded worker (rewards._workers.declare_bounded_worker),
so verifiers run their risky steps inline rather than in pools of their own (the math
comparison: one process hop per sample instead of two). Such a step first tells the
supervising thread its own deadline (a `Bound` message on the pipe); the thread then
kills the worker when that deadline passes, well before `sample_timeout_s`.

Workers are fresh interpreters (`python -c`), not forks: forking a process that
runs gRPC's threads is unsafe, and multiprocessing's spawn would re-import the
host's __main__ (a Ray worker, a user's script).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import math
import os
import pkgutil
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from rewards._workers import declare_bounded_worker
from rewards.compose import ScoredSample, score_sample
from rewards.math import MathConfig, MathVerifier
from rewards.registry import Registry
from rewards.routing import RoutingConfig
from rewards.types import Sample, Verdict, VerifierResult
from sandbox.api import RunRequest, RunResult, Status
from services.cache import entry_key

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 300.0  # cold imports of sympy/math-verify on a loaded 2-core machine
_RESTART_BACKOFF_S = 1.0
_LOCAL_CACHE_ENTRIES = 4096
_MAX_CHUNK = 16  # jobs per pipe round trip


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs to build its verifiers: plain, picklable data."""

    routing: RoutingConfig
    verifiers: tuple[str, ...] = ()  # the served set; empty = every registered verifier
    plugins: dict[str, str] = field(default_factory=dict)
    external: dict[str, str] = field(default_factory=dict)
    math: MathConfig = field(default_factory=MathConfig)


@dataclass(frozen=True)
class VerifierMeta:
    name: str
    version: str
    reference: str
    address: str = ""  # set for a remote (external) verifier


@dataclass(frozen=True)
class Catalogue:
    """What a warm worker could build: served verifiers, and the ones that failed to load, with why."""

    verifiers: dict[str, VerifierMeta]
    unavailable: dict[str, str]


@dataclass(frozen=True)
class Job:
    sample: Sample
    only: tuple[str, ...] | None
    """The verifiers the request named, or None: route by the sample's task."""
    # verifier -> reference digest, for the verifiers whose results are cached
    digests: dict[str, str] = field(default_factory=dict)
    # verifier -> entry key -> result: the server's cache entries already known for that digest
    known: dict[str, dict[str, VerifierResult]] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecuteJob:
    """Run one program in the sandbox: forking jails from the threaded gRPC process is unsafe, a worker's is not."""

    request: RunRequest


@dataclass(frozen=True)
class ExecuteOutcome:
    result: RunResult | None
    refused: str | None = None  # the sandbox refused the request (e.g. an unknown language)
    fault: str | None = None


@dataclass(frozen=True)
class ComponentRun:
    verifier: str
    elapsed_s: float
    cache_key: str | None
    hit: bool


@dataclass(frozen=True)
class JobOutcome:
    scored: ScoredSample
    runs: tuple[ComponentRun, ...] = ()
    fault: str | None = None  # "timeout" or "worker_died" when the pool, not a verifier, decided


@dataclass(frozen=True)
class Bound:
    """Sent by a worker when an inline step starts (`timeout_s`) or ends (None) during a job."""

    what: str
    timeout_s: float | None


# --- inside the worker process --------------------------------------------------------------


def build_registry(spec: WorkerSpec) -> Registry:
    registry = Registry()
    registry.configure("math", lambda: MathVerifier(spec.math))
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
        verifiers[name] = VerifierMeta(name, v.version, v.reference, getattr(v, "address", ""))
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


class _Recorded:
    """Wraps one verifier for one job: answers from cached results when it can, and times each call."""

    def __init__(self, name: str, inner: Any, job: Job, runs: list[ComponentRun], local: LocalEntries) -> None:
        self.name, self.version, self.reference = name, inner.version, inner.reference
        self._inner, self._job, self._runs, self._local = inner, job, runs, local

    def score(self, sample: Sample) -> VerifierResult:
        start = time.perf_counter()
        digest = self._job.digests.get(self.name)
        key = entry_key(self._inner, sample) if digest is not None else None
        if digest is not None and key is not None:
            cached = self._job.known.get(self.name, {}).get(key) or self._local.get(digest, key)
            if cached is not None:
                self._runs.append(ComponentRun(self.name, time.perf_counter() - start, key, True))
                return cached
        result = None
        try:
            result = self._inner.score(sample)
            return result
        finally:
            self._runs.append(ComponentRun(self.name, time.perf_counter() - start, key, False))
            if result is not None and digest is not None and key is not None:
                self._local.put(digest, key, result)


class _JobRegistry:
    """The registry score_sample sees for one job."""

    def __init__(self, registry: Registry, job: Job, runs: list[ComponentRun], local: LocalEntries) -> None:
        self._registry, self._job, self._runs, self._local = registry, job, runs, local

    def get(self, name: str) -> _Recorded:
        return _Recorded(name, self._registry.get(name), self._job, self._runs, self._local)


def run_job(job: Job, registry: Registry, routing: RoutingConfig, local: LocalEntries) -> JobOutcome:
    runs: list[ComponentRun] = []
    job_registry = _JobRegistry(registry, job, runs, local)
    scored = score_sample(job.sample, routing, job_registry, only=job.only)  # type: ignore[arg-type]
    return JobOutcome(scored, tuple(runs))


def run_execute(job: ExecuteJob) -> ExecuteOutcome:
    import sandbox  # only workers that execute programs start a warm jail pool

    try:
        return ExecuteOutcome(sandbox.run(job.request))
    except ValueError as exc:
        return ExecuteOutcome(None, refused=str(exc))


def _answer(job: Job | ExecuteJob, registry: Registry, routing: RoutingConfig, local: LocalEntries
            ) -> JobOutcome | ExecuteOutcome:
    start = time.perf_counter()
    try:
        if isinstance(job, ExecuteJob):
            return run_execute(job)
        return run_job(job, registry, routing, local)
    except Exception as exc:  # a fault outside any verifier (e.g. a factory that raised): explicit, not a 0
        return _faulted(job, "error", f"{type(exc).__name__}: {exc}", start)


class _DeadlineReporter:
    """Passes inline steps' deadlines to the supervising thread, only while a job runs: during
    warm-up the pipe's next message must be the catalogue, and the start-up deadline covers it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.serving = False

    def __call__(self, what: str, timeout_s: float | None) -> None:
        if self.serving:
            self.conn.send(Bound(what, timeout_s))


def worker_main() -> None:
    """Entry point of a worker process: `python -c ... FD`, FD one end of a socket pair."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when workers stop
    conn = Connection(int(sys.argv[1]))
    spec: WorkerSpec = conn.recv()
    reporter = _DeadlineReporter(conn)
    declare_bounded_worker(reporter)  # before the verifiers are built: they warm up inline, not in pools
    registry = build_registry(spec)
    conn.send(warm(registry, spec))
    reporter.serving = True
    local = LocalEntries()
    while True:
        try:
            jobs = conn.recv()
        except EOFError:
            return
        for job in jobs:  # one answer per job, as soon as it is ready
            conn.send(_answer(job, registry, spec.routing, local))


def _faulted(job: Job | ExecuteJob, kind: str, detail: str, start: float) -> JobOutcome | ExecuteOutcome:
    """The outcome of a job whose worker could not answer: `kind` is timeout, worker_died or error."""
    elapsed_s = time.perf_counter() - start
    if isinstance(job, ExecuteJob):
        result = RunResult(Status.SANDBOX_ERROR, None, None, "", "", elapsed_s, 0.0, None, detail)
        return ExecuteOutcome(result, fault=kind if kind != "error" else None)
    verdict = Verdict.TIMEOUT if kind == "timeout" else Verdict.ERROR
    scored = ScoredSample(job.sample.id, None, verdict, {}, elapsed_s * 1000, detail)
    return JobOutcome(scored, fault=kind if kind != "error" else None)


# --- in the server process ------------------------------------------------------------------


class WorkerStartError(RuntimeError):
    pass


class _Worker:
    """One worker: a fresh interpreter (not a fork of this threaded gRPC process) on a socket pair."""

    def __init__(self, spec: WorkerSpec) -> None:
        ours, theirs = socket.socketpair()
        # The parent's sys.path, so plug-ins importable here are importable there.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import services.workers as w; w.worker_main()", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send(spec)
        # Connection.poll builds a selector on every call, and a math sample is waited for up
        # to three times (its answer and an inline step's start and end): one poller, reused.
        self._poller = select.poll()
        self._poller.register(self.conn.fileno(), select.POLLIN)

    def readable(self, timeout_s: float) -> bool:
        """Whether a message (or the end of the pipe) arrives within `timeout_s`."""
        return bool(self._poller.poll(math.ceil(max(0.0, timeout_s) * 1000)))

    @property
    def exit_code(self) -> int | None:
        return self.process.poll()

    def wait_ready(self) -> Catalogue:
        if not self.conn.poll(_START_TIMEOUT_S):
            self.kill()
            raise WorkerStartError(f"worker did not warm up within {_START_TIMEOUT_S:.0f} s")
        try:
            return self.conn.recv()
        except EOFError:
            self.process.wait(5)
            raise WorkerStartError(f"worker exited during warm-up (exit code {self.exit_code})") from None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self.conn.close()


_STOP = object()


class _LoopBridge:
    """Hands finished jobs to one event loop, many per wake-up: one call_soon_threadsafe per job
    (asyncio.wrap_future) cost more than the scoring of a cheap sample."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._done: collections.deque[tuple[asyncio.Future[Any], concurrent.futures.Future[Any]]] = \
            collections.deque()
        self._scheduled = False
        self._lock = threading.Lock()

    def watch(self, fut: concurrent.futures.Future[Any]) -> asyncio.Future[Any]:
        waiter = self.loop.create_future()
        waiter.add_done_callback(lambda w: fut.cancel() if w.cancelled() else None)
        fut.add_done_callback(lambda f: self._finished(waiter, f))
        return waiter

    def _finished(self, waiter: asyncio.Future[Any], fut: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._done.append((waiter, fut))
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            done, self._done = self._done, collections.deque()
            self._scheduled = False
        for waiter, fut in done:
            if waiter.done():
                continue
            if fut.cancelled():
                waiter.cancel()
            elif fut.exception() is not None:
                waiter.set_exception(fut.exception())  # type: ignore[arg-type]
            else:
                waiter.set_result(fut.result())


class WorkerPool:
    """`size` warm worker processes fed from one queue; submit() is safe from any thread."""

    def __init__(self, spec: WorkerSpec, size: int, timeout_s: float, on_restart: Any = None) -> None:
        self.spec, self.size, self.timeout_s = spec, size, timeout_s
        self._on_restart = on_restart or (lambda reason: None)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._workers: list[_Worker | None] = []
        self._waiting = 0
        self._lock = threading.Lock()
        self._closing = False
        self._bridge: _LoopBridge | None = None

    def start(self) -> Catalogue:
        """Start and warm every worker (blocking: call it off the event loop)."""
        workers = [_Worker(self.spec) for _ in range(self.size)]
        try:
            catalogues = [w.wait_ready() for w in workers]
        except WorkerStartError:
            for w in workers:
                w.kill()
            raise
        self._workers = list(workers)
        for slot in range(self.size):
            t = threading.Thread(target=self._serve, args=(slot,), daemon=True, name=f"arbiter-worker-{slot}")
            t.start()
            self._threads.append(t)
        return catalogues[0]

    @property
    def queue_depth(self) -> int:
        return self._waiting

    def submit(self, job: Job | ExecuteJob) -> concurrent.futures.Future[Any]:
        """A future of the JobOutcome (for a Job) or ExecuteOutcome (for an ExecuteJob)."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._waiting += 1
        self._queue.put((job, fut, False))  # False: not started yet
        return fut

    def submit_async(self, job: Job | ExecuteJob) -> asyncio.Future[Any]:
        """submit() for a coroutine on the running loop; cancelling the result skips an unstarted job."""
        loop = asyncio.get_running_loop()
        if self._bridge is None or self._bridge.loop is not loop:
            self._bridge = _LoopBridge(loop)
        return self._bridge.watch(self.submit(job))

    def close(self) -> None:
        """Stop now: queued and running jobs are answered with an ERROR, the processes are killed."""
        self._closing = True
        for _ in self._threads:
            self._queue.put(_STOP)
        for w in self._workers:
            if w is not None:
                w.kill()
        for t in self._threads:
            t.join(30)

    def _serve(self, slot: int) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            chunk = [item]
            # Take this slot's share of what is waiting, so one pipe round trip carries several
            # cheap samples; the worker still answers each one as soon as it is done.
            share = min(_MAX_CHUNK, max(1, self._waiting // self.size))
            while len(chunk) < share:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)  # another slot's; this one gets its own later
                    break
                chunk.append(item)
            with self._lock:
                self._waiting -= len(chunk)
            # A caller that gave up (deadline, cancelled stream) before its job started is skipped.
            live = [(job, fut) for job, fut, started in chunk if started or fut.set_running_or_notify_cancel()]
            if live:
                self._run(slot, live)

    def _run(self, slot: int, items: list[tuple[Any, concurrent.futures.Future[Any]]]) -> None:
        """Send a chunk to this slot's worker and settle each future; a sample that overruns or kills
        the worker is answered with a fault, and the ones after it go back to the queue unstarted."""
        start = time.perf_counter()
        worker = None if self._closing else self._ensure(slot)
        if worker is None:
            for job, fut in items:
                fut.set_result(_faulted(job, "error", "not scored: the server is shutting down", start))
            return
        failure = self._exchange(worker, items)
        if failure is None:
            return
        failed, kind, start, detail = failure
        if self._closing:  # nothing goes back to a queue that no thread will read again
            for job, fut in items[failed:]:
                fut.set_result(_faulted(job, "error", "not scored: the server shut down while scoring", start))
            return
        job, fut = items[failed]
        if kind == "timeout":
            self._replace(slot, "timeout")
            fut.set_result(_faulted(job, "timeout", f"{detail}; the worker was killed and replaced", start))
        else:
            worker.process.wait(5)
            code = worker.exit_code
            self._replace(slot, f"worker_died (exit code {code})")
            detail = f"worker process died while scoring (exit code {code}); it was replaced"
            fut.set_result(_faulted(job, "worker_died", detail, start))
        for job, fut in items[failed + 1:]:
            with self._lock:
                self._waiting += 1
            self._queue.put((job, fut, True))

    def _exchange(self, worker: _Worker, items: list[tuple[Any, concurrent.futures.Future[Any]]]
                  ) -> tuple[int, str, float, str] | None:
        """Settle futures in order as answers arrive; on a failure, (its index, kind, when it started, why)."""
        start = time.perf_counter()
        try:
            worker.conn.send([job for job, _ in items])
        except OSError:
            return 0, "worker_died", start, ""
        for index, (_job, fut) in enumerate(items):
            start = time.perf_counter()
            deadline = start + self.timeout_s
            why = f"scoring took longer than {self.timeout_s:g} s"
            step_deadline, step_why = None, ""
            try:
                while True:
                    limit, reason = (deadline, why)
                    if step_deadline is not None and step_deadline < deadline:
                        limit, reason = step_deadline, step_why
                    if not worker.readable(limit - time.perf_counter()):
                        return index, "timeout", start, reason
                    message = worker.conn.recv()
                    if not isinstance(message, Bound):
                        fut.set_result(message)
                        break
                    if message.timeout_s is None:
                        step_deadline = None
                    else:  # counted from now, not from when it was sent: never shorter than promised
                        step_deadline = time.perf_counter() + message.timeout_s
                        step_why = f"{message.what} took longer than {message.timeout_s:g} s"
            except (EOFError, OSError):
                return index, "worker_died", start, ""
        return None

    def _replace(self, slot: int, reason: str) -> None:
        old = self._workers[slot]
        if old is not None:
            old.kill()
        self._workers[slot] = None
        if self._closing:
            return
        self._on_restart(reason)
        log.warning("worker %d replaced: %s", slot, reason)
        self._ensure(slot)  # warm again before the next sample, not during it

    def _ensure(self, slot: int) -> _Worker | None:
        while self._workers[slot] is None and not self._closing:
            worker = _Worker(self.spec)
            try:
                worker.wait_ready()
            except WorkerStartError as exc:
                log.error("replacement worker %d failed to start: %s", slot, exc)
                time.sleep(_RESTART_BACKOFF_S)
                continue
            if self._closing:  # close() ran while this one warmed up: it would outlive the pool
                worker.kill()
                return None
            self._workers[slot] = worker
        return self._workers[slot]

