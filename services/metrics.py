"""Metrics of one servicer: latency per verifier, verdicts, queue, faults, cache.

One table (`METRICS`) names every metric once; two backends record it:

- `Metrics` (prometheus_client): the standalone server serves it at /metrics. Each owns
  its own CollectorRegistry, so several servicers in one process never collide on names.
- `services.ray_metrics.RayMetrics` (ray.util.metrics): the Ray Serve replicas record through
  it, and each Ray node's metrics agent exports it on the node's metrics port (the one KubeRay's
  PodMonitor scrapes). Ray's exporter prefixes every name with ``ray_``
  (``ray_arbiter_verifier_latency_seconds``); labels are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

# Rule checks take microseconds, math parses milliseconds, sandboxed programs seconds.
_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass(frozen=True)
class MetricSpec:
    kind: Literal["counter", "gauge", "histogram"]
    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


METRICS: dict[str, MetricSpec] = {
    "latency": MetricSpec("histogram", "arbiter_verifier_latency_seconds", "Time one verifier spent on one sample",
                          ("verifier",), _LATENCY_BUCKETS_S),
    "sample_latency": MetricSpec("histogram", "arbiter_sample_latency_seconds",
                                 "Admission to answer for one sample, queueing included", (), _LATENCY_BUCKETS_S),
    "verdicts": MetricSpec("counter", "arbiter_verdicts_total", "Verifier verdicts", ("verifier", "verdict")),
    "sample_verdicts": MetricSpec("counter", "arbiter_sample_verdicts_total", "Composed sample verdicts",
                                  ("verdict",)),
    "batch_size": MetricSpec("histogram", "arbiter_batch_size", "Samples per ScoreBatch call", (),
                             (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)),
    "queue_depth": MetricSpec("gauge", "arbiter_queue_depth", "Samples waiting for a worker process"),
    "in_flight": MetricSpec("gauge", "arbiter_in_flight_samples", "Samples admitted and not yet answered"),
    "timeouts": MetricSpec("counter", "arbiter_timeouts_total", "Samples whose worker was killed for overrunning"),
    "errors": MetricSpec("counter", "arbiter_errors_total", "Faults and refusals by kind", ("kind",)),
    "worker_restarts": MetricSpec("counter", "arbiter_worker_restarts_total", "Worker processes replaced",
                                  ("reason",)),
    "cache_lookups": MetricSpec("counter", "arbiter_cache_lookups_total", "Verdict cache lookups",
                                ("verifier", "result")),
}


class Metrics:
    """The servicer's metrics in a prometheus_client registry of their own (one attribute per METRICS entry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for attribute, spec in METRICS.items():
            setattr(self, attribute, _prometheus(spec, self.registry))

    def serve_http(self, port: int, host: str = "127.0.0.1") -> int:
        """Expose /metrics on host:port (0 = any free port); returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return server.server_port

    def stop_http(self) -> None:
        server = getattr(self, "_http", None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _prometheus(spec: MetricSpec, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
    if spec.kind == "histogram":
        return Histogram(spec.name, spec.documentation, spec.labels, buckets=spec.buckets, registry=registry)
    kind = Counter if spec.kind == "counter" else Gauge
    return kind(spec.name, spec.documentation, spec.labels, registry=registry)
