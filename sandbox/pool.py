"""The warm pool: jails started ahead of time and reused, so a run costs a fork, not a start-up.

Measured here (2 cores, `python3 -c pass`): plain subprocess 12 ms, a new bwrap jail 50-100 ms,
a run in a started jail 3-5 ms. What a run costs in a started jail: the launcher forks, unshares
mount + PID namespaces, mounts three tmpfs and /proc, writes the files, forks the program, which
(for Python) runs in the already-initialised interpreter with the usual modules and the grading
harness preloaded. What is left per run is mostly copy-on-write faults of the forked interpreter
(docs/benchmarks.md, issue 15).

Why reuse is safe: each run gets its own mount and PID namespaces inside the jail, so its work
dir, /tmp, /dev/shm and /proc are new and die with it, and every process it started is killed
when its namespace's init exits; SysV/POSIX IPC (the one namespace runs share) is denied by
seccomp; the launcher holds no data of past runs (they travel in memfds it never reads) and is
non-dumpable PID 1, which a program can neither read nor signal. A jail is retired after
`runs_per_jail` runs or at the first sign of trouble (launcher unresponsive, set-up failure, a
run that left something alive: descriptors parked in flight, memory still charged, limits that
will not go back down), and a maintenance thread starts its replacement off the critical path;
a request whose jail could not be reset before it ran goes to another jail.

Thread-safe: any number of threads may call `run`; at most `pool_size` run at once, the rest
wait for a jail. Jails are started from the maintenance thread only, because bwrap's
--die-with-parent follows the thread that started it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

from sandbox.api import RunRequest, RunResult, Status
from sandbox.bwrap import Jail, JailResetFailed, LocalBackend, LocalConfig, SandboxUnavailable
from sandbox.plan import build_plan, compile_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolConfig:
    """Size and hygiene of the warm pool."""

    # Jails kept started; also the most runs executing at once. 0 means one per CPU.
    pool_size: int = 0
    # Runs a jail serves before it is replaced (bounds any slow drift of the launcher).
    runs_per_jail: int = 500
    # How long `run` waits for a free jail before it reports a sandbox error.
    acquire_timeout_s: float = 120.0
    local: LocalConfig = field(default_factory=LocalConfig)

    def __post_init__(self) -> None:
        if self.pool_size < 0 or self.runs_per_jail < 1 or self.acquire_timeout_s <= 0:
            raise ValueError("PoolConfig: pool_size >= 0, runs_per_jail >= 1, acquire_timeout_s > 0")


class Sandbox:
    """A warm pool of jails; use as a context manager or call close()."""

    name = "bwrap-pool"
    image_id = None  # jails run the host's /usr

    def __init__(self, config: PoolConfig | None = None) -> None:
        self.config = config or PoolConfig()
        self.size = self.config.pool_size or (os.cpu_count() or 1)
        self._backend = LocalBackend(self.config.local)
        self._idle: queue.Queue[Jail] = queue.Queue()
        self._wanted = threading.Semaphore(0)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._live: set[Jail] = set()
        self._retired_cpu_s = 0.0
        self._start_error: BaseException | None = None
        for _ in range(self.size):
            self._wanted.release()
        self._maintainer = threading.Thread(target=self._maintain, name="sandbox-pool", daemon=True)
        self._maintainer.start()
        log.info("sandbox pool: %d jails, %s", self.size, self._backend.describe())

    def describe(self) -> str:
        return f"warm pool of {self.size} {self._backend.describe()}"

    def cpu_time_s(self) -> float:
        """CPU seconds spent inside this pool's jails so far: launchers and every run they served."""
        with self._lock:
            return self._retired_cpu_s + sum(jail.cpu_time_s() for jail in self._live)

    def _maintain(self) -> None:
        while True:
            self._wanted.acquire()
            if self._closed.is_set():
                return
            try:
                jail = self._backend.new_jail()
            except (SandboxUnavailable, OSError) as exc:
                log.error("sandbox pool: cannot start a jail: %s", exc)
                self._start_error = exc
                self._closed.wait(1.0)
                self._wanted.release()
                continue
            self._start_error = None
            with self._lock:
                if self._closed.is_set():
                    jail.destroy()
                    return
                self._live.add(jail)
            self._idle.put(jail)

    def _retire(self, jail: Jail) -> None:
        with self._lock:
            self._live.discard(jail)
            self._retired_cpu_s += jail.cpu_time_s()
        jail.destroy()
        if not self._closed.is_set():
            self._wanted.release()

    def _acquire(self) -> Jail | None:
        """A free jail; None at the timeout, or at once when jails fail to start and none is left."""
        deadline = time.monotonic() + self.config.acquire_timeout_s
        while time.monotonic() < deadline:
            try:
                return self._idle.get(timeout=0.25)
            except queue.Empty:
                with self._lock:
                    starved = not self._live
                if starved and self._start_error is not None:
                    return None
        return None

    def run(self, request: RunRequest) -> RunResult:
        if self._closed.is_set():
            raise RuntimeError("Sandbox is closed")
        cache = self._backend.compile_cache
        plan = build_plan(request, artifact=cache.get(compile_key(request)))
        resets_failed = 0
        while True:
            jail = self._acquire()
            if jail is None:
                why = f"no jail became free within {self.config.acquire_timeout_s:g}s"
                if self._start_error is not None:
                    why = f"jails cannot be started: {self._start_error}"
                return RunResult(Status.SANDBOX_ERROR, None, None, "", "", 0.0, 0.0, None, why)
            if not jail.alive:
                self._retire(jail)
                continue
            try:
                return jail.execute(request, plan, cache)
            except JailResetFailed as exc:
                # The jail's fault, found before this request ran: the request goes to another
                # jail (every one of them failing is the sandbox's fault, reported as such).
                log.warning("sandbox pool: %s; jail retired", exc)
                resets_failed += 1
                if resets_failed > self.size:
                    return RunResult(Status.SANDBOX_ERROR, None, None, "", "", 0.0, 0.0, None, str(exc))
            finally:
                if jail.alive and jail.runs < self.config.runs_per_jail and not self._closed.is_set():
                    self._idle.put(jail)
                else:
                    self._retire(jail)

    def close(self) -> None:
        self._closed.set()
        self._wanted.release()
        self._maintainer.join(timeout=30)
        with self._lock:
            jails, self._live = list(self._live), set()
        for jail in jails:
            jail.destroy()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
