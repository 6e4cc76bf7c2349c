"""A run's recorders as Prometheus metric families, built at scrape time.

Names, types, help texts, labels and bucket bounds come from ``edge.metrics.families``; this module
only says where each family's samples are in a ``RunMetrics``. Actors, the engine, scenarios and the
platform never import it (a forbidden contract in ``.importlinter``): they record plain numbers.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from edge.metrics import families as fam
from edge.metrics.histogram import LogHistogram
from edge.metrics.recorders import STATUS_CLASSES, EnvironmentStats, RunMetrics

# A family's samples: its label values (in the declared label order) and a number, or for a
# histogram the LogHistogram its buckets are read from.
Samples = Iterable[tuple[Sequence[str], float | LogHistogram]]

_KINDS: dict[str, type[Metric]] = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}


def _by_status_class(table: Iterable[tuple[tuple[str, ...], list[int]]]) -> Iterator[tuple[tuple[str, ...], int]]:
    """One sample per status class that has answers: a class never answered has no series yet."""
    for labels, counts in table:
        for cls, n in zip(STATUS_CLASSES, counts):
            if n:
                yield (*labels, cls), n


def _per_environment(value: Callable[[EnvironmentStats], float | LogHistogram]) -> Callable[[RunMetrics], Samples]:
    return lambda run: (((s.service, s.environment), value(s)) for s in run.environments.values())


def _sorted(table: dict[str, int] | dict[int, int]) -> Samples:
    """A table keyed by one label value, in order of its keys."""
    return (((str(key),), value) for key, value in sorted(table.items()))


# Where each declared family's samples are in the recorders. Which series exist (a status class only
# once answered, refusals at 0 from the start) is the recorders' business: this only reads them.
_SAMPLES: dict[fam.Family, Callable[[RunMetrics], Samples]] = {
    fam.REQUESTS: lambda run: _by_status_class(
        ((s.service, s.environment, version), counts) for s in run.environments.values() for version, counts in s.requests.items()
    ),
    fam.REQUEST_DURATION: lambda run: run.ingress.items(),
    fam.CLIENT_REQUESTS: lambda run: _by_status_class(((service,), counts) for service, counts in run.answers.items()),
    fam.ENVIRONMENT_DURATION: _per_environment(lambda s: s.latency),
    fam.BINDING_DURATION: lambda run: run.bindings.items(),
    fam.QUEUE_WAIT: _per_environment(lambda s: s.queue_wait),
    fam.REQUEST_CPU: lambda run: (((service,), hist) for service, hist in run.request_cpu.items()),
    fam.CPU: _per_environment(lambda s: s.cpu_seconds),
    fam.CPU_LIMIT_EXCEEDED: _per_environment(lambda s: s.cpu_limit_exceeded),
    fam.SHED: _per_environment(lambda s: s.shed),
    fam.WORKER_EXCEPTIONS: _per_environment(lambda s: s.exceptions),
    fam.WORKER_STALLS: _per_environment(lambda s: s.stalls),
    fam.MAILBOX_DEPTH: _per_environment(lambda s: s.mailbox_depth()),
    fam.INFLIGHT: _per_environment(lambda s: s.inflight),
    fam.TASKS: lambda run: [((), run.tasks)],
    fam.INGRESS_IN_FLIGHT: lambda run: [((), run.ingress_in_flight)],
    fam.ADMISSION_LIMIT: lambda run: [((), run.admission_limit)],
    fam.COLD_STARTS: lambda run: (
        ((s.service, s.environment, version), n) for s in run.environments.values() for version, n in s.cold_starts.items()
    ),
    fam.ISOLATE_EVICTIONS: lambda run: (
        ((s.service, s.environment, reason), n) for s in run.environments.values() for reason, n in s.isolate_evictions().items()
    ),
    fam.CANARY_WEIGHT: lambda run: run.canary_weights.items(),
    fam.CLIENT_TIMEOUTS: lambda run: _sorted(run.timeouts),
    fam.CLIENT_DROPPED: lambda run: (((group,), stats.dropped) for group, stats in sorted(run.groups.items())),
    fam.INGRESS_REJECTED: lambda run: _sorted(run.ingress_rejected),
    fam.INGRESS_FAULTS: lambda run: _sorted(run.ingress_faults),
    fam.RETRIES: lambda run: run.retries.items(),
    fam.RETRIES_DENIED: lambda run: run.retries_denied.items(),
    fam.ROLLOUT_CHECKS: lambda run: run.rollout_checks.items(),
    fam.ROLLOUT_PHASE: lambda run: run.rollout_phase.items(),
    fam.ROUTED_REQUESTS: lambda run: _by_status_class(run.routed.items()),
}


def _metric_family(family: fam.Family, samples: Samples) -> Metric:
    """The prometheus-client family of a declaration, with these samples."""
    metric = _KINDS[family.kind](family.name, family.help, labels=list(family.labels))
    for values, value in samples:
        if isinstance(value, LogHistogram):
            buckets = [(repr(bound), float(value.count_below(bound))) for bound in family.buckets]
            buckets.append(("+Inf", float(value.count)))
            metric.add_metric(list(values), buckets, value.total)
        else:
            metric.add_metric(list(values), value)
    return metric


class RunCollector(Collector):
    """Exports a ``RunMetrics`` as Prometheus metric families, read at scrape time."""

    def __init__(self, run: RunMetrics) -> None:
        self.run = run

    def collect(self) -> Iterator[Metric]:
        for family in fam.FAMILIES:
            yield _metric_family(family, _SAMPLES[family](self.run))


def registry_for(run: RunMetrics) -> CollectorRegistry:
    """A registry of its own per run: runs in one process never mix their metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(run))
    return registry
