"""The run's recorders, the declared metric families, their Prometheus export, and the docs that list them."""

from __future__ import annotations

import pathlib
import random
import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge.metrics.exposition import registry_for
from edge.metrics.families import FAMILIES, LATENCY_BUCKETS, LOADGEN_FAMILIES, Family
from edge.metrics.histogram import Bins, LogHistogram, bin_mids
from edge.metrics.recorders import RunMetrics

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/architecture.md", "grafana/README.md")


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


def test_counts_cover_only_the_decades_observed():
    hist = LogHistogram()
    hist.observe(0.0012)
    hist.observe(0.0099)  # the same decade: 900 bins
    assert len(hist.bins().counts) == 900
    hist.observe(0.5)  # two decades up: the range grows to cover the one between
    assert len(hist.bins().counts) == 3 * 900
    assert hist.bins().count == 3


def test_a_value_on_a_decade_edge_starts_that_decade():
    hist = LogHistogram()
    hist.observe(0.001)
    assert (hist.bins().start, len(hist.bins().counts)) == (4 * 900, 900)  # 10^-3 is 4 decades above 10^-7
    hist.observe(0.000999)
    assert hist.bins().start == 3 * 900


def test_extremes_share_the_first_and_last_bins():
    hist = LogHistogram()
    for v in (0.0, 5e-8, 1e5, 1e9):
        hist.observe(v)
    bins = hist.bins()
    assert bins.start == 0 and bins.end == len(bin_mids())
    assert bins.counts[0] == 2 and bins.counts[-1] == 2


def test_values_waiting_to_be_binned_keep_no_object_each():
    """Unbinned values are plain doubles: a float object per value (a list's way) is four times the
    memory, and after a live burst such objects pinned CPython arenas that could not be given back."""
    h = LogHistogram()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100_000):
            h.observe(i * 1e-6 + 1e-3)  # a fresh float each time, as a measured latency is
        waiting = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert waiting <= 100_000 * 9  # 8 bytes a value and the buffer's slack; a list of floats takes 32+
    assert h.count == 100_000 and h.min == pytest.approx(1e-3) and h.max == pytest.approx(0.100999)


def test_difference_of_copies_is_what_came_between():
    hist = LogHistogram()
    hist.observe(0.002)
    before = hist.bins()
    hist.observe(3.0)  # widens the range: the copies no longer align
    since = hist.bins() - before
    assert since.count == 1 and abs(since.quantile(0.5) - 3.0) / 3.0 < 0.01
    assert (before - before).count == 0 and (Bins() - before).count == -1


def test_empty_bins_read_as_zero():
    assert Bins().quantile(0.5) == 0.0 and Bins().largest() == 0.0 and len(Bins().samples()) == 0
    assert (Bins() + Bins()).count == 0


def _dense_quantile(values: list[float], q: float) -> float:
    """The quantile as the earlier dense histogram read it: over all 10,801 bins."""
    hist = LogHistogram()
    for v in values:
        hist.observe(v)
    bins = hist.bins()
    dense = np.zeros(len(bin_mids()), dtype=np.int64)
    dense[bins.start : bins.end] = bins.counts
    cumulative = np.cumsum(dense)
    index = int(np.searchsorted(cumulative, q * int(cumulative[-1]), side="right"))
    return 0.0 if index == 0 else float(bin_mids()[min(index, len(dense) - 1)])


_latencies = st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(first=_latencies, second=_latencies, q=st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.999]))
def test_window_quantiles_match_a_histogram_of_the_window_alone(first, second, q):
    hist = LogHistogram()
    for v in first:
        hist.observe(v)
    before = hist.bins()
    for v in second:
        hist.observe(v)
    window = hist.bins() - before
    alone = LogHistogram()
    for v in second:
        alone.observe(v)
    assert window.count == len(second)
    assert window.quantile(q) == alone.bins().quantile(q) == _dense_quantile(second, q)
    assert sorted(window.samples()) == sorted(alone.bins().samples())


def recorded_run() -> RunMetrics:
    """A run with something recorded in every table, so every family has at least one series."""
    run = RunMetrics()
    env = run.environment("app", "canary")
    env.counts("42")[1] += 5
    env.latency.observe(0.002)
    env.queue_wait.observe(0.0001)
    env.cpu_seconds += 0.01
    env.cold_starts["42"] = 1
    env.isolate_evictions = lambda: {"capacity": 0, "expired": 1}
    run.histogram(run.bindings, ("gateway", "APP", "app", "canary", "42", "2xx")).observe(0.003)
    run.histogram(run.ingress, ("gateway", "production")).observe(0.004)
    run.histogram(run.request_cpu, "gateway").observe(0.0007)
    run.canary_weights[("app", "canary")] = 1.0
    run.retries[("app", "canary", "production")] = 2
    run.retries_denied[("app", "canary")] = 1
    run.rollout_checks[("app", "pass")] = 3
    run.rollout_phase[("app", "progressing")] = 1.0
    run.count_routed("app", "canary", 200)
    run.answers["gateway"] = [0, 7, 0, 1, 0]
    run.timeouts["gateway"] = 0
    run.group("steady")
    return run


def test_export_is_every_declared_family_with_its_type_help_and_labels():
    text = generate_latest(registry_for(recorded_run())).decode()
    # The text parser names a counter without its _total, as prometheus-client's families do.
    scraped = {f.name: f for f in text_string_to_metric_families(text)}
    assert list(scraped) == [f.name.removesuffix("_total") for f in FAMILIES]
    for family in FAMILIES:
        metric = scraped[family.name.removesuffix("_total")]
        assert (metric.type, metric.documentation) == (family.kind, family.help), family.name
        assert metric.samples, f"{family.name}: no series recorded"
        for sample in metric.samples:
            assert sample.name in family.samples, sample.name
            labels = dict(sample.labels)
            le = labels.pop("le", None)
            assert tuple(sorted(labels)) == tuple(sorted(family.labels)), sample
            if le is not None:
                assert le in {repr(bound) for bound in family.buckets} | {"+Inf"}, sample


def test_export_samples():
    text = generate_latest(registry_for(recorded_run())).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert 'edge_requests_total{environment="canary",service="app",status_class="2xx",version="42"} 5.0' in text
    assert 'edge_retries_total{from_environment="canary",service="app",to_environment="production"} 2.0' in text
    assert 'edge_client_requests_total{service="gateway",status_class="2xx"} 7.0' in text
    assert 'edge_client_requests_total{service="gateway",status_class="4xx"} 1.0' in text
    assert 'status_class="1xx"' not in text  # a class never answered has no series
    assert 'edge_environment_duration_seconds_count{environment="canary",service="app"} 1.0' in text
    assert 'edge_ingress_rejected_total{status="408"} 0.0' in text  # the usual refusals exist from the start
    buckets = [s for s in families["edge_binding_duration_seconds"].samples if s.name.endswith("_bucket")]
    assert len(buckets) == len(LATENCY_BUCKETS) + 1
    assert {s.labels["le"] for s in buckets} >= {"0.0025", "0.005", "+Inf"}
    assert [s.value for s in buckets if s.labels["le"] in ("0.0025", "0.005")] == [0.0, 1.0]


@pytest.mark.parametrize(
    "name, kind, buckets",
    [("edge_requests", "counter", ()), ("edge_inflight_total", "gauge", ()), ("edge_wait_seconds", "histogram", ()),
     ("edge_depth", "gauge", (1.0,)), ("requests_total", "counter", ())],
)
def test_a_family_that_breaks_the_naming_rules_is_refused(name, kind, buckets):
    with pytest.raises(ValueError):
        Family(name, kind, "help", ("service",), buckets)


def doc_table_rows() -> list[str]:
    text = (ROOT / "docs/architecture.md").read_text()
    return [line for line in text.splitlines() if line.startswith("| `edge_")]


def declared_rows() -> list[str]:
    """The metrics tables of docs/architecture.md (the run's, then the load generator's) as the declarations write them."""
    return [
        f"| `{f.name}` | {f.kind} | {', '.join(f'`{label}`' for label in f.labels)} | {f.help} |" for f in FAMILIES + LOADGEN_FAMILIES
    ]


def test_the_architecture_table_is_the_declared_families():
    expected = declared_rows()
    assert doc_table_rows() == expected, "docs/architecture.md's metrics table differs from edge/metrics/families.py; " \
        "the rows should read:\n" + "\n".join(expected)


def test_every_metric_the_docs_name_is_declared():
    # A family's name or one of its series (edge_x_bucket) is fine in prose; anything else is a stale name.
    declared = {f.name for f in FAMILIES + LOADGEN_FAMILIES} | {series for f in FAMILIES for series in f.samples}
    for doc in DOCS:
        named = set(re.findall(r"\bedge_[a-z0-9_]+", (ROOT / doc).read_text()))
        assert named, f"{doc} names no metric: is the pattern stale?"
        assert named <= declared, f"{doc} names undeclared metrics: {sorted(named - declared)}"


def test_bins_of_values_are_what_a_histogram_of_them_holds():
    # The batched engine bins a window's latencies at once (``Bins.of``); a gate must read the
    # same quantile from them as from the per-request engine's histogram.
    from edge.metrics.histogram import Bins

    values = np.random.default_rng(1).lognormal(-6, 1.2, 5000)
    histogram = LogHistogram()
    for value in values:
        histogram.observe(float(value))
    held, binned = histogram.bins(), Bins.of(values)
    assert not (binned - held).counts.any() and binned.count == 5000
    assert [binned.quantile(q) for q in (0.5, 0.9, 0.99)] == [held.quantile(q) for q in (0.5, 0.9, 0.99)]
    assert Bins.of(np.zeros(0)).quantile(0.99) == 0.0 and Bins.of(np.zeros(0)).count == 0


def test_a_few_values_are_binned_in_python_exactly_as_numpy_bins_many():
    # Every decade edge and its eight neighbours on each side (where log10's last bit could
    # matter), and a wide random spread: the Python path puts each in numpy's bin.
    import math

    from edge.metrics.histogram import _bin_index_of, _bin_indices

    values = [0.0, 1e-300, 1e5, 1e300, 0.001, 0.002, 3e-4]
    for exponent in range(-9, 7):
        for base in (1.0, 2.5, 9.99, 1.01):
            edge = base * 10.0**exponent
            below = above = edge
            for _ in range(8):
                below, above = math.nextafter(below, 0), math.nextafter(above, math.inf)
                values += [below, above]
            values.append(edge)
    values += np.random.default_rng(3).lognormal(-7, 3, 100_000).tolist()
    assert [_bin_index_of(v) for v in values] == _bin_indices(np.asarray(values)).tolist()


def test_a_histogram_settled_a_few_values_at_a_time_holds_what_one_settled_at_once_does():
    few, many = LogHistogram(), LogHistogram()
    values = np.random.default_rng(5).lognormal(-6, 1.5, 4000)
    for chunk in np.array_split(values, 500):  # 8 at a time: the Python path
        for value in chunk:
            few.observe(float(value))
        few.settle()
    for value in values:
        many.observe(float(value))
    assert not (few.bins() - many.bins()).counts.any()
    assert (few.count, few.min, few.max) == (many.count, many.min, many.max)
    assert few.total == pytest.approx(many.total, rel=1e-12)


def test_the_latest_values_are_read_only_while_they_wait_and_are_few():
    from edge.metrics.histogram import _FEW

    hist = LogHistogram()
    values = [0.001 * (i + 1) for i in range(_FEW + 1)]
    for value in values[:_FEW]:
        hist.observe(value)
    assert hist.latest(_FEW) == values[:_FEW]  # exactly the limit
    assert hist.latest(2) == values[_FEW - 2 : _FEW]
    assert hist.latest(0) == []
    assert hist.latest(_FEW + 1) is None  # more than wait
    hist.observe(values[_FEW])
    assert hist.latest(_FEW + 1) is None  # they wait, but are more than a handful
    assert hist.waiting == _FEW + 1 and hist.observed == _FEW + 1  # reading bins nothing
    hist.settle()
    assert hist.latest(1) is None and hist.latest(0) == [] and hist.observed == _FEW + 1


@settings(max_examples=300, deadline=None)
@given(values=_latencies, qs=st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 0.999]), min_size=1, max_size=4))
def test_quantiles_of_a_few_values_are_their_bins_quantiles(values, qs):
    from edge.metrics.histogram import _bin_index_of, bin_indices_of, quantiles_of_values

    assert quantiles_of_values(values, tuple(qs)) == Bins.of(np.asarray(values)).quantiles(tuple(qs))
    assert bin_indices_of(values) == [_bin_index_of(v) for v in values]  # with numpy above a handful, one by one below: the same bins


def test_quantiles_of_no_values_are_zero():
    from edge.metrics.histogram import quantiles_of_values

    assert quantiles_of_values([], (0.5, 0.99)) == [0.0, 0.0] == Bins().quantiles((0.5, 0.99))


# One reading's worth: some values observed, then perhaps a settle by another reader (a scrape,
# an analysis, ``RunMetrics.settle``), which takes the window's values out of the waiting list.
_reading = st.tuples(st.lists(st.floats(min_value=0.0, max_value=10.0, allow_nan=False), max_size=40), st.booleans())


@settings(max_examples=200, deadline=None)
@given(readings=st.lists(_reading, min_size=1, max_size=12))
def test_a_series_window_reads_what_a_histogram_of_the_window_alone_holds(readings):
    # The series reads a handful of waiting values as they are, and otherwise subtracts copies of
    # the counts; whichever way each reading goes, it is the window's own quantiles.
    from edge.metrics.series import _Window

    qs = (0.5, 0.9, 0.99)
    hist, window = LogHistogram(), _Window()
    for values, settled in readings:
        for value in values:
            hist.observe(value)
        if settled:
            hist.settle()
        assert window.quantiles(hist, qs) == Bins.of(np.asarray(values)).quantiles(qs)
    assert not (window.take([hist]).counts.any())  # the last reading's bins were kept up to date


def test_a_window_never_taken_keeps_at_most_its_limit_of_bins_waiting():
    from edge.metrics.series import _ADDED_LIMIT, _Window

    hist, window = LogHistogram(), _Window()
    for i in range(_ADDED_LIMIT + 1):
        hist.observe(0.001 + i * 1e-6)
        window.quantiles(hist, (0.5,))
        assert len(window.added) <= _ADDED_LIMIT  # the 1,025th is folded into the last reading's bins
    assert window.added == [] and window.last.count == _ADDED_LIMIT + 1
    hist.observe(0.5)
    assert window.take([hist]).count == 1 and window.seen == _ADDED_LIMIT + 2


def test_a_window_over_no_histograms_is_empty():
    from edge.metrics.series import _Window

    assert _Window().take([]).count == 0 and _Window().take([]).quantiles((0.5,)) == [0.0]
