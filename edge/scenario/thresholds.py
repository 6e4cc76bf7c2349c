"""Pass/fail criteria of a run, as k6's thresholds: ``"p99 latency of app@canary < 200ms"``.

A threshold is ``[STAT] METRIC [of SUBJECT] OP VALUE``:

* SUBJECT is ``clients`` (the default: top-level requests as users saw them, after fallbacks) or a
  service environment ``SERVICE@ENV`` (every call it answered, per attempt);
* METRIC with a STAT (``p50``, ``p90``, ``p99``, ``max``, ``mean``): ``latency``, ``queue wait``
  (environments), ``cpu per request`` (clients); the value is a duration ("200ms");
* ``error ratio`` (``effective error ratio`` is the same for clients): a ratio ("0.1%", 0.001);
* counts: ``requests``, ``errors``, ``timeouts``, ``unanswered`` (still waiting when the run
  ended: also in requests and errors), ``dropped``, ``shed``, ``retries``, ``cpu_limit_exceeded``, and for environments ``exceptions`` and ``cold starts``;
* OP: ``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``.

A threshold over a subject that saw no requests has no data and fails with that reason, as k6's
do, unless its rule says ``no_data = "pass"`` (``schema.ThresholdRule``); ``requests`` thresholds
always have data.

This module parses (at scenario load, so a typo fails before the run) and compares; what a metric's
value is in a run is the report's business (``report.threshold_value``).
"""

from __future__ import annotations

import operator
import re
from typing import Callable

import msgspec

from edge.platform.units import format_duration, parse_duration, parse_ratio

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
}
STATS = ("p50", "p90", "p99", "max", "mean")
TIMED = ("latency", "queue wait", "cpu per request")
RATIOS = ("error ratio", "effective error ratio")
CLIENT_COUNTS = ("requests", "errors", "timeouts", "unanswered", "dropped", "shed", "retries", "cpu_limit_exceeded")
ENVIRONMENT_COUNTS = ("requests", "errors", "shed", "cpu_limit_exceeded", "exceptions", "cold starts")

_METRIC = "|".join(re.escape(m) for m in sorted({*TIMED, *RATIOS, *CLIENT_COUNTS, *ENVIRONMENT_COUNTS}, key=len, reverse=True))
_GRAMMAR = re.compile(
    rf"^\s*(?:(?P<stat>{'|'.join(STATS)})\s+)?(?P<metric>{_METRIC})"
    r"(?:\s+of\s+(?P<subject>clients|[A-Za-z0-9_-]+@[A-Za-z0-9_-]+))?"
    r"\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>\S+)\s*$"
)
EXPECTED = '"[STAT] METRIC [of clients|SERVICE@ENV] OP VALUE", e.g. "p99 latency of app@canary < 200ms"'


def has_data(threshold: Threshold, requests: int) -> bool:
    """Whether ``threshold`` measures anything when its subject saw ``requests`` requests."""
    return requests > 0 or threshold.metric == "requests"


class Threshold:
    """A parsed threshold line. A plain class rather than a Struct: scenario decoding builds it
    from a string (a msgspec custom type), and a Struct would be decoded from a table instead."""

    __slots__ = ("text", "metric", "stat", "subject", "op", "value")

    def __init__(self, text: str, metric: str, stat: str | None, subject: str, op: str, value: float) -> None:
        self.text = text
        self.metric = metric
        self.stat = stat
        self.subject = subject  # "clients" or "service@environment"
        self.op = op
        self.value = value

    def holds(self, measured: float) -> bool:
        return _OPS[self.op](measured, self.value)

    @property
    def measure(self) -> str:
        """What is measured, without its limit: "p99 latency", "error ratio"."""
        return f"{self.stat} {self.metric}" if self.stat else self.metric

    @property
    def unit(self) -> str:
        """"s" for a duration, "%" for a ratio, "" for a count."""
        return "s" if self.metric in TIMED else "%" if self.metric in RATIOS else ""

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Threshold) and type(other) is type(self) and (other.text, other.subject) == (self.text, self.subject)

    def __hash__(self) -> int:
        return hash((self.text, self.subject))


class ThresholdResult(msgspec.Struct, omit_defaults=True):
    threshold: str
    value: float
    """Seconds for timed metrics, a fraction for ratios, else a count."""
    passed: bool
    no_data: bool = False
    """Its subject saw no requests: ``value`` measures nothing, and ``passed`` is the rule's
    ``no_data`` choice (fail by default). Left out of the JSON when False."""
    samples: int = 0
    """The requests its subject saw, which ``value`` was measured over."""

    def shown(self) -> str:
        """The verdict's reason: the value measured, in the threshold's own terms, and over how
        many requests ("measured 15.9ms of 1,204 requests", "measured 0.108% of ..."), or "no data"."""
        if self.no_data:
            return "no data"
        metric = parse_threshold(self.threshold).metric
        if metric in TIMED:
            measured = format_duration(self.value)
        elif metric in RATIOS:
            measured = f"{self.value:.3%}"
        else:
            measured = f"{self.value:g}"
        return f"measured {measured}" if metric == "requests" else f"measured {measured} of {self.samples:,} requests"


def parse_threshold(text: object, default_subject: str = "clients") -> Threshold:
    """``default_subject`` is the subject of a line without ``of``: a rollout gate's is its canary."""
    if not isinstance(text, str):
        raise ValueError(f"expected {EXPECTED}, got {text!r}")
    match = _GRAMMAR.match(text)
    if match is None:
        raise ValueError(f"expected {EXPECTED}, got {text!r}")
    stat, metric, subject, op, raw = match.group("stat", "metric", "subject", "op", "value")
    subject = subject or default_subject
    on_clients = subject == "clients"
    if metric in TIMED:
        if stat is None:
            raise ValueError(f"{metric} needs a statistic ({', '.join(STATS)}) in {text!r}")
        if metric == "queue wait" and on_clients:
            raise ValueError(f"queue wait is a service environment's (of SERVICE@ENV), in {text!r}")
        if metric == "cpu per request" and not on_clients:
            raise ValueError(f"cpu per request is the clients' (top-level requests), in {text!r}")
        value = parse_duration(raw)
    elif stat is not None:
        raise ValueError(f"{stat} applies to latency, queue wait and cpu per request, not {metric}, in {text!r}")
    elif metric in RATIOS:
        if metric == "effective error ratio" and not on_clients:
            raise ValueError(f"effective error ratio is the clients' (after fallbacks), in {text!r}")
        value = parse_ratio(raw)
    else:
        allowed = CLIENT_COUNTS if on_clients else ENVIRONMENT_COUNTS
        if metric not in allowed:
            raise ValueError(f"{metric} is not counted for {'clients' if on_clients else 'a service environment'} (there: {', '.join(allowed)}), in {text!r}")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number after {op!r}, got {raw!r} in {text!r}") from None
    return Threshold(text.strip(), metric, stat, subject, op, value)
