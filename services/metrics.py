"""Prometheus metrics of one servicer: latency per verifier, verdicts, queue, faults, cache.

Each Metrics owns its own CollectorRegistry, so several servicers (tests, Serve
replicas sharing a process) never collide on metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

# Rule checks take microseconds, math parses milliseconds, sandboxed programs seconds.
_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram("arbiter_verifier_latency_seconds", "Time one verifier spent on one sample",
                                 ["verifier"], buckets=_LATENCY_BUCKETS_S, registry=r)
        self.sample_latency = Histogram("arbiter_sample_latency_seconds",
                                        "Admission to answer for one sample, queueing included",
                                        buckets=_LATENCY_BUCKETS_S, registry=r)
        self.verdicts = Counter("arbiter_verdicts_total", "Verifier verdicts", ["verifier", "verdict"], registry=r)
        self.sample_verdicts = Counter("arbiter_sample_verdicts_total", "Composed sample verdicts", ["verdict"],
                                       registry=r)
        self.batch_size = Histogram("arbiter_batch_size", "Samples per ScoreBatch call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=r)
        self.queue_depth = Gauge("arbiter_queue_depth", "Samples waiting for a worker process", registry=r)
        self.in_flight = Gauge("arbiter_in_flight_samples", "Samples admitted and not yet answered", registry=r)
        self.timeouts = Counter("arbiter_timeouts_total", "Samples whose worker was killed for overrunning",
                                registry=r)
        self.errors = Counter("arbiter_errors_total", "Faults and refusals by kind", ["kind"], registry=r)
        self.worker_restarts = Counter("arbiter_worker_restarts_total", "Worker processes replaced", ["reason"],
                                       registry=r)
        self.cache_lookups = Counter("arbiter_cache_lookups_total", "Verdict cache lookups", ["verifier", "result"],
                                     registry=r)

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
