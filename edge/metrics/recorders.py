"""Every metric of a run: the hot-path recorders and the Prometheus families they are exported as.

Why not prometheus-client's ``Counter``/``Histogram`` on the hot path: each observation takes a lock
and walks the bucket list, several microseconds that a simulation pays per hop. Here the actors
write plain numbers and ``LogHistogram`` bins, and ``RunCollector`` turns them into metric families
only when somebody scrapes (or a report is written). All names, help texts, labels and bucket bounds
live in this module; label values are bounded (service, environment, version, binding names and
status classes: never a path, an id or a secret).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Iterable, Iterator

import numpy as np

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

INGRESS_REFUSALS = (400, 408, 413, 431)  # malformed, too slow, body too large, head too large

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CPU_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)

_E_MIN = -7  # smallest decade kept apart: 100 ns
_E_MAX = 5  # values from 10^5 s up share the last bin
_PER_DECADE = 900  # mantissa steps of 0.01 from 1.00 to 9.99: at most 1% relative bin width
_BINS = (_E_MAX - _E_MIN) * _PER_DECADE + 1
_SMALLEST = 1e-7  # below this (zeros included) values share bin 0
_LARGEST = 10.0**_E_MAX
_NEG_POW10 = np.array([10.0**-e for e in range(_E_MIN, _E_MAX + 1)])
_POW10 = np.array([10.0**e for e in range(_E_MIN, _E_MAX + 1)])
_EPSILON = 1e-9  # puts exact edges such as 2.5 (stored as 2.4999...) in their own bin


def status_class(status: int) -> int:
    """Index into ``STATUS_CLASSES`` of an HTTP status."""
    return status // 100 - 1


class LogHistogram:
    """Counts of non-negative values in decimal log-linear bins (HDR-style, <= 1% relative error).

    Bins are [m, m + 0.01) x 10^e for m in 1.00..9.99: every Prometheus bound of the form d.dd x
    10^e is a bin edge, so exported ``le`` buckets are exact, and a quantile read from a bin is
    within 1% of the true value (bin midpoint, clamped to the observed min/max).

    Why ``observe`` is a bound ``list.append``: a simulated request makes about ten observations,
    and binning each in Python cost a tenth of the whole run. Values wait in a list and are binned
    with numpy when anything reads the histogram, or when the owner calls ``settle()`` to bound
    the list (``RunMetrics.settle`` does it for every histogram of a run).
    """

    __slots__ = ("observe", "_pending", "_bins", "_count", "_total", "_min", "_max")

    def __init__(self) -> None:
        self._pending: list[float] = []
        self.observe: Callable[[float], None] = self._pending.append
        self._bins = np.zeros(_BINS, dtype=np.int64)
        self._count = 0
        self._total = 0.0
        self._min = math.inf
        self._max = 0.0

    def settle(self) -> None:
        """Bin the values observed since the last read."""
        pending = self._pending
        if not pending:
            return
        values = np.array(pending, dtype=np.float64)
        pending.clear()
        self._bins += np.bincount(_bin_indices(values), minlength=_BINS)
        self._count += len(values)
        self._total += float(values.sum())
        self._min = min(self._min, float(values.min()))
        self._max = max(self._max, float(values.max()))

    def add(self, other: LogHistogram) -> None:
        """Merge ``other``'s observations into this histogram."""
        other.settle()
        self.settle()
        self._bins += other._bins
        self._count += other._count
        self._total += other._total
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    @property
    def count(self) -> int:
        self.settle()
        return self._count

    @property
    def total(self) -> float:
        self.settle()
        return self._total

    @property
    def min(self) -> float:
        self.settle()
        return self._min

    @property
    def max(self) -> float:
        self.settle()
        return self._max

    @property
    def mean(self) -> float:
        self.settle()
        return self._total / self._count if self._count else 0.0

    def quantile(self, q: float) -> float:
        """The q-quantile (0 <= q <= 1); 0.0 for an empty histogram."""
        self.settle()
        if not self._count:
            return 0.0
        if q >= 1.0:
            return self._max
        return min(max(bins_quantile(self._bins, q, self._count), self._min), self._max)

    def bins(self) -> np.ndarray:
        """A copy of the bin counts: the difference of two copies is what was observed in between."""
        self.settle()
        return self._bins.copy()

    def count_below(self, bound: float) -> int:
        """How many observations fell below ``bound`` (exact when ``bound`` is a bin edge)."""
        self.settle()
        return int(self._bins[: _bin_index(bound)].sum())


def bins_quantile(bins: np.ndarray, q: float, count: int | None = None) -> float:
    """The q-quantile of a histogram given by its bin counts (``LogHistogram.bins()`` or a
    difference of two): the midpoint of the bin it falls in, within 1% of the true value."""
    cumulative = np.cumsum(bins)
    count = int(cumulative[-1]) if count is None else count
    if not count:
        return 0.0
    index = int(np.searchsorted(cumulative, q * count, side="right"))
    if index == 0:  # below 100 ns, zeros included
        return 0.0
    return _bin_mid(min(index, _BINS - 1))


@functools.lru_cache(maxsize=1)
def bin_mids() -> np.ndarray:
    """Every bin's midpoint: the value a bin stands for when a histogram is read as samples."""
    mids = np.array([_bin_mid(i) for i in range(_BINS)])
    mids[0] = 0.0  # below 100 ns, zeros included
    mids.flags.writeable = False
    return mids


def _bin_indices(values: np.ndarray) -> np.ndarray:
    """The bin of each value. Exponents are corrected after log10 so that a value on a decade edge
    lands in the same bin whatever the last bit of the platform's log10."""
    values = np.minimum(values, _LARGEST)
    small = values < _SMALLEST
    values = np.where(small, 1.0, values)
    exponent = np.clip(np.floor(np.log10(values)).astype(np.int64), _E_MIN, _E_MAX)
    mantissa = values * _NEG_POW10[exponent - _E_MIN]
    exponent += (mantissa >= 10.0).astype(np.int64) - (mantissa < 1.0).astype(np.int64)
    top = exponent >= _E_MAX
    exponent = np.minimum(exponent, _E_MAX - 1)
    mantissa = values * _NEG_POW10[exponent - _E_MIN]
    step = np.minimum(((mantissa - 1.0) * 100.0 + _EPSILON).astype(np.int64), _PER_DECADE - 1)
    index = (exponent - _E_MIN) * _PER_DECADE + step
    return np.where(small, 0, np.where(top, _BINS - 1, index))


@functools.lru_cache(maxsize=256)  # the bucket bounds of every scrape: a handful of values, many times
def _bin_index(value: float) -> int:
    return int(_bin_indices(np.array([value]))[0])


def _bin_mid(index: int) -> float:
    exponent, step = divmod(index, _PER_DECADE)
    return (1.0 + (step + 0.5) / 100.0) * float(_POW10[exponent])


class EnvironmentStats:
    """What one service environment actor records."""

    __slots__ = (
        "service",
        "environment",
        "requests",
        "latency",
        "queue_wait",
        "cpu_seconds",
        "cpu_limit_exceeded",
        "shed",
        "exceptions",
        "cold_starts",
        "inflight",
        "mailbox_depth",
    )

    def __init__(self, service: str, environment: str) -> None:
        self.service = service
        self.environment = environment
        self.requests: dict[str, list[int]] = {}  # version -> counts by status class
        self.latency = LogHistogram()  # from arrival in the mailbox to the answer
        self.queue_wait = LogHistogram()  # from arrival in the mailbox to a free slot
        self.cpu_seconds = 0.0
        self.cpu_limit_exceeded = 0
        self.shed = 0
        self.exceptions = 0
        self.cold_starts: dict[str, int] = {}
        self.inflight = 0
        self.mailbox_depth = lambda: 0

    @property
    def answered(self) -> int:
        """Calls this environment answered, every version and status together."""
        return sum(map(sum, self.requests.values()))

    def totals(self) -> list[int]:
        """Answers by status class, every version together."""
        return [sum(column) for column in zip(*self.requests.values())] or [0] * len(STATUS_CLASSES)

    def counts(self, version: str) -> list[int]:
        counts = self.requests.get(version)
        if counts is None:
            counts = self.requests[version] = [0] * len(STATUS_CLASSES)
        return counts


class ClientStats:
    """Top-level requests as one traffic group's clients saw them (after routers and retries)."""

    __slots__ = ("requests", "by_class", "latency", "shed", "not_found", "cpu_limit_exceeded", "timeouts", "dropped")

    def __init__(self) -> None:
        self.requests = 0
        self.by_class = [0] * len(STATUS_CLASSES)
        self.latency = LogHistogram()
        self.shed = 0
        self.not_found = 0
        self.cpu_limit_exceeded = 0
        self.timeouts = 0  # requests whose client gave up waiting (counted in requests)
        self.dropped = 0  # arrivals never sent: the group's max_inflight was reached (not in requests)

    @property
    def errors(self) -> int:
        """5xx answers and timeouts: what a user counts as a failure."""
        return self.by_class[4] + self.timeouts

    def add(self, other: ClientStats) -> None:
        """Count ``other``'s requests in this one's."""
        for name in ("requests", "shed", "not_found", "cpu_limit_exceeded", "timeouts", "dropped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_class = [a + b for a, b in zip(self.by_class, other.by_class)]
        self.latency.add(other.latency)


class RunMetrics:
    """Every recorder of one run, keyed by bounded label tuples."""

    def __init__(self) -> None:
        self.environments: dict[str, EnvironmentStats] = {}
        # (caller, binding, target, environment, version, status_class) -> latency
        self.bindings: dict[tuple[str, str, str, str, str, str], LogHistogram] = {}
        self.ingress: dict[tuple[str, str], LogHistogram] = {}  # (service, environment)
        self.request_cpu: dict[str, LogHistogram] = {}  # entry service -> CPU of whole chains
        self.canary_weights: dict[tuple[str, str], float] = {}
        self.retries: dict[tuple[str, str, str], int] = {}  # (service, from, to)
        self.rollout_checks: dict[tuple[str, str], int] = {}  # (service, verdict) -> rollout analyses
        self.rollout_phase: dict[tuple[str, str], float] = {}  # (service, phase) -> 1 for the current one
        self.retries_denied: dict[tuple[str, str], int] = {}  # (service, from): failures the budget left unretried
        # (service, environment first chosen by its router) -> what callers finally got, by status class
        self.routed: dict[tuple[str, str], list[int]] = {}
        # traffic group ("http" for requests from the live ingress) -> what its clients saw
        self.groups: dict[str, ClientStats] = {}
        # entry service ("" when no route matched) -> top-level answers by status class
        self.answers: dict[str, list[int]] = {}
        self.timeouts: dict[str, int] = {}  # entry service -> requests whose client gave up
        # live: HTTP status -> requests refused at the door; the usual statuses exist from the start, so
        # a dashboard shows 0 rather than "no data" (h11 may hint others for rare malformations)
        self.ingress_rejected: dict[int, int] = dict.fromkeys(INGRESS_REFUSALS, 0)

    def environment(self, service: str, environment: str) -> EnvironmentStats:
        key = f"{service}@{environment}"
        stats = self.environments.get(key)
        if stats is None:
            stats = self.environments[key] = EnvironmentStats(service, environment)
        return stats

    def count_routed(self, service: str, environment: str, status: int) -> None:
        counts = self.routed.get((service, environment))
        if counts is None:
            counts = self.routed[(service, environment)] = [0] * len(STATUS_CLASSES)
        counts[status_class(status)] += 1

    def group(self, name: str) -> ClientStats:
        stats = self.groups.get(name)
        if stats is None:
            stats = self.groups[name] = ClientStats()
        return stats

    @property
    def clients(self) -> ClientStats:
        """Every group's clients together (a new merged copy: read it, do not record into it)."""
        total = ClientStats()
        for stats in self.groups.values():
            total.add(stats)
        return total

    def histograms(self) -> Iterator[LogHistogram]:
        for stats in self.environments.values():
            yield stats.latency
            yield stats.queue_wait
        for table in (self.bindings, self.ingress, self.request_cpu):
            yield from table.values()
        for stats in self.groups.values():
            yield stats.latency

    def settle(self) -> None:
        """Bin every histogram's waiting values: keeps memory bounded on a long run."""
        for hist in self.histograms():
            hist.settle()

    def histogram(self, table: dict, key: object) -> LogHistogram:
        hist = table.get(key)
        if hist is None:
            hist = table[key] = LogHistogram()
        return hist


def _histogram_family(
    name: str, doc: str, labels: list[str], series: Iterable[tuple[tuple[str, ...], LogHistogram]], bounds: tuple[float, ...]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, hist in series:
        buckets = [(repr(bound), float(hist.count_below(bound))) for bound in bounds]
        buckets.append(("+Inf", float(hist.count)))
        family.add_metric(list(values), buckets, hist.total)
    return family


def _keyed(kind: type, name: str, doc: str, labels: list[str], table: dict[tuple[str, ...], float]) -> Metric:
    """A family whose samples are a table keyed by their label values."""
    family = kind(name, doc, labels=labels)
    for values, value in table.items():
        family.add_metric(list(values), value)
    return family


class RunCollector(Collector):
    """Exports a ``RunMetrics`` as Prometheus metric families, read at scrape time."""

    def __init__(self, run: RunMetrics) -> None:
        self.run = run

    def collect(self) -> Iterator[Metric]:
        run = self.run
        envs = list(run.environments.values())
        se = ["service", "environment"]

        requests = CounterMetricFamily(
            "edge_requests", "Requests answered by a service environment, per attempt.",
            labels=["service", "environment", "version", "status_class"],
        )
        for s in envs:
            for version, counts in s.requests.items():
                for cls, n in zip(STATUS_CLASSES, counts):
                    if n:
                        requests.add_metric([s.service, s.environment, version, cls], n)
        yield requests

        yield _histogram_family(
            "edge_request_duration_seconds",
            "Latency of top-level requests at the ingress, by the environment that answered.",
            se, (((svc, env), h) for (svc, env), h in run.ingress.items()), LATENCY_BUCKETS,
        )
        answers = CounterMetricFamily(
            "edge_client_requests",
            "Top-level requests by entry service and the status the client got, after routing and "
            "fallbacks (service is empty when no route matched).",
            labels=["service", "status_class"],
        )
        for service, counts in run.answers.items():
            for cls, n in zip(STATUS_CLASSES, counts):
                if n:
                    answers.add_metric([service, cls], n)
        yield answers

        yield _histogram_family(
            "edge_environment_duration_seconds",
            "Latency of the calls a service environment answered (per attempt), from its mailbox to its answer.",
            se, (((s.service, s.environment), s.latency) for s in envs), LATENCY_BUCKETS,
        )
        yield _histogram_family(
            "edge_binding_duration_seconds",
            "Latency of service-binding calls as the caller saw them.",
            ["caller", "binding", "target", "environment", "version", "status_class"],
            run.bindings.items(), LATENCY_BUCKETS,
        )
        yield _histogram_family(
            "edge_queue_wait_seconds",
            "Time a call waited in an environment's mailbox for a free slot.",
            se, (((s.service, s.environment), s.queue_wait) for s in envs), LATENCY_BUCKETS,
        )
        yield _histogram_family(
            "edge_request_cpu_seconds",
            "CPU time of a whole chain (every worker reached through bindings) per top-level request.",
            ["service"], (((svc,), h) for svc, h in run.request_cpu.items()), CPU_BUCKETS,
        )

        def per_env(kind, name: str, doc: str, value) -> Metric:
            family = kind(name, doc, labels=se)
            for s in envs:
                family.add_metric([s.service, s.environment], value(s))
            return family

        yield per_env(CounterMetricFamily, "edge_cpu_seconds", "CPU time spent by a service environment.", lambda s: s.cpu_seconds)
        yield per_env(CounterMetricFamily, "edge_cpu_limit_exceeded", "Top-level requests whose CPU budget ran out in this environment.", lambda s: s.cpu_limit_exceeded)
        yield per_env(CounterMetricFamily, "edge_shed", "Calls refused because the environment's mailbox was full (503).", lambda s: s.shed)
        yield per_env(CounterMetricFamily, "edge_worker_exceptions", "Worker code that raised (answered 500, error 1101).", lambda s: s.exceptions)
        yield per_env(GaugeMetricFamily, "edge_mailbox_depth", "Calls waiting in the environment's mailbox.", lambda s: s.mailbox_depth())
        yield per_env(GaugeMetricFamily, "edge_inflight", "Calls being served by the environment.", lambda s: s.inflight)

        cold = CounterMetricFamily(
            "edge_cold_starts", "Calls that found no warm slot and paid a cold start.",
            labels=["service", "environment", "version"],
        )
        for s in envs:
            for version, n in s.cold_starts.items():
                cold.add_metric([s.service, s.environment, version], n)
        yield cold

        weights = GaugeMetricFamily("edge_canary_weight", "Percent of a service's traffic routed to an environment.", labels=se)
        for (svc, env), pct in run.canary_weights.items():
            weights.add_metric([svc, env], pct)
        yield weights

        timeouts = CounterMetricFamily(
            "edge_client_timeouts", "Top-level requests whose client gave up waiting (its timeout), by entry service.",
            labels=["service"],
        )
        for service, n in sorted(run.timeouts.items()):
            timeouts.add_metric([service], n)
        yield timeouts
        dropped = CounterMetricFamily(
            "edge_client_dropped", "Arrivals an open traffic group could not send: max_inflight requests were outstanding.",
            labels=["group"],
        )
        for group, stats in sorted(run.groups.items()):
            dropped.add_metric([group], stats.dropped)
        yield dropped

        rejected = CounterMetricFamily(
            "edge_ingress_rejected",
            "Live: requests the HTTP ingress answered itself, never reaching a service (400 malformed, "
            "408 too slow, 413 body too large, 431 head too large).",
            labels=["status"],
        )
        for status, n in sorted(run.ingress_rejected.items()):
            rejected.add_metric([str(status)], n)
        yield rejected

        yield _keyed(
            CounterMetricFamily, "edge_retries", "Requests retried on another environment after a failed attempt.",
            ["service", "from_environment", "to_environment"], run.retries,
        )

        yield _keyed(
            CounterMetricFamily, "edge_retries_denied", "Failed attempts not retried because the split's retry budget was spent.",
            ["service", "from_environment"], run.retries_denied,
        )
        yield _keyed(
            CounterMetricFamily, "edge_rollout_checks", "Analyses of a rollout's canary, by verdict (pass, fail, no_data, hold, rollback).",
            ["service", "verdict"], run.rollout_checks,
        )
        yield _keyed(
            GaugeMetricFamily, "edge_rollout_phase",
            "1 for a rollout's current phase (pending, progressing, waiting, promoted, rolled back), else 0.",
            ["service", "phase"], run.rollout_phase,
        )

        routed = CounterMetricFamily(
            "edge_routed_requests",
            "Calls a router sent first to an environment, by the status the caller finally got (after any "
            "fallback): the effective outcome per environment, where edge_requests_total is per attempt.",
            labels=["service", "environment", "status_class"],
        )
        for (svc, env), counts in run.routed.items():
            for cls, n in zip(STATUS_CLASSES, counts):
                if n:
                    routed.add_metric([svc, env, cls], n)
        yield routed


def registry_for(run: RunMetrics) -> CollectorRegistry:
    """A registry of its own per run: runs in one process never mix their metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(run))
    return registry
