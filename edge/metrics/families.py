"""Every metric family edge exports, declared once, as data.

The exposition (``edge.metrics.exposition``) builds its Prometheus families from these
declarations, ``grafana/generate.py`` takes the names its PromQL selects from them, and the tests
hold the metrics table of ``docs/architecture.md`` and every ``edge_*`` name the docs and
dashboards mention to them: a family renamed, relabelled or added here cannot silently leave the
others behind. Nothing here imports prometheus-client, so a module that only needs a name does not
pull the exposition in.

Label values are bounded (service, environment, version, binding names, status classes, verdicts,
phases: never a path, an id or a secret), so a long run does not grow the number of series.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]

# Upper bounds of the exported ``le`` buckets. Each is of the form d.dd x 10^e, an exact bin edge of
# ``LogHistogram``, so the exported buckets count exactly what was observed.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CPU_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)

_NAME = re.compile(r"edge_[a-z][a-z0-9_]*")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclasses.dataclass(frozen=True, slots=True)
class Family:
    """One metric family. ``name`` is what PromQL selects: a counter's ends in ``_total`` (the sample
    name in both exposition formats), a histogram's is the stem of its ``_bucket``/``_sum``/``_count``."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()  # a histogram's ``le`` bounds; "+Inf" is added by the exposition

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"{self.name!r}: a metric family is named edge_<thing>[_<unit>]")
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name!r}: counters, and only counters, end in _total")
        if (self.kind == "histogram") != bool(self.buckets):
            raise ValueError(f"{self.name!r}: histograms, and only histograms, have buckets")

    @property
    def samples(self) -> tuple[str, ...]:
        """The names Prometheus stores this family's series under."""
        if self.kind == "histogram":
            return tuple(self.name + suffix for suffix in _HISTOGRAM_SUFFIXES)
        return (self.name,)

    def sample(self, suffix: str) -> str:
        """A histogram's ``_bucket``, ``_sum`` or ``_count`` series name."""
        name = self.name + suffix
        if name not in self.samples:
            raise ValueError(f"{self.name} ({self.kind}) has no series {name}")
        return name


_SE = ("service", "environment")

REQUESTS = Family(
    "edge_requests_total", "counter", "Requests answered by a service environment, per attempt.",
    ("service", "environment", "version", "status_class"),
)
REQUEST_DURATION = Family(
    "edge_request_duration_seconds", "histogram",
    "Latency of top-level requests at the ingress, by the environment that answered.", _SE, LATENCY_BUCKETS,
)
CLIENT_REQUESTS = Family(
    "edge_client_requests_total", "counter",
    "Top-level requests by entry service and the status the client got, after routing and "
    "fallbacks (service is empty when no route matched).",
    ("service", "status_class"),
)
ENVIRONMENT_DURATION = Family(
    "edge_environment_duration_seconds", "histogram",
    "Latency of the calls a service environment answered (per attempt), from its mailbox to its answer.",
    _SE, LATENCY_BUCKETS,
)
BINDING_DURATION = Family(
    "edge_binding_duration_seconds", "histogram", "Latency of service-binding calls as the caller saw them.",
    ("caller", "binding", "target", "environment", "version", "status_class"), LATENCY_BUCKETS,
)
QUEUE_WAIT = Family(
    "edge_queue_wait_seconds", "histogram", "Time a call waited in an environment's mailbox for a free slot.",
    _SE, LATENCY_BUCKETS,
)
REQUEST_CPU = Family(
    "edge_request_cpu_seconds", "histogram",
    "CPU time of a whole chain (every worker reached through bindings) per top-level request.",
    ("service",), CPU_BUCKETS,
)
CPU = Family("edge_cpu_seconds_total", "counter", "CPU time spent by a service environment.", _SE)
CPU_LIMIT_EXCEEDED = Family(
    "edge_cpu_limit_exceeded_total", "counter", "Top-level requests whose CPU budget ran out in this environment.", _SE,
)
SHED = Family("edge_shed_total", "counter", "Calls refused because the environment's mailbox was full (503).", _SE)
WORKER_EXCEPTIONS = Family("edge_worker_exceptions_total", "counter", "Worker code that raised (answered 500, error 1101).", _SE)
WORKER_STALLS = Family(
    "edge_worker_stalls_total", "counter",
    "Worker steps interrupted for holding the event loop past the step wall-time limit (503, error 1102).", _SE,
)
MAILBOX_DEPTH = Family("edge_mailbox_depth", "gauge", "Calls waiting in the environment's mailbox.", _SE)
INFLIGHT = Family("edge_inflight", "gauge", "Calls being served by the environment.", _SE)
TASKS = Family(
    "edge_tasks", "gauge",
    "Live: trio tasks alive in the server (actors, slots, connections, timers), read at scrape time; "
    "0 in a simulation. Flat under steady load: a rise that stays is a leak.", (),
)
INGRESS_IN_FLIGHT = Family(
    "edge_ingress_in_flight", "gauge",
    "Live: requests in the handler, read at scrape time (the scrape itself included); at most "
    "edge_ingress_admission_limit. 0 in a simulation.", (),
)
ADMISSION_LIMIT = Family(
    "edge_ingress_admission_limit", "gauge",
    "Live: requests the ingress lets in flight: the adaptive limit (it shrinks while every request of an "
    "interval waited over the queue-delay target, and grows back), or max_in_flight with admission "
    "control off. 0 in a simulation.", (),
)
COLD_STARTS = Family(
    "edge_cold_starts_total", "counter", "Calls that found no warm isolate and paid a cold start.",
    ("service", "environment", "version"),
)
ISOLATE_EVICTIONS = Family(
    "edge_isolate_evictions_total", "counter",
    "Warm isolates an environment dropped: capacity (one more idle than max_isolates, least recently "
    "used first) or expired (idle for keep_warm).",
    ("service", "environment", "reason"),
)
CANARY_WEIGHT = Family("edge_canary_weight", "gauge", "Percent of a service's traffic routed to an environment.", _SE)
CLIENT_TIMEOUTS = Family(
    "edge_client_timeouts_total", "counter",
    "Top-level requests whose client gave up waiting (its timeout), by entry service.", ("service",),
)
CLIENT_DROPPED = Family(
    "edge_client_dropped_total", "counter",
    "Arrivals an open traffic group could not send: max_inflight requests were outstanding.", ("group",),
)
INGRESS_REJECTED = Family(
    "edge_ingress_rejected_total", "counter",
    "Live: requests the HTTP ingress answered itself, never reaching a service (400 malformed, "
    "408 too slow, 413 body too large, 431 head too large, 503 overloaded: shed with Retry-After, "
    "505 HTTP version not supported).",
    ("status",),
)
INGRESS_FAULTS = Family(
    "edge_ingress_faults_total", "counter",
    "Live: what the HTTP ingress absorbed so one connection's fault stays its own (invalid_response: a "
    "worker's answer HTTP/1.1 cannot carry, sent as 500; write_timeout: a client that did not read its "
    "answers, dropped).",
    ("kind",),
)
RETRIES = Family(
    "edge_retries_total", "counter", "Requests retried on another environment after a failed attempt.",
    ("service", "from_environment", "to_environment"),
)
RETRIES_DENIED = Family(
    "edge_retries_denied_total", "counter", "Failed attempts not retried because the split's retry budget was spent.",
    ("service", "from_environment"),
)
ROLLOUT_CHECKS = Family(
    "edge_rollout_checks_total", "counter",
    "Analyses of a rollout's canary, by verdict (pass, fail, no_data, hold, rollback).", ("service", "verdict"),
)
ROLLOUT_PHASE = Family(
    "edge_rollout_phase", "gauge",
    "1 for a rollout's current phase (pending, progressing, waiting, promoted, rolled back), else 0.",
    ("service", "phase"),
)
ROUTED_REQUESTS = Family(
    "edge_routed_requests_total", "counter",
    "Calls a router sent first to an environment, by the status the caller finally got (after any "
    "fallback): the effective outcome per environment, where edge_requests_total is per attempt.",
    ("service", "environment", "status_class"),
)

# In the order a scrape lists them.
FAMILIES = (
    REQUESTS, REQUEST_DURATION, CLIENT_REQUESTS, ENVIRONMENT_DURATION, BINDING_DURATION, QUEUE_WAIT, REQUEST_CPU,
    CPU, CPU_LIMIT_EXCEEDED, SHED, WORKER_EXCEPTIONS, WORKER_STALLS, MAILBOX_DEPTH, INFLIGHT, TASKS, INGRESS_IN_FLIGHT, ADMISSION_LIMIT, COLD_STARTS, ISOLATE_EVICTIONS,
    CANARY_WEIGHT,
    CLIENT_TIMEOUTS, CLIENT_DROPPED, INGRESS_REJECTED, INGRESS_FAULTS, RETRIES, RETRIES_DENIED, ROLLOUT_CHECKS, ROLLOUT_PHASE,
    ROUTED_REQUESTS,
)

# Exported by ``edge serve --traffic`` alone, read from its load generator (edge/live/loadgen.py):
# the client's side of a live run, which the platform's families cannot show. A generator behind its
# schedule sends less than the scenario says, which would otherwise pass for a server answering less.
LOADGEN_PLANNED = Family(
    "edge_loadgen_planned_total", "counter",
    "Live, edge serve --traffic: requests due so far by a traffic group's schedule (its arrivals, or its "
    "closed users' think times ended).", ("group",),
)
LOADGEN_SENT = Family(
    "edge_loadgen_sent_total", "counter",
    "Live, edge serve --traffic: requests the load generator sent (written to a connection, or given up when "
    "none could be opened); rate of this over rate of edge_loadgen_planned_total is the share of the schedule sent.",
    ("group",),
)
LOADGEN_LAG = Family(
    "edge_loadgen_lag_seconds", "gauge",
    "Live, edge serve --traffic: how far behind its schedule the load generator is: the time since the oldest "
    "request due and not yet sent fell due (0 on time), read at scrape time.", ("group",),
)

LOADGEN_FAMILIES = (LOADGEN_PLANNED, LOADGEN_SENT, LOADGEN_LAG)
