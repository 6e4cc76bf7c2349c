"""The hot-path recorders: what actors, routers and clients write to during a run.

Actors write plain numbers and ``LogHistogram`` bins, keyed by bounded label tuples (service,
environment, version, binding names and status classes: never a path, an id or a secret). Nothing
here knows Prometheus: ``edge.metrics.exposition`` reads these tables when somebody scrapes, and
the report and series read them directly.
"""

from __future__ import annotations

from typing import Callable, Iterator

from edge.metrics.histogram import LogHistogram
from edge.scenario.values import EnvironmentKey

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

# malformed, too slow, body too large, head too large, overloaded (shed), HTTP version not supported
INGRESS_REFUSALS = (400, 408, 413, 431, 503, 505)
# answers a worker gave that HTTP/1.1 cannot carry (sent as 500), clients that never read (dropped)
INGRESS_FAULTS = ("invalid_response", "write_timeout")


def status_class(status: int) -> int:
    """Index into ``STATUS_CLASSES`` of an HTTP status."""
    return status // 100 - 1


SETTLE_FROM = 128
"""``RunMetrics.settle`` bins a histogram's waiting values from this many."""


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
        "stalls",
        "stopped_at",
        "unrun",
        "cold_starts",
        "isolate_evictions",
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
        self.stalls = 0  # worker steps the watchdog interrupted for holding the event loop
        # Virtual time: when a stall stopped the environment's worker for the rest of the run, and
        # the calls answered 1102 since without running it (``EnvironmentActor._serve``).
        self.stopped_at: float | None = None
        self.unrun = 0
        self.cold_starts: dict[str, int] = {}
        # Warm isolates dropped, by reason ("capacity", "expired"), read when asked: an isolate's
        # keep_warm runs out with nothing happening. Empty for an environment without cold starts.
        self.isolate_evictions: Callable[[], dict[str, int]] = dict
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

    __slots__ = ("requests", "by_class", "latency", "shed", "not_found", "unknown_environment", "cpu_limit_exceeded", "timeouts", "dropped",
                 "unanswered", "waiting")

    def __init__(self) -> None:
        self.requests = 0
        self.by_class = [0] * len(STATUS_CLASSES)
        self.latency = LogHistogram()
        self.shed = 0
        self.not_found = 0
        self.unknown_environment = 0  # 400: the override header named no environment of the service
        self.cpu_limit_exceeded = 0
        self.timeouts = 0  # requests whose client gave up waiting (counted in requests)
        self.dropped = 0  # arrivals never sent: the group's max_inflight was reached (not in requests)
        # requests still without an answer (or a timeout) when the run ended: counted in requests
        # and errors, with no latency (they have none to observe)
        self.unanswered = 0
        self.waiting = 0  # sent and routed, no answer and no timeout yet

    @property
    def errors(self) -> int:
        """5xx answers, timeouts and requests never answered: what a user counts as a failure."""
        return self.by_class[4] + self.timeouts + self.unanswered

    def add(self, other: ClientStats) -> None:
        """Count ``other``'s requests in this one's."""
        for name in ("requests", "shed", "not_found", "unknown_environment", "cpu_limit_exceeded", "timeouts", "dropped", "unanswered", "waiting"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_class = [a + b for a, b in zip(self.by_class, other.by_class)]
        self.latency.add(other.latency)


class RunMetrics:
    """Every recorder of one run, keyed by bounded label tuples."""

    def __init__(self) -> None:
        self.environments: dict[EnvironmentKey, EnvironmentStats] = {}
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
        self.ingress_faults: dict[str, int] = dict.fromkeys(INGRESS_FAULTS, 0)  # kind -> count, live
        self.tasks = 0  # live: trio tasks alive, counted by the server before each scrape
        self.ingress_in_flight = 0  # live: read from the ingress before each scrape
        self.admission_limit = 0

    def environment(self, service: str, environment: str) -> EnvironmentStats:
        key = EnvironmentKey(service, environment)
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
        """Bin the waiting values of every histogram with many: keeps memory bounded on a long
        run. One with a few waits for its next reading: binning a handful costs about as much as
        binning thousands, and a topology of 10,000 services keeps 30,000 histograms holding a few
        values each (settling them all every 4,096 requests was a fifth of its run). At most
        ``SETTLE_FROM`` - 1 values wait in each: 1 KiB."""
        for hist in self.histograms():
            if hist.waiting >= SETTLE_FROM:
                hist.settle()

    def histogram(self, table: dict, key: object) -> LogHistogram:
        hist = table.get(key)
        if hist is None:
            hist = table[key] = LogHistogram()
        return hist
