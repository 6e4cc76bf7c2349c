"""A run over time: per-interval figures for the report's plots and its JSON ``series``.

Every ``interval`` simulated seconds the recorder reads the run's recorders and keeps what changed
since the last reading: counts as differences, and quantiles from the difference of two copies of
a histogram's bins, so each point describes that interval alone (as a PromQL ``rate`` or
``histogram_quantile`` over the interval would), with the histogram's 1% resolution. The columns
are plain lists, one value per interval, so the JSON stays small and a plot takes them as they are.
"""

from __future__ import annotations

import functools

import msgspec

from edge.platform.clock import ModelClock
from edge.metrics.histogram import Bins, LogHistogram, bin_indices_of, quantiles_of_values
from edge.metrics.recorders import RunMetrics
from edge.scenario.values import EnvironmentKey

NICE_INTERVALS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
TARGET_POINTS = 120


def default_interval(duration: float) -> float:
    """The smallest round interval giving at most ``TARGET_POINTS`` points over ``duration``."""
    for interval in NICE_INTERVALS:
        if duration / interval <= TARGET_POINTS:
            return float(interval)
    return float(NICE_INTERVALS[-1])


class EnvironmentSeries(msgspec.Struct):
    """One service environment, per attempt (what it answered, retries included)."""

    requests: list[int]
    """Answers in the interval: the samples its latency quantiles are read from."""
    errors: list[int]
    """5xx answers."""
    shed: list[int]
    latency_p50_s: list[float]
    latency_p90_s: list[float]
    latency_p99_s: list[float]
    cpu_s: list[float]
    """CPU time the environment used in the interval."""


class ClientSeries(msgspec.Struct):
    """Top-level requests as clients saw them."""

    requests: list[int]
    errors: list[int]
    """5xx answers, timeouts and (in the last interval) requests never answered."""
    timeouts: list[int]
    dropped: list[int]
    latency_p50_s: list[float]
    latency_p99_s: list[float]
    cpu_per_request_p50_s: list[float]
    cpu_per_request_p99_s: list[float]
    latency_samples: list[int] = msgspec.field(default_factory=list)
    """Answers the interval's latency quantiles were read from (a report from before these were
    kept has none: its ``requests`` stand in)."""
    cpu_samples: list[int] = msgspec.field(default_factory=list)
    """Top-level requests whose CPU the interval's CPU quantiles were read from."""


class Series(msgspec.Struct):
    interval_s: float
    end_s: list[float]
    """Each interval's end, simulated seconds from the start (the last may be shorter: the drain)."""
    clients: ClientSeries
    environments: dict[str, EnvironmentSeries]
    weights: dict[str, list[float]]
    """"service@environment" -> percent of the service's traffic, at each interval's end."""


def _round(x: float) -> float:
    return float(f"{x:.6g}")


_round_quantile = functools.lru_cache(maxsize=None)(_round)
"""``_round`` of a quantile read from bins: one of the bins' midpoints (about 10,000 values), each
formatted once rather than at every reading."""


class _Window:
    """The bins of some histograms at the last reading; ``take`` gives what came since."""

    __slots__ = ("last", "added", "seen")

    def __init__(self) -> None:
        self.last = Bins()
        self.added: list[float] = []  # values read since ``last`` was brought up to date (``quantiles``)
        self.seen = 0  # values a single histogram had observed at the last reading

    def take(self, histograms: list[LogHistogram]) -> Bins:
        single = len(histograms) == 1
        now = histograms[0].bins() if single else sum((h.bins() for h in histograms), Bins())
        since = now - self._brought_up_to_date()
        self.last = now
        self.seen = histograms[0].observed if single else 0  # ``quantiles`` reads one histogram only
        return since

    def quantiles(self, histogram: LogHistogram, qs: tuple[float, ...]) -> list[float]:
        """``take([histogram]).quantiles(qs)``. When the window's values are a handful still
        waiting unbinned, they are read as they are, and the bins of the last reading are only
        brought up to date when ``take`` needs them: a topology of 10,000 services has tens of
        thousands of such windows, and copying and subtracting counts for each was most of what
        its series cost."""
        since = histogram.observed - self.seen
        values = histogram.latest(since)
        if values is None:
            return self.take([histogram]).quantiles(qs)
        self.added += values
        if len(self.added) > _ADDED_LIMIT:
            self._brought_up_to_date()
        self.seen += since
        return quantiles_of_values(values, qs)

    def _brought_up_to_date(self) -> Bins:
        if self.added:
            self.last, self.added = self.last.adding(bin_indices_of(self.added)), []
        return self.last


_ADDED_LIMIT = 1024
"""Values read by ``_Window.quantiles`` that wait to be added to the last reading's bins: bounds
the memory of a window that is never ``take``n. They are binned only then, most windows of a
large topology never are, and reading a window bins only the values its quantiles fall on."""


class _Readings:
    """An environment's counters at the last reading, its latency window, and its columns."""

    __slots__ = ("answered", "errors", "shed", "cpu", "latency", "columns")

    def __init__(self, columns: EnvironmentSeries) -> None:
        self.answered = self.errors = self.shed = 0
        self.cpu = 0.0
        self.latency = _Window()
        self.columns = columns


class SeriesRecorder:
    """Reads a run's metrics every ``interval`` simulated seconds (a chain of clock callbacks)."""

    def __init__(self, metrics: RunMetrics, clock: ModelClock, interval: float, until: float) -> None:
        if interval <= 0:
            raise ValueError(f"expected a positive series interval, got {interval}")
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self.until = until
        self.series = Series(
            interval_s=interval, end_s=[],
            clients=ClientSeries([], [], [], [], [], [], [], []), environments={}, weights={},
        )
        self._counts: dict[str, float] = {}  # counter -> its value at the last reading
        self._windows: dict[str, _Window] = {}
        self._environments: dict[EnvironmentKey, _Readings] = {}
        self._last = 0.0

    def begin(self) -> None:
        self.clock.call_later(self.interval, self.take)

    def take(self) -> None:
        """Record the interval that ends now; then schedule the next."""
        now = self.clock.now()
        if now <= self._last:  # the end of the run fell on a scheduled reading
            return
        self._last = now
        self._record(now)
        if now + self.interval <= self.until:
            self.clock.call_later(self.interval, self.take)

    def _delta(self, key: str, value: float) -> float:
        before = self._counts.get(key, 0)
        self._counts[key] = value
        return value - before

    def _bins(self, key: str, histograms: list[LogHistogram]) -> Bins:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
        return window.take(histograms)

    def _record(self, now: float) -> None:
        series, metrics = self.series, self.metrics
        points = len(series.end_s)
        series.end_s.append(_round(now))

        groups = list(metrics.groups.values())
        c = series.clients
        c.requests.append(int(self._delta("clients.requests", sum(g.requests for g in groups))))
        c.errors.append(int(self._delta("clients.errors", sum(g.errors for g in groups))))
        c.timeouts.append(int(self._delta("clients.timeouts", sum(g.timeouts for g in groups))))
        c.dropped.append(int(self._delta("clients.dropped", sum(g.dropped for g in groups))))
        latency = self._bins("clients.latency", [g.latency for g in groups])
        c.latency_p50_s.append(_round_quantile(latency.quantile(0.5)))
        c.latency_p99_s.append(_round_quantile(latency.quantile(0.99)))
        c.latency_samples.append(latency.count)
        cpu = self._bins("clients.cpu", list(metrics.request_cpu.values()))
        c.cpu_per_request_p50_s.append(_round_quantile(cpu.quantile(0.5)))
        c.cpu_per_request_p99_s.append(_round_quantile(cpu.quantile(0.99)))
        c.cpu_samples.append(cpu.count)

        readings = self._environments
        quantiles = (0.5, 0.9, 0.99)
        for key, stats in metrics.environments.items():
            last = readings.get(key)
            if last is None:  # an environment's first call: earlier intervals had nothing from it
                e = series.environments[str(key)] = EnvironmentSeries(*([0] * points for _ in range(3)), *([0.0] * points for _ in range(4)))
                last = readings[key] = _Readings(e)
            else:
                e = last.columns
            answered, shed, cpu = stats.answered, stats.shed, stats.cpu_seconds
            e.shed.append(shed - last.shed)
            if answered == last.answered:
                # Nothing answered, so nothing observed: no errors, and an empty window's quantiles
                # are 0 (as its bins would say). A large topology has many such environments each
                # interval, and reading their histograms was most of what the series cost.
                e.requests.append(0)
                e.errors.append(0)
                e.latency_p50_s.append(0.0)
                e.latency_p90_s.append(0.0)
                e.latency_p99_s.append(0.0)
            else:
                e.requests.append(answered - last.answered)
                by_version = stats.requests
                if len(by_version) == 1:
                    errors = next(iter(by_version.values()))[4]
                else:
                    errors = sum(counts[4] for counts in by_version.values())
                e.errors.append(errors - last.errors)
                p50, p90, p99 = last.latency.quantiles(stats.latency, quantiles)
                e.latency_p50_s.append(_round_quantile(p50))
                e.latency_p90_s.append(_round_quantile(p90))
                e.latency_p99_s.append(_round_quantile(p99))
                last.errors = errors
                last.answered = answered
            e.cpu_s.append(0.0 if cpu == last.cpu else _round(cpu - last.cpu))
            last.shed, last.cpu = shed, cpu

        for (service, environment), percent in metrics.canary_weights.items():
            column = series.weights.setdefault(str(EnvironmentKey(service, environment)), [0.0] * points)
            column.append(percent)
