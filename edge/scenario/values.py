"""The typed values of a scenario file, parsed once while the file is decoded.

Scenario authors write "250ms", "500/s", "5%", "exp(1ms)", "app@canary"; each such field is
declared with one of the types below, and ``dec_hook`` (given to ``msgspec.convert``) parses the
value as written into it. A parser's ValueError becomes a msgspec error carrying the path of the
field, so ``load.convert`` reports it like any other. Past decoding nothing parses these strings
again: the runtime reads ``.seconds``, ``.fraction``, ``.distribution``...

Each value keeps ``raw``, what the file said (a string, or a bare TOML number): reports and logs
echo the configured value as written ("every 1m", "latency exp(2ms)"), and ``enc_hook`` turns a
value back into it (``edge tune`` lays candidate schedules over a rollout as builtins).
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple

from edge.platform.distributions import Distribution, parse_distribution
from edge.platform.routes import RoutePattern
from edge.platform.units import parse_duration, parse_rate, parse_ratio
from edge.scenario.gateway import Gateway
from edge.scenario.thresholds import Threshold, parse_threshold

Raw = str | int | float


class FieldError(ValueError):
    """A field a Struct's ``__post_init__`` refuses, and what it expected. msgspec keeps it as the
    cause of its ValidationError, which says where the Struct is (``$.services[2].rollout``):
    the loader joins the two into the path it reports (``services[2].rollout.steps[1]``)."""

    def __init__(self, field: str, expected: str) -> None:
        super().__init__(expected)
        self.field = field
        self.expected = expected


class Value:
    """A parsed scenario value; equal to another of its type written the same way."""

    __slots__ = ("raw",)

    def __init__(self, raw: Raw) -> None:
        self.raw = raw

    def __str__(self) -> str:
        return str(self.raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.raw!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and type(other) is type(self) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash((type(self), self.raw))


class Duration(Value):
    """Seconds, from "250ms", "1m30s" or a bare number of seconds (never negative)."""

    __slots__ = ("seconds",)

    def __init__(self, raw: Raw) -> None:
        super().__init__(raw)
        self.seconds = parse_duration(raw)


class Rate(Value):
    """Events per second, from "500/s", "30/m", "2.5k/s"."""

    __slots__ = ("per_second",)

    def __init__(self, raw: Raw) -> None:
        super().__init__(raw)
        self.per_second = parse_rate(raw)


class Ratio(Value):
    """A fraction in [0, 1], from "5%", "0.1%" or a bare fraction."""

    __slots__ = ("fraction",)

    def __init__(self, raw: Raw) -> None:
        super().__init__(raw)
        self.fraction = parse_ratio(raw)


class DurationDistribution(Value):
    """A random duration ("exp(1ms)", "lognormal(p50=2ms, p99=15ms)"); a bare duration is a constant."""

    __slots__ = ("distribution",)
    unit = "duration"

    def __init__(self, raw: Raw) -> None:
        super().__init__(raw)
        self.distribution: Distribution = parse_distribution(raw, unit=self.unit)


MAX_FACTOR = 1000.0
"""The largest "xN": far past any gate already, and small enough that no scaled draw overflows."""


class ScaledDistribution(Value):
    """A duration distribution as written, or "xN": N times the one in place (a canary "x3" slower
    than its model, with the same shape). 0 < N <= ``MAX_FACTOR``: "x1" is no change (the control
    of a power curve), "x0.5" a faster canary; "x0" is refused (a lognormal cannot be scaled to
    nothing: write "0s" for no wait)."""

    __slots__ = ("factor", "distribution")

    def __init__(self, raw: Raw) -> None:
        super().__init__(raw)
        self.factor: float | None = None
        self.distribution: Distribution | None = None
        if isinstance(raw, str) and raw.strip().startswith("x"):
            number = raw.strip()[1:].strip()
            try:
                factor = float(number)
            except ValueError:
                factor = float("nan")
            if not 0 < factor <= MAX_FACTOR:  # NaN fails too
                raise ValueError(f'expected a factor "xN" with 0 < N <= {MAX_FACTOR:g} (e.g. "x1.5"), or a distribution, got {raw!r}')
            self.factor = factor
        else:
            self.distribution = parse_distribution(raw, unit="duration")

    def applied_to(self, current: Distribution) -> Distribution:
        """What replaces ``current``: the distribution written, or ``current`` scaled."""
        return current.scaled(self.factor) if self.factor is not None else self.distribution  # type: ignore[return-value]


class SizeDistribution(DurationDistribution):
    """A random size in bytes ("exp(2KiB)"); a bare size is a constant."""

    __slots__ = ()
    unit = "size"


_ARRIVALS = re.compile(r"^\s*(poisson|constant)\(\s*(.+?)\s*\)\s*$")


class ArrivalProcess(Value):
    """"poisson(500/s)" or "constant(500/s)": the process ``kind`` and its (start) ``rate`` per second."""

    __slots__ = ("kind", "rate")

    def __init__(self, raw: Raw) -> None:
        super().__init__(raw)
        match = _ARRIVALS.match(raw) if isinstance(raw, str) else None
        if not match:
            raise ValueError(f'expected "poisson(RATE)" or "constant(RATE)" with RATE like "500/s", got {raw!r}')
        self.kind = match.group(1)
        rate = match.group(2)
        if "/" not in rate:  # a bare number would be read per second: say so rather than guess
            raise ValueError(f'expected RATE with its unit, like "{match.group(1)}({rate}/s)" or "{match.group(1)}({rate}/m)", got {raw!r}')
        self.rate = parse_rate(rate)


DEFAULT_ARRIVALS = ArrivalProcess("poisson(100/s)")
"""An open group's arrivals when it names none."""


class EnvironmentKey(NamedTuple):
    """One environment of one service: the key of its actor, metrics and report entry.

    A tuple rather than the "service@env" text it prints as, so that no code builds the text to
    look something up or splits it apart again; ``str()`` is the form users read and write.
    """

    service: str
    environment: str

    def __str__(self) -> str:
        return f"{self.service}@{self.environment}"

    @classmethod
    def parse(cls, text: str) -> EnvironmentKey:
        """"app@canary" as a key; a ValueError for text without both parts."""
        service, at, environment = text.partition("@")
        if not (service and at and environment):
            raise ValueError(f'expected "SERVICE@ENVIRONMENT", got {text!r}')
        return cls(service, environment)


class Target(Value):
    """An environment selector: "app" (the service, through its split) or "app@canary" (pinned)."""

    __slots__ = ("service", "environment")

    def __init__(self, raw: Raw) -> None:
        if not isinstance(raw, str):
            raise ValueError(f'expected "SERVICE" or "SERVICE@ENVIRONMENT", got {raw!r}')
        super().__init__(raw)
        service, at, environment = raw.partition("@")
        if not service or (at and not environment):
            raise ValueError(f'expected "SERVICE" or "SERVICE@ENVIRONMENT", got {raw!r}')
        self.service = service
        self.environment: str | None = environment or None

    @property
    def pinned(self) -> bool:
        return "@" in str(self.raw)

    @property
    def key(self) -> EnvironmentKey:
        """The pinned environment's key (only for a pinned target)."""
        assert self.environment is not None, f"{self.raw!r} names no environment"
        return EnvironmentKey(self.service, self.environment)


SECRET_PREFIX = "secret:"


class HeaderValue(Value):
    """A request header's value, or "secret:SERVICE.NAME": a reference to a service's secret,
    resolved when the traffic is built (so that no report or log ever holds the secret)."""

    __slots__ = ("secret",)

    def __init__(self, raw: Raw) -> None:
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {raw!r}")
        super().__init__(raw)
        self.secret: tuple[str, str] | None = None
        if raw.startswith(SECRET_PREFIX):
            service, _, name = raw[len(SECRET_PREFIX):].partition(".")
            self.secret = (service, name)


GATE_METRICS = ("latency", "error ratio", "errors", "requests", "shed", "queue wait")
GATE_SUBJECT = "canary@rollout"
"""A gate is judged on the canary's last interval whatever subject its line names; parsing needs
a service environment as the default subject, so that environment-only metrics are accepted."""


class Gate(Threshold):
    """A rollout gate: a threshold on the canary over one interval."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: object) -> Gate:
        threshold = parse_threshold(text, default_subject=GATE_SUBJECT)
        if threshold.metric not in GATE_METRICS or threshold.stat == "mean":
            raise ValueError(f"expected a gate on {', '.join(GATE_METRICS)} (latency and queue wait by p50/p90/p99/max), got {text!r}")
        return cls(threshold.text, threshold.metric, threshold.stat, threshold.subject, threshold.op, threshold.value)


_PARSERS: dict[type, Callable[[Any], Any]] = {
    Duration: Duration,
    Rate: Rate,
    Ratio: Ratio,
    DurationDistribution: DurationDistribution,
    SizeDistribution: SizeDistribution,
    ScaledDistribution: ScaledDistribution,
    ArrivalProcess: ArrivalProcess,
    Target: Target,
    HeaderValue: HeaderValue,
    RoutePattern: RoutePattern.parse,
    Threshold: parse_threshold,
    Gate: Gate.parse,
    Gateway: Gateway.parse,
}


def dec_hook(type: type, raw: Any) -> Any:
    """For ``msgspec.convert``: parse ``raw`` into one of the types above."""
    parse = _PARSERS.get(type)
    if parse is None:
        raise NotImplementedError(f"no decoder for {type!r}")
    return parse(raw)


def enc_hook(value: Any) -> Any:
    """For ``msgspec.to_builtins``: a value as the file wrote it, which decodes to the same value."""
    if isinstance(value, Value):
        return value.raw
    if isinstance(value, (Threshold, RoutePattern)):
        return value.text
    raise NotImplementedError(f"no encoder for {type(value)!r}")
