"""The run's recorders and their Prometheus export."""

from __future__ import annotations

import random

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge.metrics.recorders import LATENCY_BUCKETS, LogHistogram, RunMetrics, registry_for


def test_quantiles_are_within_one_percent():
    rng = random.Random(3)
    values = sorted(rng.lognormvariate(-6, 1.5) for _ in range(100_000))
    hist = LogHistogram()
    for v in values:
        hist.observe(v)
    for q in (0.5, 0.9, 0.99, 0.999):
        exact = values[int(q * len(values))]
        assert abs(hist.quantile(q) - exact) / exact < 0.01, q
    assert hist.quantile(1.0) == values[-1]
    assert abs(hist.mean - sum(values) / len(values)) < 1e-12


def test_zeros_read_as_zero():
    hist = LogHistogram()
    for _ in range(99):
        hist.observe(0.0)
    hist.observe(0.5)
    assert hist.quantile(0.5) == 0.0 and hist.quantile(0.98) == 0.0 and hist.quantile(0.995) == 0.5


def test_prometheus_buckets_are_exact_at_their_bounds():
    hist = LogHistogram()
    for v in (0.0009999, 0.001, 0.0010001, 0.0025, 0.004999, 0.005, 3.0):
        hist.observe(v)
    assert hist.count_below(0.001) == 1
    assert hist.count_below(0.0025) == 3
    assert hist.count_below(0.005) == 5
    assert hist.count_below(10.0) == 7


def test_export_has_every_family_with_bounded_labels():
    run = RunMetrics()
    env = run.environment("app", "canary")
    env.counts("42")[1] += 5
    env.latency.observe(0.002)
    env.cpu_seconds += 0.01
    run.histogram(run.bindings, ("gateway", "APP", "app", "canary", "42", "2xx")).observe(0.003)
    run.histogram(run.ingress, ("gateway", "production")).observe(0.004)
    run.histogram(run.request_cpu, "gateway").observe(0.0007)
    run.canary_weights[("app", "canary")] = 1.0
    run.retries[("app", "canary", "production")] = 2
    run.answers["gateway"] = [0, 7, 0, 1, 0]
    text = generate_latest(registry_for(run)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "edge_requests", "edge_request_duration_seconds", "edge_binding_duration_seconds", "edge_queue_wait_seconds",
        "edge_request_cpu_seconds", "edge_cpu_seconds", "edge_cpu_limit_exceeded", "edge_shed",
        "edge_worker_exceptions", "edge_mailbox_depth", "edge_inflight", "edge_cold_starts",
        "edge_canary_weight", "edge_retries", "edge_client_requests", "edge_environment_duration_seconds",
    ):
        assert name in families, name
    assert 'edge_requests_total{environment="canary",service="app",status_class="2xx",version="42"} 5.0' in text
    assert 'edge_retries_total{from_environment="canary",service="app",to_environment="production"} 2.0' in text
    assert 'edge_client_requests_total{service="gateway",status_class="2xx"} 7.0' in text
    assert 'edge_environment_duration_seconds_count{environment="canary",service="app"} 1.0' in text
    buckets = [s for s in families["edge_binding_duration_seconds"].samples if s.name.endswith("_bucket")]
    assert len(buckets) == len(LATENCY_BUCKETS) + 1
    assert {s.labels["le"] for s in buckets} >= {"0.0025", "0.005", "+Inf"}
    assert [s.value for s in buckets if s.labels["le"] in ("0.0025", "0.005")] == [0.0, 1.0]
