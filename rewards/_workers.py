"""A bounded pool of persistent worker processes with a hard deadline per call.

Why processes and not threads: the only way to stop a runaway computation
(sympy expanding 9^9^9^9, say) is to kill the process doing it. Why not
`signal.alarm`: it only works on the main thread, and callers here are gRPC
handler threads and Ray actors. So each call is sent over a Pipe to one idle,
already-warm worker; the caller waits up to the deadline, and on expiry the
worker is SIGKILLed and replaced. A worker that dies mid-call is reported as a
crash and replaced the same way. Nothing else is shared between calls.

Workers are fresh interpreters (fork + immediate exec, like multiprocessing's
'spawn'): forking a process that already runs threads (gRPC, Ray) is unsafe.
They are started with subprocess rather than multiprocessing's spawn or
forkserver contexts because those re-run the caller's `__main__` module in
every worker, which breaks any script without a main guard and re-enters
Ray's worker entry point. The pipe is multiprocessing's Connection over a
socketpair. A replacement worker costs one interpreter start plus imports
(about 0.7 s here); it is started at once and warms up while the caller that
lost the old one returns.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pickle
import pkgutil
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from rewards.types import describe_exception

_PING = "__arbiter_worker_ping__"


@dataclass(frozen=True)
class PoolConfig:
    """How many workers, how they start, and what bounds them."""

    handler: str
    """'module:function' run in the worker for each request; takes and returns picklable values."""
    workers: int = 2
    """Worker processes; at most this many calls run at once (more callers wait for an idle worker)."""
    warmup: str | None = None
    """'module:function' called once in each new worker before it serves, so the first call is warm."""
    memory_limit_mib: int | None = None
    """Address-space limit per worker (RLIMIT_AS), so a runaway allocation fails inside the worker."""
    startup_timeout_s: float = 120.0
    """How long a new worker may take to import and warm up before it counts as crashed."""

    def __post_init__(self) -> None:
        if ":" not in self.handler:
            raise ValueError(f"handler must be 'module:function', got {self.handler!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        if self.memory_limit_mib is not None and self.memory_limit_mib < 64:
            raise ValueError(f"memory_limit_mib must be at least 64, got {self.memory_limit_mib!r}")


class WorkerFault(RuntimeError):
    """The pool could not produce a result for this call."""


class WorkerTimeout(WorkerFault):
    """The call ran past its deadline; its worker was killed and replaced."""


class WorkerCrashed(WorkerFault):
    """The worker died (or could not start) during the call; it was replaced."""


class WorkerRaised(WorkerFault):
    """The handler raised inside the worker; the worker is still healthy."""


class PoolClosed(WorkerFault):
    """The pool was shut down."""


# Every worker is started from this one long-lived thread: PR_SET_PDEATHSIG fires
# when the *thread* that started a child exits, so starting workers from
# short-lived caller threads would kill them when those threads end.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arbiter-worker-spawner")
_PATH_ENV = "ARBITER_WORKER_SYS_PATH"
_BOOT = f"import json, os, sys; sys.path[:0] = json.loads(os.environ.pop({_PATH_ENV!r})); "
_BOOT += f"from {__name__} import _serve; _serve()"


def _die_with_parent(parent_pid: int) -> None:
    # A worker stuck mid-call must not outlive the pool's process (SIGKILL of the
    # caller, OOM kill): it is killed with its parent, and gives up at once if
    # the parent is already gone.
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(0)


def _serve() -> None:
    """Entry point of a worker interpreter: argv is [fd, parent pid, base64 pickled PoolConfig]."""
    fd, parent_pid, payload = sys.argv[1:4]
    _die_with_parent(int(parent_pid))
    config = pickle.loads(base64.b64decode(payload))
    _worker_main(Connection(int(fd)), config)


def _worker_main(conn: Connection, config: PoolConfig) -> None:
    """Serve requests until the pipe closes. Replies are ('ok', value) or ('raised', text)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the caller, which kills us
    if config.memory_limit_mib is not None:
        import resource

        limit = config.memory_limit_mib * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    handler = pkgutil.resolve_name(config.handler)
    if config.warmup:
        pkgutil.resolve_name(config.warmup)()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if isinstance(request, str) and request == _PING:
            reply: tuple[str, Any] = ("ok", os.getpid())
        else:
            try:
                reply = ("ok", handler(request))
            except BaseException as exc:  # reported to the caller as a fault, never as a result
                reply = ("raised", describe_exception(exc))
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


def _start_process(config: PoolConfig, child_fd: int) -> subprocess.Popen[bytes]:
    payload = base64.b64encode(pickle.dumps(config)).decode("ascii")
    env = dict(os.environ)
    env[_PATH_ENV] = json.dumps(sys.path)
    return subprocess.Popen(
        [sys.executable, "-c", _BOOT, str(child_fd), str(os.getpid()), payload],
        pass_fds=(child_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        env=env,
    )


class _Worker:
    """One process and the parent's end of its pipe; used by one caller at a time."""

    def __init__(self, config: PoolConfig) -> None:
        parent_sock, child_sock = socket.socketpair()
        try:
            self.process = _spawner.submit(_start_process, config, child_sock.fileno()).result()
        finally:
            child_sock.close()
        self.conn = Connection(parent_sock.detach())
        # The ping is queued now and answered once the worker has imported and
        # warmed up; the first caller waits for it outside its own deadline.
        self.conn.send(_PING)
        self.ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.process.wait(timeout=1)
        return None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        with contextlib.suppress(OSError):
            self.conn.close()


def _kill_all(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.kill()
    workers.clear()


class WorkerPool:
    """N persistent workers; `call(request, timeout_s)` is safe from any thread."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._missing = 0
        # Runs at close() or interpreter exit, whichever comes first; it holds the
        # set of workers, not the pool, so the pool itself can still be collected.
        self._finalizer = weakref.finalize(self, _kill_all, self._all)

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(w.pid for w in self._all)

    def start(self, wait: bool = True) -> None:
        """Start all workers now (otherwise the first call does); with `wait`, until each is warm."""
        self._ensure_started()
        if not wait:
            return
        warm: list[_Worker] = []
        try:
            for _ in range(self.config.workers):
                worker = self._acquire()
                self._await_ready(worker)
                warm.append(worker)
        finally:
            for worker in warm:
                self._idle.put(worker)

    def call(self, request: Any, timeout_s: float) -> Any:
        """Run the handler on `request` in a worker, killing it if it runs past `timeout_s`."""
        worker = self._acquire()
        healthy = False
        try:
            self._await_ready(worker)
            try:
                worker.conn.send(request)
                answered = worker.conn.poll(timeout_s)
            except (BrokenPipeError, OSError) as exc:
                raise WorkerCrashed(f"worker {worker.pid} pipe broke: {exc}") from None
            if not answered:
                raise WorkerTimeout(f"no result within {timeout_s:g}s; worker {worker.pid} killed and replaced")
            try:
                status, value = worker.conn.recv()
            except (EOFError, OSError):
                raise WorkerCrashed(
                    f"worker {worker.pid} died during the call (exit code {worker.exit_code()}); replaced"
                ) from None
            healthy = True
        finally:
            if healthy:
                self._release(worker)
            else:
                self._replace(worker)
        if status == "raised":
            raise WorkerRaised(value)
        return value

    def close(self) -> None:
        """Kill every worker. Calls in flight fail with a fault; later calls raise PoolClosed."""
        with self._lock:
            self._closed = True
        self._finalizer()

    def _acquire(self) -> _Worker:
        self._ensure_started()
        while True:
            if self._closed:
                raise PoolClosed("worker pool is closed")
            self._refill()
            try:
                worker = self._idle.get(timeout=0.5)
            except queue.Empty:
                continue
            if self._closed:
                self._retire(worker)
                raise PoolClosed("worker pool is closed")
            if worker.process.poll() is not None:
                # Died while idle (killed from outside, OOM): no call was lost, so
                # replace it quietly instead of failing the next caller.
                self._replace(worker)
                continue
            return worker

    def _refill(self) -> None:
        """Start workers whose replacement failed earlier, so capacity is never lost for good."""
        if self._missing == 0:
            return
        with self._lock:
            while self._missing > 0 and not self._closed:
                self._spawn_locked()
                self._missing -= 1

    def _ensure_started(self) -> None:
        if self._started:
            return
        with self._lock:
            if self._closed:
                raise PoolClosed("worker pool is closed")
            if self._started:
                return
            for _ in range(self.config.workers):
                self._spawn_locked()
            self._started = True

    def _spawn_locked(self) -> None:
        worker = _Worker(self.config)
        self._all.add(worker)
        self._idle.put(worker)

    def _await_ready(self, worker: _Worker) -> None:
        if worker.ready:
            return
        started = time.monotonic()
        try:
            if not worker.conn.poll(self.config.startup_timeout_s):
                raise WorkerCrashed(f"worker {worker.pid} did not start within {self.config.startup_timeout_s:g}s")
            worker.conn.recv()
        except (EOFError, OSError):
            raise WorkerCrashed(
                f"worker {worker.pid} failed to start (exit code {worker.exit_code()}, "
                f"after {time.monotonic() - started:.1f}s)"
            ) from None
        worker.ready = True

    def _release(self, worker: _Worker) -> None:
        if self._closed:
            self._retire(worker)
        else:
            self._idle.put(worker)

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def _replace(self, worker: _Worker) -> None:
        self._retire(worker)
        with self._lock:
            if self._closed:
                return
            try:
                self._spawn_locked()
            except Exception:
                # Not raised here: it would mask this call's own timeout or crash.
                # The next caller retries in _refill, and a lasting failure surfaces there.
                self._missing += 1


# --- inline bounded sections ------------------------------------------------------------------
# A host process that is itself a bounded worker (services.workers: one sample at a time,
# SIGKILLed and replaced by its supervisor when a deadline passes) declares so once at start-up.
# A verifier in such a process may then run its risky step inline, inside `bounded(...)`, which
# tells the supervisor the step's own deadline: one process hop instead of two, and the kill
# still comes from outside.

DeadlineHook = Callable[[str, float | None], None]
"""(what, timeout_s) when a bounded step starts; (what, None) when it ends."""

_deadline_hook: DeadlineHook | None = None
_bounded_thread: int | None = None


def declare_bounded_worker(hook: DeadlineHook) -> None:
    """Mark this process as a bounded worker whose supervisor enforces the deadlines `hook` reports.

    Only for the calling thread, the one that scores samples one at a time: the supervisor tracks
    one deadline, so a verifier's own helper threads keep using killable pools.
    """
    global _deadline_hook, _bounded_thread
    _deadline_hook, _bounded_thread = hook, threading.get_ident()


def in_bounded_worker() -> bool:
    """True when verifiers may run risky steps inline here (see declare_bounded_worker)."""
    return _deadline_hook is not None and threading.get_ident() == _bounded_thread


@contextlib.contextmanager
def bounded(what: str, timeout_s: float) -> Iterator[None]:
    """Run the block under the supervisor's deadline of `timeout_s` (in a bounded worker only)."""
    hook = _deadline_hook
    if hook is None or threading.get_ident() != _bounded_thread:
        raise RuntimeError("bounded() needs a supervisor: this thread is not a declared bounded worker")
    hook(what, timeout_s)
    try:
        yield
    finally:
        hook(what, None)
