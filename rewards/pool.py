"""The one killable process pool: warm workers, a deadline per job carried with the job, kill and replace.

Why processes: the only way to stop a runaway computation (sympy expanding 9^9^9^9) or
survive a crash in a C extension is to kill the process doing it. Why not `signal.alarm`:
it only works on the main thread, and callers are gRPC handlers, Ray actors, user threads.

How: `workers` persistent interpreters, each supervised by one long-lived thread of the
pool. A job is a request plus its `Deadline` (data, decided by the caller); a supervisor
sends its worker a chunk of waiting jobs in one pipe round trip, and settles each job's
future as soon as its answer arrives. A handler may run in steps (a generator: each
yield ends one), and step i is held to `deadline.steps[i]` as well as to the whole job's
`timeout_s`, so one risky step (a math comparison) is killed at its own bound while the
job keeps a looser one; the worker reports only the step ends that start or stop a
bounded step (one message for a math sample, none for a rule check). On a late or
missing answer the worker is SIGKILLed and replaced; the job fails with WorkerTimeout or
WorkerCrashed, and the jobs after it in the chunk go back to the queue unstarted. A worker found
dead while idle is replaced without failing anyone.

Workers are fresh interpreters (`python -c`, like multiprocessing's 'spawn'; forking a
process that runs gRPC's or Ray's threads is unsafe), started with subprocess because
spawn and forkserver re-run the caller's `__main__` in every worker. Every worker is
started from one long-lived thread, and sets PR_SET_PDEATHSIG: a worker stuck on a job
dies with its parent (SIGKILL of a server, OOM kill) instead of outliving it. A worker
costs one interpreter start plus its setup (about 0.7 s here for the math verifier;
imports of the full verifier set take longer on a loaded 2-core machine, hence one
generous start timeout).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import functools
import inspect
import json
import math
import os
import pickle
import pkgutil
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from rewards.types import describe_exception

_MAX_CHUNK = 16  # jobs per pipe round trip
_RESTART_BACKOFF_S = 1.0


@dataclass(frozen=True)
class WorkerPoolConfig:
    """How many workers, how they start, and what bounds them."""

    handler: str
    """'module:function' run in the worker for each request; takes and returns picklable values.
    A generator runs in steps, each yield ending one (see Deadline.steps); its return is the answer."""
    workers: int = 2
    """Worker processes; at most this many jobs run at once (the rest wait in the queue)."""
    setup: str | None = None
    """'module:function' called once in each new worker as `setup(setup_arg)` before it serves, so
    the first job is warm; what it returns is what `start()` returns (plain, picklable)."""
    setup_arg: Any = None
    memory_limit_mib: int | None = None
    """Address-space limit per worker (RLIMIT_AS), so a runaway allocation fails inside the worker."""
    startup_timeout_s: float = 300.0
    """How long a new worker may take to import and set up before it counts as crashed (cold imports
    of sympy and every verifier on a loaded 2-core machine)."""

    def __post_init__(self) -> None:
        for name in ("handler", "setup"):
            value = getattr(self, name)
            if value is not None and ":" not in value:
                raise ValueError(f"{name} must be 'module:function', got {value!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        if self.memory_limit_mib is not None and self.memory_limit_mib < 64:
            raise ValueError(f"memory_limit_mib must be at least 64, got {self.memory_limit_mib!r}")
        if not self.startup_timeout_s > 0:
            raise ValueError(f"startup_timeout_s must be positive, got {self.startup_timeout_s!r}")


@dataclass(frozen=True)
class Step:
    """A bound on one part of a job: `what` names it in the timeout's message."""

    what: str
    timeout_s: float


@dataclass(frozen=True)
class Deadline:
    """How long one job may run once its worker starts it: `timeout_s` in all, and part i of its
    answer within steps[i] (None: only the whole job's bound) of the part before it."""

    timeout_s: float
    what: str = "the call"
    steps: tuple[Step | None, ...] = ()

    @functools.cached_property
    def bounded(self) -> tuple[bool, ...]:
        return tuple(step is not None for step in self.steps)


class WorkerFault(RuntimeError):
    """The pool could not produce a result for this job."""


class WorkerTimeout(WorkerFault):
    """The job ran past its deadline; its worker was killed and replaced."""


class WorkerCrashed(WorkerFault):
    """The worker died (or could not start) during the job; it was replaced."""


class WorkerRaised(WorkerFault):
    """The handler raised inside the worker; the worker is still healthy."""


class PoolClosed(WorkerFault):
    """The pool was shut down."""


# --- inside a worker -----------------------------------------------------------------------------

_PATH_ENV = "ARBITER_WORKER_SYS_PATH"
_BOOT = f"import json, os, sys; sys.path[:0] = json.loads(os.environ.pop({_PATH_ENV!r})); "
_BOOT += f"from {__name__} import _serve; _serve()"


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(0)


def _serve() -> None:
    """Entry point of a worker interpreter: argv is [fd, parent pid, base64 pickled WorkerPoolConfig].

    Each job arrives as (request, bounded): bounded[i] says whether step i has a bound of its own.
    Messages to the parent: ("ready", setup's value) once, then per job ("part", i) when a generator
    handler's step i ends and that end starts or stops a bounded step (the other ends change no
    deadline, so they cost no message), and one of ("done", answer) or ("raised", text); a
    generator's answer is its return value."""
    fd, parent_pid, payload = sys.argv[1:4]
    _die_with_parent(int(parent_pid))
    config: WorkerPoolConfig = pickle.loads(base64.b64decode(payload))
    conn = Connection(int(fd))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the caller, which kills us
    if config.memory_limit_mib is not None:
        import resource

        limit = config.memory_limit_mib * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    handler = pkgutil.resolve_name(config.handler)
    info = pkgutil.resolve_name(config.setup)(config.setup_arg) if config.setup else None
    conn.send(("ready", info))
    while True:
        try:
            requests = conn.recv()
        except (EOFError, OSError):
            return
        for request, bounded in requests:  # each answered as soon as it is done
            try:
                answer = handler(request)
                if inspect.isgenerator(answer):
                    answer = _run_steps(answer, bounded, conn)
                reply: tuple[str, Any] = ("done", answer)
            except BaseException as exc:  # reported to the caller as a fault, never as a result
                reply = ("raised", describe_exception(exc))
            try:
                conn.send(reply)
            except (BrokenPipeError, OSError):
                return


def _run_steps(steps: Any, bounded: tuple[bool, ...], conn: Connection) -> Any:
    """Run a generator handler step by step, telling the parent where bounded steps start and end."""
    step = 0
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
        if any(bounded[step:step + 2]):
            conn.send(("part", step))
        step += 1


# --- in the caller's process ---------------------------------------------------------------------

# PR_SET_PDEATHSIG fires when the *thread* that started a child exits: start every worker from one
# thread that lives as long as the process.
_spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="arbiter-worker-spawner")


def _start_process(config: WorkerPoolConfig, child_fd: int) -> subprocess.Popen[bytes]:
    payload = base64.b64encode(pickle.dumps(config)).decode("ascii")
    env = dict(os.environ)
    env[_PATH_ENV] = json.dumps(sys.path)  # what is importable here is importable there (plug-ins)
    return subprocess.Popen(
        [sys.executable, "-c", _BOOT, str(child_fd), str(os.getpid()), payload],
        pass_fds=(child_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env,
    )


class _Worker:
    """One process and the parent's end of its pipe; used by its slot's supervisor only."""

    def __init__(self, config: WorkerPoolConfig) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = _spawner.submit(_start_process, config, theirs.fileno()).result()
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        # Connection.poll builds a selector on every call; a job may be waited for several times.
        self._poller = select.poll()
        self._poller.register(self.conn.fileno(), select.POLLIN)
        self.ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def readable(self, timeout_s: float) -> bool:
        """Whether a message (or the end of the pipe) arrives within `timeout_s`."""
        return bool(self._poller.poll(math.ceil(max(0.0, timeout_s) * 1000)))

    def wait_ready(self, timeout_s: float) -> Any:
        started = time.monotonic()
        try:
            if not self.readable(timeout_s):
                raise WorkerCrashed(f"worker {self.pid} did not start within {timeout_s:g}s")
            _, info = self.conn.recv()
        except (EOFError, OSError):
            raise WorkerCrashed(f"worker {self.pid} failed to start (exit code {self.exit_code()}, "
                                f"after {time.monotonic() - started:.1f}s)") from None
        self.ready = True
        return info

    def exit_code(self) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.process.wait(timeout=5)
        return None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        with contextlib.suppress(OSError):
            self.conn.close()


@dataclass(slots=True)
class _Job:
    request: Any
    deadline: Deadline
    future: concurrent.futures.Future[Any]
    started: bool = False  # sent once already: its future is running and must not be re-checked


_STOP = object()


class WorkerPool:
    """`workers` warm processes fed from one queue; submit() and call() are safe from any thread."""

    def __init__(self, config: WorkerPoolConfig, on_replace: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._on_replace = on_replace or (lambda reason: None)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._workers: list[_Worker | None] = [None] * config.workers
        self._threads: list[threading.Thread] = []
        self._waiting = 0
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._info: Any = None
        # Notified whenever a slot's worker becomes warm or fails to start (its last failure, or None).
        self._warmth = threading.Condition()
        self._start_failures: list[WorkerCrashed | None] = [None] * config.workers
        self._bridge: _LoopBridge | None = None

    # --- public -----------------------------------------------------------------------------------

    def start(self, wait: bool = True) -> Any:
        """Start every worker now (otherwise the first job does); with `wait`, until each is warm.
        Returns what the setup function returned in the first worker."""
        with self._lock:
            if self._closed:
                raise PoolClosed("worker pool is closed")
            if not self._started:
                self._started = True
                for slot in range(self.config.workers):
                    thread = threading.Thread(target=self._supervise, args=(slot,), daemon=True,
                                              name=f"arbiter-worker-{slot}")
                    thread.start()
                    self._threads.append(thread)
        if wait:
            with self._warmth:
                self._warmth.wait_for(lambda: self._closed or all(
                    (w is not None and w.ready) or failure is not None
                    for w, failure in zip(self._workers, self._start_failures, strict=True)))
            failure = next((f for f in self._start_failures if f is not None), None)
            if failure is not None:
                raise failure
            if self._closed:
                raise PoolClosed("worker pool is closed")
        return self._info

    def submit(self, request: Any, deadline: Deadline) -> concurrent.futures.Future[Any]:
        """A future of the handler's answer (a generator's return value); it fails with a WorkerFault.
        Cancelling it before its job started skips the job."""
        if not self._started:
            self.start(wait=False)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if self._closed:
            future.set_exception(PoolClosed("worker pool is closed"))
            return future
        with self._lock:
            self._waiting += 1
        self._queue.put(_Job(request, deadline, future))
        return future

    def submit_async(self, request: Any, deadline: Deadline) -> asyncio.Future[Any]:
        """submit() for a coroutine on the running loop."""
        loop = asyncio.get_running_loop()
        if self._bridge is None or self._bridge.loop is not loop:
            self._bridge = _LoopBridge(loop)
        return self._bridge.watch(self.submit(request, deadline))

    def call(self, request: Any, timeout_s: float) -> Any:
        """Run the handler on `request` in a worker, killing it if it runs past `timeout_s`."""
        return self.submit(request, Deadline(timeout_s)).result()

    @property
    def queue_depth(self) -> int:
        return self._waiting

    def pids(self) -> list[int]:
        return sorted(w.pid for w in list(self._workers) if w is not None)

    def close(self) -> None:
        """Kill every worker. Jobs queued or running fail with PoolClosed."""
        with self._lock:
            self._closed = True
        with self._warmth:
            self._warmth.notify_all()
        for _ in self._threads:
            self._queue.put(_STOP)
        for worker in list(self._workers):
            if worker is not None:
                worker.kill()
        for thread in self._threads:
            thread.join(30)
        while True:  # whatever no supervisor took is answered too
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and item.future.set_running_or_notify_cancel():
                item.future.set_exception(PoolClosed("not run: the pool was closed"))

    # --- supervisors ------------------------------------------------------------------------------

    def _supervise(self, slot: int) -> None:
        with contextlib.suppress(WorkerCrashed):  # recorded for start(wait=True); the next job retries
            self._ensure(slot)
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            chunk = [item]
            # This slot's share of what is waiting: one round trip carries several cheap jobs.
            share = min(_MAX_CHUNK, max(1, self._waiting // self.config.workers))
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
            live = [job for job in chunk if job.started or job.future.set_running_or_notify_cancel()]
            if live:
                self._run(slot, live)

    def _ensure(self, slot: int) -> _Worker | None:
        """This slot's warm worker, started if need be; None once the pool is closed. WorkerCrashed
        if a new one fails to start."""
        worker = self._workers[slot]
        if worker is not None and worker.process.poll() is not None:
            # Died while idle (killed from outside, OOM): no job was lost, replace it quietly.
            worker.kill()
            worker = None
        if worker is None:
            worker = self._workers[slot] = _Worker(self.config)
        if not worker.ready:
            try:
                info = worker.wait_ready(self.config.startup_timeout_s)
            except WorkerCrashed as exc:
                worker.kill()
                self._workers[slot] = None
                self._warmed(slot, exc)
                raise
            if self._info is None:
                self._info = info
            self._warmed(slot, None)
        if self._closed:  # close() ran while it warmed up: it would outlive the pool
            worker.kill()
            return None
        return worker

    def _warmed(self, slot: int, failure: WorkerCrashed | None) -> None:
        with self._warmth:
            self._start_failures[slot] = failure
            self._warmth.notify_all()

    def _run(self, slot: int, jobs: list[_Job]) -> None:
        """Send a chunk to this slot's worker and settle each job; the one that overruns or kills the
        worker fails, and the ones after it go back to the queue unstarted."""
        try:
            worker = self._ensure(slot) if not self._closed else None
        except WorkerCrashed as exc:
            for job in jobs:
                job.future.set_exception(exc)
            time.sleep(_RESTART_BACKOFF_S)  # a start that keeps failing must not spin
            return
        if worker is None:
            for job in jobs:
                job.future.set_exception(PoolClosed("not run: the pool was closed"))
            return
        try:
            worker.conn.send([(job.request, job.deadline.bounded) for job in jobs])
        except OSError:
            failed, fault = 0, self._crash(worker)
        else:
            failed, fault = self._settle(worker, jobs)
        if fault is None:
            return
        if self._closed:
            fault = PoolClosed(f"not finished: the pool was closed ({fault})")
        reason = "timeout" if isinstance(fault, WorkerTimeout) else f"worker_died (exit code {worker.exit_code()})"
        self._replace(slot)  # the replacement starts before the caller hears of the fault
        jobs[failed].future.set_exception(fault)
        if not self._closed:
            self._on_replace(reason)
        for job in jobs[failed + 1:]:
            if self._closed:
                job.future.set_exception(PoolClosed("not run: the pool was closed"))
                continue
            job.started = True
            with self._lock:
                self._waiting += 1
            self._queue.put(job)
        with contextlib.suppress(WorkerCrashed):  # warm before this slot's next job, not during it
            self._ensure(slot)

    def _settle(self, worker: _Worker, jobs: list[_Job]) -> tuple[int, WorkerFault | None]:
        """Settle futures in order as answers arrive; on a fault, (the failing job's index, the fault)."""
        for index, job in enumerate(jobs):
            deadline = job.deadline
            step_start = time.perf_counter()
            end, current = step_start + deadline.timeout_s, 0
            while True:
                step = deadline.steps[current] if current < len(deadline.steps) else None
                limit, what, timeout_s = end, deadline.what, deadline.timeout_s
                if step is not None and step_start + step.timeout_s < end:
                    limit, what, timeout_s = step_start + step.timeout_s, step.what, step.timeout_s
                if not worker.readable(limit - time.perf_counter()):
                    return index, WorkerTimeout(f"{what} took longer than {timeout_s:g} s; worker {worker.pid} "
                                                "killed and replaced")
                try:
                    kind, value = worker.conn.recv()
                except (EOFError, OSError):
                    return index, self._crash(worker)
                if kind == "part":  # step `value` ended: the next one starts now
                    current, step_start = value + 1, time.perf_counter()
                    continue
                if kind == "raised":
                    job.future.set_exception(WorkerRaised(value))
                else:
                    job.future.set_result(value)
                break
        return len(jobs), None

    @staticmethod
    def _crash(worker: _Worker) -> WorkerCrashed:
        return WorkerCrashed(f"worker {worker.pid} died during the call (exit code {worker.exit_code()}); "
                             "replaced")

    def _replace(self, slot: int) -> None:
        """Kill this slot's worker and start its successor; it warms up before the slot's next job."""
        worker = self._workers[slot]
        if worker is not None:
            worker.kill()
        self._workers[slot] = None if self._closed else _Worker(self.config)


class _LoopBridge:
    """Hands finished jobs to one event loop, many per wake-up: one call_soon_threadsafe per job
    (asyncio.wrap_future) cost more than the scoring of a cheap sample."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._done: collections.deque[tuple[asyncio.Future[Any], concurrent.futures.Future[Any]]] = \
            collections.deque()
        self._scheduled = False
        self._lock = threading.Lock()

    def watch(self, future: concurrent.futures.Future[Any]) -> asyncio.Future[Any]:
        waiter = self.loop.create_future()
        waiter.add_done_callback(lambda w: future.cancel() if w.cancelled() else None)
        future.add_done_callback(lambda f: self._finished(waiter, f))
        return waiter

    def _finished(self, waiter: asyncio.Future[Any], future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._done.append((waiter, future))
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            done, self._done = self._done, collections.deque()
            self._scheduled = False
        for waiter, future in done:
            if waiter.done():
                continue
            if future.cancelled():
                waiter.cancel()
            elif future.exception() is not None:
                waiter.set_exception(future.exception())  # type: ignore[arg-type]
            else:
                waiter.set_result(future.result())
