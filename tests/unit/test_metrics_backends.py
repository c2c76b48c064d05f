"""The standalone server's prometheus_client metrics and the Serve replicas' ray.util.metrics are one table."""

from __future__ import annotations

import pytest

from services.metrics import METRICS, Metrics
from services.ray_metrics import RayMetrics


def test_both_backends_have_every_metric_of_the_table_under_the_same_attribute():
    prometheus, ray = Metrics(), RayMetrics()
    for attribute in METRICS:
        assert hasattr(prometheus, attribute) and hasattr(ray, attribute), attribute


def test_prometheus_backend_exports_the_table_names_and_labels():
    metrics = Metrics()
    metrics.latency.labels("format").observe(0.01)
    metrics.verdicts.labels("format", "correct").inc()
    text = metrics.render().decode()
    assert 'arbiter_verifier_latency_seconds_bucket{le="0.01",verifier="format"} 1.0' in text
    assert 'arbiter_verdicts_total{verdict="correct",verifier="format"} 1.0' in text


def test_ray_backend_takes_the_same_calls_and_checks_the_label_count():
    metrics = RayMetrics()  # recording before ray.init is a no-op, not an error
    metrics.latency.labels("format").observe(0.01)
    metrics.verdicts.labels("format", "correct").inc()
    metrics.timeouts.inc()
    metrics.queue_depth.set(3)
    with pytest.raises(ValueError):
        metrics.verdicts.labels("format")
