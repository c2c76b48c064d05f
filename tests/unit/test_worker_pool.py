"""The bounded worker pool: deadlines kill, crashes are reported, workers are replaced."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from rewards.pool import PoolClosed, WorkerCrashed, WorkerPool, WorkerPoolConfig, WorkerRaised, WorkerTimeout


def handle(request: tuple[str, object]) -> object:
    """The test handler, run inside the workers (this module is importable there)."""
    kind, arg = request
    if kind == "echo":
        return arg
    if kind == "pid":
        return os.getpid()
    if kind == "sleep":
        time.sleep(float(arg))  # type: ignore[arg-type]
        return arg
    if kind == "exit":
        os._exit(int(arg))  # type: ignore[call-overload]
    if kind == "raise":
        raise ValueError(arg)
    if kind == "allocate_mib":
        return len(bytearray(int(arg) * 1024 * 1024))  # type: ignore[call-overload]
    raise AssertionError(kind)


CONFIG = WorkerPoolConfig(handler=f"{__name__}:handle", workers=2, memory_limit_mib=512)


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    pool = WorkerPool(CONFIG)
    pool.start()
    yield pool
    pool.close()


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting to be reaped by its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_dead(pids: list[int], within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_call_returns_the_handlers_result(pool: WorkerPool) -> None:
    assert pool.call(("echo", {"a": [1, 2]}), timeout_s=30) == {"a": [1, 2]}


def test_workers_are_persistent_processes(pool: WorkerPool) -> None:
    served_by = {pool.call(("pid", None), timeout_s=30) for _ in range(20)}
    assert served_by <= set(pool.pids()) and served_by != {os.getpid()}


def test_timeout_kills_the_worker_and_a_replacement_serves(pool: WorkerPool) -> None:
    before = set(pool.pids())
    with pytest.raises(WorkerTimeout, match="killed and replaced"):
        pool.call(("sleep", 60), timeout_s=0.5)
    after = set(pool.pids())
    (killed,) = before - after
    assert not _alive(killed)
    assert len(after) == CONFIG.workers
    assert pool.call(("echo", "still serving"), timeout_s=30) == "still serving"


def test_timeout_works_from_a_non_main_thread(pool: WorkerPool) -> None:
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            pool.call(("sleep", 60), timeout_s=0.5)
        except WorkerTimeout as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(timeout=30)
    assert len(outcome) == 1


def test_crashed_worker_is_reported_and_replaced(pool: WorkerPool) -> None:
    with pytest.raises(WorkerCrashed, match="exit code 3"):
        pool.call(("exit", 3), timeout_s=30)
    assert len(pool.pids()) == CONFIG.workers
    assert pool.call(("echo", 1), timeout_s=30) == 1


def test_worker_killed_while_idle_is_replaced_without_failing_a_call(pool: WorkerPool) -> None:
    for pid in pool.pids():
        os.kill(pid, 9)
    assert _wait_dead(pool.pids())
    assert [pool.call(("echo", i), timeout_s=30) for i in range(4)] == [0, 1, 2, 3]


def test_handler_exception_is_reported_and_the_worker_survives(pool: WorkerPool) -> None:
    before = pool.pids()
    with pytest.raises(WorkerRaised, match="ValueError: boom"):
        pool.call(("raise", "boom"), timeout_s=30)
    assert pool.pids() == before


def test_memory_limit_turns_a_runaway_allocation_into_an_error(pool: WorkerPool) -> None:
    with pytest.raises(WorkerRaised, match="MemoryError"):
        pool.call(("allocate_mib", 1024), timeout_s=30)
    assert pool.call(("allocate_mib", 16), timeout_s=30) == 16 * 1024 * 1024


def test_concurrent_callers_each_get_their_own_result(pool: WorkerPool) -> None:
    results: dict[int, list[object]] = {}

    def caller(n: int) -> None:
        results[n] = [pool.call(("echo", (n, i)), timeout_s=30) for i in range(10)]

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {n: [(n, i) for i in range(10)] for n in range(6)}


def test_close_kills_the_workers_and_refuses_later_calls() -> None:
    pool = WorkerPool(WorkerPoolConfig(handler=f"{__name__}:handle", workers=1))
    assert pool.call(("echo", 1), timeout_s=30) == 1
    pids = pool.pids()
    pool.close()
    assert _wait_dead(pids)
    with pytest.raises(PoolClosed):
        pool.call(("echo", 1), timeout_s=30)


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="module:function"):
        WorkerPoolConfig(handler="no_colon")
    with pytest.raises(ValueError, match="workers"):
        WorkerPoolConfig(handler="m:f", workers=0)


_ORPHAN_SCRIPT = """
import os, signal, sys, threading, time
from rewards.pool import WorkerPoolConfig, WorkerPool
pool = WorkerPool(WorkerPoolConfig(handler="time:sleep", workers=2))
pool.start()
print(" ".join(map(str, pool.pids())), flush=True)
threading.Thread(target=pool.call, args=(600, 600), daemon=True).start()
time.sleep(0.5)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_workers_do_not_outlive_a_killed_parent() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _ORPHAN_SCRIPT], capture_output=True, text=True, timeout=120, cwd=os.getcwd()
    )
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2, proc.stderr
    assert _wait_dead(pids), "worker processes survived their parent"
