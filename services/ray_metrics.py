"""The servicer's metrics (services.metrics.METRICS) recorded through ray.util.metrics, for Serve replicas.

A replica's registry would be invisible (nothing scrapes a replica process); metrics recorded
through ray.util.metrics go to the node's metrics agent, which exports them in Prometheus format
on the node's metrics port (`ray start --metrics-export-port`, 8080 on KubeRay, scraped by its
PodMonitor), with the replica's worker id among the labels.
"""

from __future__ import annotations

from typing import Any

from ray.util import metrics as ray_metrics

from services.metrics import METRICS, MetricSpec


class Tagged:
    """A ray.util.metrics metric with prometheus_client's call shape: `.labels(*values).inc()`."""

    def __init__(self, metric: Any, keys: tuple[str, ...], values: tuple[str, ...] = ()) -> None:
        self._metric, self._keys = metric, keys
        self._tags = dict(zip(keys, values, strict=True)) if values else None
        self._children: dict[tuple[object, ...], Tagged] = {}  # label values are few (verifiers x verdicts)

    def labels(self, *values: object) -> Tagged:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = Tagged(self._metric, self._keys, tuple(str(v) for v in values))
        return child

    def inc(self, amount: float = 1.0) -> None:
        self._metric.inc(amount, tags=self._tags)

    def observe(self, value: float) -> None:
        self._metric.observe(value, tags=self._tags)

    def set(self, value: float) -> None:
        self._metric.set(value, tags=self._tags)


class RayMetrics:
    """The same attributes as services.metrics.Metrics, exported by Ray's metrics agent."""

    def __init__(self) -> None:
        for attribute, spec in METRICS.items():
            setattr(self, attribute, Tagged(_ray(spec), spec.labels))


def _ray(spec: MetricSpec) -> Any:
    if spec.kind == "histogram":
        return ray_metrics.Histogram(spec.name, spec.documentation, boundaries=list(spec.buckets),
                                     tag_keys=spec.labels)
    kind = ray_metrics.Counter if spec.kind == "counter" else ray_metrics.Gauge
    return kind(spec.name, spec.documentation, tag_keys=spec.labels)
