"""Draining `arbiter serve` on Ray Serve so that every call gets UNAVAILABLE (retryable) until the end.

Deleting a Serve application removes its route first: while its replicas finish, calls naming it
get the proxy's NOT_FOUND ("Application 'router' not found"), which no client retries. So
`arbiter serve` drains without deleting anything first:

1. it raises a flag on a named actor (`DrainSignal`), which every replica polls (`DrainWatch`,
   every POLL_INTERVAL_S);
2. each replica then answers calls from clients with UNAVAILABLE, while calls between replicas
   (the router forwarding to a family app) still run, so every call in flight finishes; it
   reports how many calls it has in flight;
3. once every running replica reported none (or the apps' graceful_shutdown_timeout_s passed),
   the replicas close their worker pools on the signal's word, and only then does `arbiter serve`
   stop Ray (on a joined cluster: delete its apps, now idle). Until the proxies stop, every call
   is refused with UNAVAILABLE; after, a connection refused is UNAVAILABLE too.

Replicas that find no signal (deployed by KubeRay or the trainer) keep Serve's own behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import ray
from ray import serve

log = logging.getLogger(__name__)

SIGNAL_NAME = "arbiter-drain"
SIGNAL_NAMESPACE = "arbiter"
POLL_INTERVAL_S = 0.2
DRAINING = "draining: this server is shutting down; retry on another"


@ray.remote(num_cpus=0)
class DrainSignal:
    """What `arbiter serve` tells its replicas (drain, then stop), and what each replica last reported."""

    def __init__(self) -> None:
        self._draining = False
        self._stopping = False
        self._reports: dict[str, tuple[int, bool]] = {}

    def begin(self) -> None:
        self._draining = True

    def stop(self) -> None:
        self._stopping = True

    def report(self, replica: str, in_flight: int, refusing: bool, closed: bool) -> tuple[bool, bool]:
        """A replica's state -> (drain?, stop?). Only reports made while refusing count."""
        if refusing:
            self._reports[replica] = (in_flight, closed)
        return self._draining, self._stopping

    def reports(self) -> dict[str, tuple[int, bool]]:
        return dict(self._reports)


def start_signal() -> Any:
    """The signal of this `arbiter serve`; create it before deploying, so that the replicas find it."""
    return DrainSignal.options(name=SIGNAL_NAME, namespace=SIGNAL_NAMESPACE, get_if_exists=True).remote()


class DrainWatch:
    """One replica's side: polls the signal, refuses client calls once draining, counts calls in flight."""

    def __init__(self, close: Callable[[], Awaitable[None]] | None = None) -> None:
        self.refusing = False
        self.in_flight = 0
        self._close = close
        self._closed = False
        self._replica = ray.get_runtime_context().get_actor_id()
        try:
            signal = ray.get_actor(SIGNAL_NAME, namespace=SIGNAL_NAMESPACE)
        except ValueError:
            self._poller = None  # not deployed by `arbiter serve`
        else:
            self._poller = asyncio.get_running_loop().create_task(self._poll(signal))

    def refusal(self, context: Any) -> str | None:
        """Why a call is refused now; calls between replicas (no context) always run."""
        return DRAINING if self.refusing and context is not None else None

    @contextlib.contextmanager
    def counted(self) -> Iterator[None]:
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def _poll(self, signal: Any) -> None:
        while True:
            draining, stopping = await signal.report.remote(self._replica, self.in_flight, self.refusing,
                                                            self._closed)
            if draining and not self.refusing:
                self.refusing = True
                continue  # report at once, now as refusing
            if stopping and not self._closed:
                if self._close is not None:
                    await self._close()
                self._closed = True
                continue
            await asyncio.sleep(POLL_INTERVAL_S)


def running_replicas(apps: list[str]) -> int:
    status = serve.status().applications
    return sum(deployment.replica_states.get("RUNNING", 0)
               for app in apps if app in status for deployment in status[app].deployments.values())


def drain_replicas(signal: Any, apps: list[str], timeout_s: float) -> None:
    """Refuse new client calls everywhere, wait for the calls in flight, then close every worker pool."""
    expected = running_replicas(apps)
    ray.get(signal.begin.remote())
    _wait(signal, expected, timeout_s, lambda in_flight, _closed: in_flight == 0, "calls in flight")
    ray.get(signal.stop.remote())
    _wait(signal, expected, timeout_s, lambda _in_flight, closed: closed, "worker pools open")


def _wait(signal: Any, expected: int, timeout_s: float, done: Callable[[int, bool], bool], what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        reports = ray.get(signal.reports.remote())
        if len(reports) >= expected and all(done(*report) for report in reports.values()):
            return
        if time.monotonic() > deadline:
            log.warning("drain: still %s after %.0f s, going on: %s", what, timeout_s, reports)
            return
        time.sleep(POLL_INTERVAL_S)
