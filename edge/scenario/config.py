"""Scenario files: msgspec Structs, decoded and validated at the edge, with paths in every error.

A scenario is TOML. Decoding checks types and unknown keys; each Struct's ``__post_init__`` checks
its own readable values ("250ms", "exp(1ms)", "500/s") so that msgspec attaches the path of the
failing table; ``validate`` then checks what spans tables (binding targets, split weights, secret
references, worker modules). Every failure is a ``ConfigError`` naming the file, the path inside it
(``services[2].split.weights``) and what was expected. Values stay as written: the runtime parses
them again when it builds the model, which cannot fail after validation.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from edge.platform.distributions import parse_distribution
from edge.scenario.thresholds import Threshold, parse_threshold
from edge.platform.units import parse_duration, parse_rate, parse_ratio

Number = int | float
Duration = str | int | float


class ConfigError(Exception):
    """A scenario that cannot run; ``str()`` is the message for the user."""

    def __init__(self, file: str, path: str, expected: str) -> None:
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {expected}")
        self.file = file
        self.path = path
        self.expected = expected


def _check(field: str, parse: Any, value: Any, **kw: Any) -> None:
    """Run a parser; on failure raise the ValueError msgspec turns into a path-carrying error."""
    try:
        parse(value, **kw)
    except ValueError as exc:
        raise ValueError(f"@{field}: {exc}") from None


class Meta(msgspec.Struct, forbid_unknown_fields=True):
    name: str = "scenario"
    duration: Duration = "1m"
    seed: int = 1
    cpu_limit: Duration = "50ms"
    """CPU budget of one top-level request, shared by every worker it reaches."""
    cores: int = 8
    max_invocations: int = 32
    """Service-binding invocations allowed per top-level request (Workers allow 32)."""
    drain: Duration = "30s"
    """After traffic stops, how long in-flight requests get to finish before the run ends."""

    def __post_init__(self) -> None:
        _check("duration", parse_duration, self.duration)
        _check("cpu_limit", parse_duration, self.cpu_limit)
        _check("drain", parse_duration, self.drain)
        if self.cores < 1:
            raise ValueError(f"@cores: expected at least 1 core, got {self.cores}")
        if self.max_invocations < 1:
            raise ValueError(f"@max_invocations: expected at least 1, got {self.max_invocations}")


class Model(msgspec.Struct, forbid_unknown_fields=True):
    """A synthetic worker: behaviour given by distributions instead of code."""

    cpu: Duration = 0
    latency: Duration = 0
    """Time spent waiting without CPU (storage, origin fetches)."""
    errors: Number | str = 0.0
    error_status: int = 500
    size: str | int = 0
    """Response body size in bytes (a distribution is allowed: "exp(2KiB)")."""

    def __post_init__(self) -> None:
        _check("cpu", parse_distribution, self.cpu, unit="duration")
        _check("latency", parse_distribution, self.latency, unit="duration")
        _check("errors", parse_ratio, self.errors)
        _check("size", parse_distribution, self.size, unit="size")
        if not 100 <= self.error_status <= 599:
            raise ValueError(f"@error_status: expected an HTTP status 100..599, got {self.error_status}")


class Environment(msgspec.Struct, forbid_unknown_fields=True):
    """One deployment of a service; unset fields inherit the service's."""

    worker: str | None = None
    model: Model | None = None
    vars: dict[str, str] = {}
    secrets: dict[str, str] = {}
    bindings: dict[str, str] = {}
    version: int | None = None
    tags: dict[str, str] = {}
    concurrency: int | None = None
    mailbox: int | None = None
    cold_start: Duration | None = None
    keep_warm: Duration | None = None

    def __post_init__(self) -> None:
        _check_environment_fields(self)


def _check_environment_fields(env: Environment | Service) -> None:
    if env.worker is not None and env.model is not None:
        raise ValueError("@worker: expected either `worker` (Python code) or `model` (synthetic), not both")
    if env.concurrency is not None and env.concurrency < 1:
        raise ValueError(f"@concurrency: expected at least 1, got {env.concurrency}")
    if env.mailbox is not None and env.mailbox < 0:
        raise ValueError(f"@mailbox: expected a capacity >= 0, got {env.mailbox}")
    if env.version is not None and env.version < 1:
        raise ValueError(f"@version: expected a version number >= 1, got {env.version}")
    if env.cold_start is not None:
        _check("cold_start", parse_distribution, env.cold_start, unit="duration")
    if env.keep_warm is not None:
        _check("keep_warm", parse_duration, env.keep_warm)


class RetryBudget(msgspec.Struct, forbid_unknown_fields=True):
    """Linkerd's retry budget: over the last ``window``, retries may number at most ``ratio`` of
    the requests plus ``min_per_second`` per second; beyond that a failed attempt is not retried
    (its caller gets the failure), so a broken canary cannot double the load on production."""

    ratio: Number = 0.2
    min_per_second: Number = 10
    window: Duration = "10s"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ratio) and self.ratio >= 0):
            raise ValueError(f"@ratio: expected retries per request >= 0 (0.2 is one retry per five requests), got {self.ratio}")
        if not (math.isfinite(self.min_per_second) and self.min_per_second >= 0):
            raise ValueError(f"@min_per_second: expected retries per second >= 0, got {self.min_per_second}")
        _check("window", parse_duration, self.window)
        if parse_duration(self.window) <= 0:
            raise ValueError(f"@window: expected a positive duration, got {self.window!r}")


class Retry(msgspec.Struct, forbid_unknown_fields=True):
    """Seed 003's fallback: a failed attempt on another environment is retried on ``to``."""

    on: str = "5xx"
    methods: list[str] = msgspec.field(default_factory=lambda: ["GET", "HEAD"])
    to: str = "production"
    budget: RetryBudget | None = None
    """Caps retries (none: every retryable failure is retried)."""

    def __post_init__(self) -> None:
        if self.on != "5xx":
            raise ValueError(f'@on: expected "5xx" (retry when the status is >= 500), got {self.on!r}')
        self.methods = [m.upper() for m in self.methods]


class Affinity(msgspec.Struct, forbid_unknown_fields=True):
    """Sticky assignment: requests carrying the same key see the same environment (while the
    weights allow: raising the canary's weight only moves users to it, never back)."""

    header: str | None = None
    cookie: str | None = None

    def __post_init__(self) -> None:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("@header: expected either `header` or `cookie` to name the affinity key, not both or neither")


class Split(msgspec.Struct, forbid_unknown_fields=True):
    weights: dict[str, Number]
    """Percent of the service's traffic per environment; must sum to 100 (0.1 means 0.1%)."""
    retry: Retry | None = None
    affinity: Affinity | None = None
    override: str | None = None
    """A request header naming an environment pins the request to it (Cloudflare's version
    overrides): for testing a canary by hand at weight 0."""

    def __post_init__(self) -> None:
        for name, weight in self.weights.items():
            if not (math.isfinite(weight) and 0 <= weight <= 100):
                raise ValueError(f"@weights.{name}: expected a percentage between 0 and 100, got {weight}")
        total = sum(self.weights.values())
        if abs(total - 100) > 1e-9:
            raise ValueError(f"@weights: expected weights summing to 100 (percent), got {total:g}")


class RolloutStep(msgspec.Struct, forbid_unknown_fields=True):
    """A step of a rollout with a gate of its own: wait ``pause`` before it, or for an approval."""

    weight: Number
    pause: Duration | None = None
    manual: bool = False
    """Wait for an approval (timeline action ``approve``, or the admin API live) before this step."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and 0 < self.weight <= 100):
            raise ValueError(f"@weight: expected a percentage in (0, 100], got {self.weight}")
        if self.pause is not None:
            _check("pause", parse_duration, self.pause)


class Compare(msgspec.Struct, forbid_unknown_fields=True):
    """A statistical gate on latency: the canary's against the stable environment's, per interval."""

    test: str = "mann-whitney"
    alpha: Number = 0.01
    """Fail when the canary is slower with a one-sided p-value below this."""
    min_shift: Duration = "0s"
    """...and its median is slower by more than this (a difference too small to matter is not a failure)."""

    def __post_init__(self) -> None:
        if self.test != "mann-whitney":
            raise ValueError(f'@test: expected "mann-whitney", got {self.test!r}')
        if not 0 < self.alpha < 1:
            raise ValueError(f"@alpha: expected a probability in (0, 1), got {self.alpha}")
        _check("min_shift", parse_duration, self.min_shift)


class Sequential(msgspec.Struct, forbid_unknown_fields=True):
    """Wald's sequential probability ratio test on the canary's error ratio, over every canary
    answer since the rollout began: H0 "error ratio p0" against H1 "p1"; crossing the upper bound
    rolls back at once, crossing the lower one passes this gate for the rest of the rollout."""

    p0: Number | str
    p1: Number | str
    alpha: Number = 0.01
    """Probability of rolling back a canary at p0 (a false rollback)."""
    beta: Number = 0.05
    """Probability of missing a canary at p1."""

    def __post_init__(self) -> None:
        p0, p1 = parse_ratio(self.p0), parse_ratio(self.p1)
        if not 0 < p0 < p1 < 1:
            raise ValueError(f"@p1: expected 0 < p0 < p1 < 1, got p0 {p0:g} and p1 {p1:g}")
        for name in ("alpha", "beta"):
            if not 0 < getattr(self, name) < 0.5:
                raise ValueError(f"@{name}: expected a probability in (0, 0.5), got {getattr(self, name)}")


NO_DATA = ("fail", "pass", "hold")


class Rollout(msgspec.Struct, forbid_unknown_fields=True):
    """A progressive rollout of ``canary`` (Flagger/Argo Rollouts style), driven by the router.

    Every ``interval`` the canary's last interval is analysed: the ``gates`` (thresholds on the
    canary over the interval), the optional statistical gates; a pass moves to the next step's
    weight, a failure counts, and ``failure_limit`` failures roll back (canary weight 0). After the
    last step the canary is promoted: ``stable`` takes its version and all the traffic.
    """

    steps: list[Number | RolloutStep] = []
    """Canary weights in order, e.g. [0.1, 1, 5, 25, 50, 100]; or use step_weight/max_weight."""
    step_weight: Number | None = None
    max_weight: Number = 100
    canary: str = "canary"
    stable: str = "production"
    start: Duration = "0s"
    interval: Duration = "1m"
    gates: list[str] = []
    min_requests: int = 0
    """Canary answers an interval needs to be judged; fewer is "no data"."""
    no_data: str = "fail"
    """What an interval without enough data counts as: "fail" (as Flagger), "pass", or "hold"
    (neither: the step is analysed again next interval)."""
    failure_limit: int = 1
    compare: Compare | None = None
    sequential: Sequential | None = None

    def __post_init__(self) -> None:
        if bool(self.steps) == (self.step_weight is not None):
            raise ValueError("@steps: expected either `steps` (a list of weights) or `step_weight` (and `max_weight`), not both or neither")
        if self.step_weight is not None and not (0 < self.step_weight <= self.max_weight <= 100):
            raise ValueError(f"@step_weight: expected 0 < step_weight <= max_weight <= 100, got {self.step_weight} and {self.max_weight}")
        last = 0.0
        for index, step in enumerate(rollout_steps(self)):
            if step.weight <= last:
                raise ValueError(f"@steps[{index}]: expected weights that increase, got {step.weight} after {last:g}")
            last = step.weight
        for name in ("start", "interval"):
            _check(name, parse_duration, getattr(self, name))
        if parse_duration(self.interval) <= 0:
            raise ValueError(f"@interval: expected a positive duration, got {self.interval!r}")
        if self.no_data not in NO_DATA:
            raise ValueError(f"@no_data: expected one of {', '.join(NO_DATA)}, got {self.no_data!r}")
        if self.failure_limit < 1:
            raise ValueError(f"@failure_limit: expected at least 1, got {self.failure_limit}")
        if self.min_requests < 0:
            raise ValueError(f"@min_requests: expected a count >= 0, got {self.min_requests}")
        for index, text in enumerate(self.gates):
            try:
                rollout_gate(text, "x@canary")
            except ValueError as exc:
                raise ValueError(f"@gates[{index}]: {exc}") from None


def rollout_steps(rollout: Rollout) -> list[RolloutStep]:
    """The steps as records, from either form."""
    if rollout.step_weight is not None:
        count = int(rollout.max_weight // rollout.step_weight)
        return [RolloutStep(weight=rollout.step_weight * (i + 1)) for i in range(count)]
    return [RolloutStep(weight=s) if isinstance(s, (int, float)) else s for s in rollout.steps]


GATE_METRICS = ("latency", "error ratio", "errors", "requests", "shed", "queue wait")


def rollout_gate(text: str, canary: str) -> Threshold:
    """A gate is a threshold on the canary (``of SERVICE@ENV`` may be left out) over one interval."""
    threshold = parse_threshold(text, default_subject=canary)
    if threshold.metric not in GATE_METRICS or threshold.stat == "mean":
        raise ValueError(f"expected a gate on {', '.join(GATE_METRICS)} (latency and queue wait by p50/p90/p99/max), got {text!r}")
    return threshold


class Service(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    routes: list[str] = []
    """Public routes such as "example.com/*"; a service without routes is private."""
    worker: str | None = None
    model: Model | None = None
    vars: dict[str, str] = {}
    secrets: dict[str, str] = {}
    bindings: dict[str, str] = {}
    version: int | None = None
    tags: dict[str, str] = {}
    concurrency: int | None = None
    mailbox: int | None = None
    cold_start: Duration | None = None
    keep_warm: Duration | None = None
    environments: dict[str, Environment] = {}
    split: Split | None = None
    rollout: Rollout | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"@name: expected a service name of letters, digits, '-' and '_', got {self.name!r}")
        _check_environment_fields(self)


class RequestTemplate(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    method: str = "GET"
    weight: Number = 1
    headers: dict[str, str] = {}
    """A value "secret:SERVICE.NAME" is replaced by that service's secret (never printed)."""
    body: str | None = None
    body_size: str | int | None = None
    """A body of this many bytes (a size or a size distribution, "2KiB", "exp(4KiB)"), drawn per request."""

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        if self.body_size is not None:
            _check("body_size", parse_distribution, self.body_size, unit="size")
            if self.body is not None:
                raise ValueError("@body_size: expected either `body` (a literal) or `body_size`, not both")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"@weight: expected a positive weight, got {self.weight}")
        if not _URL.match(self.url):
            raise ValueError(f'@url: expected an absolute URL like "https://example.com/path", got {self.url!r}')
        for field in ("body", "body_size"):
            if getattr(self, field) is not None and self.method in ("GET", "HEAD"):
                raise ValueError(f"@{field}: a {self.method} request cannot have a body")


class Stage(msgspec.Struct, forbid_unknown_fields=True):
    duration: Duration
    rate: str
    """The arrival rate at the end of the stage, reached linearly from the one before."""

    def __post_init__(self) -> None:
        _check("duration", parse_duration, self.duration)
        _check("rate", parse_rate, self.rate)


class DiurnalShape(msgspec.Struct, forbid_unknown_fields=True):
    period: Duration = "24h"
    trough: Number = 0.3
    """The lowest rate as a fraction of the highest."""
    peak: Duration = "14h"
    """When in the period the rate is highest."""

    def __post_init__(self) -> None:
        _check("period", parse_duration, self.period)
        _check("peak", parse_duration, self.peak)
        if parse_duration(self.period) <= 0:
            raise ValueError(f"@period: expected a positive duration, got {self.period!r}")
        if not 0 < self.trough <= 1:
            raise ValueError(f"@trough: expected a fraction in (0, 1], got {self.trough}")


class BurstSpec(msgspec.Struct, forbid_unknown_fields=True):
    at: Duration
    duration: Duration
    factor: Number
    """The rate is multiplied by this while the burst lasts."""

    def __post_init__(self) -> None:
        _check("at", parse_duration, self.at)
        _check("duration", parse_duration, self.duration)
        if not (math.isfinite(self.factor) and self.factor >= 0):
            raise ValueError(f"@factor: expected a non-negative multiplier, got {self.factor}")


class Traffic(msgspec.Struct, forbid_unknown_fields=True):
    """A group of clients: open (an arrival rate) or closed (``users`` with think time)."""

    requests: list[RequestTemplate]
    name: str = ""
    arrivals: str | None = None
    """poisson(RATE) or constant(RATE), RATE like "500/s" (the start rate when there are stages);
    default poisson(100/s) for an open group."""
    stages: list[Stage] = []
    diurnal: DiurnalShape | None = None
    bursts: list[BurstSpec] = []
    users: int | None = None
    """A closed group: this many users, each sending, waiting for the answer, thinking, again."""
    think: str = "0s"
    """Think time between a user's answer and its next request: a duration distribution."""
    timeout: Duration | None = None
    """The client gives up after this long: counted as a timeout (an error), whatever comes later."""
    max_inflight: int | None = None
    """Open groups: arrivals that find this many requests of the group outstanding are dropped
    (and counted), as a load tool whose virtual users are all busy."""
    start: Duration = 0
    duration: Duration | None = None

    def __post_init__(self) -> None:
        if not self.requests:
            raise ValueError("@requests: expected at least one request template")
        if self.users is not None:
            if self.users < 1:
                raise ValueError(f"@users: expected at least one user, got {self.users}")
            for field, value in (("arrivals", self.arrivals), ("stages", self.stages), ("diurnal", self.diurnal), ("bursts", self.bursts), ("max_inflight", self.max_inflight)):
                if value:
                    raise ValueError(f"@{field}: a closed group (users = ...) has no arrival rate; drop {field} or users")
            _check("think", parse_distribution, self.think, unit="duration")
        elif self.arrivals is not None:
            try:
                parse_arrivals(self.arrivals)
            except ValueError as exc:
                raise ValueError(f"@arrivals: {exc}") from None
        if self.max_inflight is not None and self.max_inflight < 1:
            raise ValueError(f"@max_inflight: expected at least 1, got {self.max_inflight}")
        _check("start", parse_duration, self.start)
        if self.duration is not None:
            _check("duration", parse_duration, self.duration)
        if self.timeout is not None:
            _check("timeout", parse_duration, self.timeout)
            if parse_duration(self.timeout) <= 0:
                raise ValueError(f"@timeout: expected a positive duration, got {self.timeout!r}")


TIMELINE_ACTIONS = ("set", "crash", "cold", "weights", "deploy", "promote", "approve")


class TimelineEvent(msgspec.Struct, forbid_unknown_fields=True):
    """Something that happens to the topology at a simulated time: the script of a rollout story.

    * ``set`` (target ``SERVICE@ENV``): new behaviour. A synthetic worker's ``latency``, ``cpu``,
      ``errors`` replace its model's; a code worker gets them injected before its code runs
      (extra wait, extra CPU, that share of calls answered 500 without running it).
    * ``crash`` (target ``SERVICE@ENV``, ``duration``): new calls get 503 until it restarts,
      with every slot cold.
    * ``cold`` (target ``SERVICE@ENV``): every slot goes cold at once (a cold-start storm).
    * ``weights`` (target ``SERVICE``, ``weights``): a new split.
    * ``deploy`` (target ``SERVICE@ENV``): a new version (``version``, default the current + 1)
      with ``tags``, and optionally new behaviour as ``set``.
    * ``promote`` (target ``SERVICE@ENV``, ``to`` default "production"): ``to`` takes the target's
      code or model and version, and all of the service's traffic.
    * ``approve`` (target ``SERVICE``): lets the service's rollout past a ``manual`` step.
    """

    at: Duration
    action: str
    target: str
    latency: Duration | None = None
    cpu: Duration | None = None
    errors: Number | str | None = None
    duration: Duration | None = None
    weights: dict[str, Number] = {}
    version: int | None = None
    tags: dict[str, str] = {}
    to: str = "production"

    def __post_init__(self) -> None:
        _check("at", parse_duration, self.at)
        if self.action not in TIMELINE_ACTIONS:
            raise ValueError(f"@action: expected one of {', '.join(TIMELINE_ACTIONS)}, got {self.action!r}")
        pinned = "@" in self.target
        if self.action == "approve":
            if pinned:
                raise ValueError(f"@target: an approval is for a service's rollout, got {self.target!r}")
        elif self.action == "weights":
            if pinned:
                raise ValueError(f"@target: weights apply to a service (its router), got {self.target!r}")
            if not self.weights:
                raise ValueError("@weights: expected the new split, e.g. { production = 95, canary = 5 }")
        elif not pinned:
            raise ValueError(f'@target: expected "SERVICE@ENVIRONMENT" for {self.action}, got {self.target!r}')
        if self.action == "crash":
            if self.duration is None:
                raise ValueError("@duration: expected how long the crash lasts, e.g. \"30s\"")
            _check("duration", parse_duration, self.duration)
        for field, unit in (("latency", "duration"), ("cpu", "duration")):
            if getattr(self, field) is not None:
                _check(field, parse_distribution, getattr(self, field), unit=unit)
        if self.errors is not None:
            _check("errors", parse_ratio, self.errors)
        if self.version is not None and self.version < 1:
            raise ValueError(f"@version: expected a version number >= 1, got {self.version}")


class Behaviour(msgspec.Struct, forbid_unknown_fields=True):
    """A canary's behaviour under a tuning hypothesis, applied as a timeline ``set`` at time 0."""

    errors: Number | str | None = None
    latency: Duration | None = None
    cpu: Duration | None = None

    def __post_init__(self) -> None:
        if self.errors is not None:
            _check("errors", parse_ratio, self.errors)
        for field in ("latency", "cpu"):
            if getattr(self, field) is not None:
                _check(field, parse_distribution, getattr(self, field), unit="duration")


class TuneLimits(msgspec.Struct, forbid_unknown_fields=True):
    """What a schedule must achieve to be recommended."""

    false_rollback: Number | str = "1%"
    """At most this probability of rolling back a good canary."""
    caught: Number | str = "99%"
    """At least this probability of rolling back a bad one."""
    errors_seen: int | None = None
    """At most this many requests (on average) answered with a canary's error, after fallbacks."""

    def __post_init__(self) -> None:
        _check("false_rollback", parse_ratio, self.false_rollback)
        _check("caught", parse_ratio, self.caught)


class Tune(msgspec.Struct, forbid_unknown_fields=True):
    """``edge tune``: compare rollout schedules under a hypothesis about the canary."""

    bad: Behaviour
    """The canary when its version is broken, e.g. { errors = "0.5%" }."""
    good: Behaviour | None = None
    """The canary when it is fine; by default it behaves as the stable environment (a synthetic
    model is copied from it; code is left as it is)."""
    service: str | None = None
    """The service whose rollout is tuned (default: the only one with a rollout)."""
    candidates: list[dict[str, Any]] = []
    """Rollout settings to compare, each over the scenario's rollout, e.g. { steps = [1, 10, 100],
    interval = "2m" }; none: a grid of step lists and intervals."""
    replications: int = 40
    limits: TuneLimits = msgspec.field(default_factory=TuneLimits)

    def __post_init__(self) -> None:
        if self.replications < 2:
            raise ValueError(f"@replications: expected at least 2 (for a confidence interval), got {self.replications}")


class ThresholdRule(msgspec.Struct, forbid_unknown_fields=True):
    """A threshold with options; a plain string in ``thresholds`` is a rule without them."""

    threshold: str
    abort: bool = False
    """Stop the run as soon as this threshold fails (as k6's abortOnFail), instead of at the end.
    Checked on the run so far at every interval of the report's series."""
    delay: Duration = "0s"
    """Do not abort before this much simulated time (as k6's delayAbortEval): early figures are
    few and noisy."""

    def __post_init__(self) -> None:
        _check("delay", parse_duration, self.delay)


class Scenario(msgspec.Struct, forbid_unknown_fields=True):
    services: list[Service]
    scenario: Meta = msgspec.field(default_factory=Meta)
    traffic: list[Traffic] = []
    thresholds: list[str | ThresholdRule] = []
    """Pass/fail criteria checked after the run (``edge.scenario.thresholds``); a failed one exits 1."""
    timeline: list[TimelineEvent] = []
    tune: Tune | None = None

    def __post_init__(self) -> None:
        for index, rule in enumerate(threshold_rules(self)):
            try:
                parse_threshold(rule.threshold)
            except ValueError as exc:
                where = f"thresholds[{index}]" if isinstance(self.thresholds[index], str) else f"thresholds[{index}].threshold"
                raise ValueError(f"@{where}: {exc}") from None


def threshold_rules(spec: Scenario) -> list[ThresholdRule]:
    """Every threshold of ``spec`` as a rule, plain strings included."""
    return [ThresholdRule(t) if isinstance(t, str) else t for t in spec.thresholds]


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s]+(/\S*)?$")
_ARRIVALS = re.compile(r"^\s*(poisson|constant)\(\s*(.+?)\s*\)\s*$")
_MSGSPEC_ERROR = re.compile(r"^(?:@(?P<field>[\w.\-\[\]]+): )?(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def parse_arrivals(text: str | None) -> tuple[str, float]:
    """("poisson" | "constant", rate per second) from "poisson(500/s)"; None is poisson(100/s)."""
    match = _ARRIVALS.match(text if text is not None else "poisson(100/s)")
    if not match:
        raise ValueError(f'expected "poisson(RATE)" or "constant(RATE)" with RATE like "500/s", got {text!r}')
    rate = parse_rate(match.group(2))
    if rate < 0:
        raise ValueError(f"expected an arrival rate >= 0, got {match.group(2)!r}")
    return match.group(1), rate


class LoadedScenario(msgspec.Struct):
    """A validated scenario and where it came from (worker paths are relative to ``base_dir``)."""

    spec: Scenario
    file: str
    base_dir: str


def load(path: str | Path) -> LoadedScenario:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read scenario file: {exc.strerror}") from None
    return loads(data, file=str(path), base_dir=str(path.parent))


def loads(data: bytes | str, *, file: str, base_dir: str) -> LoadedScenario:
    try:
        raw = tomllib.loads(data.decode() if isinstance(data, bytes) else data)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    spec = convert(raw, Scenario, file)
    loaded = LoadedScenario(spec=spec, file=file, base_dir=base_dir)
    validate(loaded)
    return loaded


def convert(raw: Any, type: Any, file: str, at: str = "") -> Any:
    """``msgspec.convert``, with a failure raised as a ConfigError naming the path (under ``at``)."""
    try:
        return msgspec.convert(raw, type=type)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_ERROR.match(str(exc))
        assert match is not None  # the pattern accepts any text
        path = _name_dict_keys(raw, match.group("path") or "", str(exc))
        raise ConfigError(file, _join(_join(at, _dotted(path)), match.group("field") or ""), _lower_first(match.group("msg"))) from None


def tune_candidates(loaded: LoadedScenario) -> list[Rollout]:
    """The rollouts ``edge tune`` compares: each candidate over the tuned service's rollout, or
    a grid of step lists and intervals when the scenario lists none."""
    tune = loaded.spec.tune
    assert tune is not None
    base = msgspec.to_builtins(tuned_service(loaded.spec).rollout)
    for field in ("steps", "step_weight", "max_weight", "interval"):
        base.pop(field, None)  # a candidate's schedule replaces the scenario's whole
    candidates = tune.candidates or [
        {"steps": steps, "interval": interval}
        for steps in ([1, 5, 25, 50, 100], [5, 25, 50, 100], [10, 50, 100], [1, 10, 100])
        for interval in ("30s", "1m", "2m")
    ]
    return [convert({**base, **candidate}, Rollout, loaded.file, f"tune.candidates[{i}]") for i, candidate in enumerate(candidates)]


def tuned_service(spec: Scenario) -> Service:
    tune = spec.tune
    assert tune is not None
    with_rollout = [s for s in spec.services if s.rollout is not None]
    if tune.service is not None:
        return next(s for s in with_rollout if s.name == tune.service)
    return with_rollout[0]


_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")


def _name_dict_keys(raw: Any, path: str, message: str) -> str:
    """Replace msgspec's ``[...]`` (a dict key it does not name) with the key that fails.

    Each candidate key is tried alone: the one whose value reproduces the error is the culprit.
    Only runs on the error path, so the repeated conversions cost nothing that matters.
    """
    while "[...]" in path:
        head, _, tail = path.partition("[...]")
        container = raw
        for name, index in ((m.group(1), m.group(2)) for m in _SEGMENT.finditer(head)):
            container = container[name] if name is not None else container[int(index)]
        for key in list(container):
            trimmed = {key: container[key]}
            saved = dict(container)
            container.clear()
            container.update(trimmed)
            try:
                msgspec.convert(raw, type=Scenario)
                same = False
            except msgspec.ValidationError as exc:
                same = str(exc) == message
            finally:
                container.clear()
                container.update(saved)
            if same:
                path = f"{head}.{key}{tail}"
                message = message.replace("[...]", f".{key}", 1)
                break
        else:
            break  # could not tell: keep msgspec's wording
    return path


def _dotted(msgspec_path: str) -> str:
    return msgspec_path[1:] if msgspec_path.startswith(".") else msgspec_path


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path and field else path or field


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def split_target(target: str) -> tuple[str, str | None]:
    """"app@canary" -> ("app", "canary"); "app" -> ("app", None)."""
    service, _, environment = target.partition("@")
    return service, environment or None


def group_name(traffic: Traffic, index: int) -> str:
    """A traffic group's name in reports and metrics: its own, else ``group<index>``."""
    return traffic.name or f"group{index}"


def environments_of(service: Service) -> dict[str, Environment]:
    """The service's environments; a service that lists none has a single "production"."""
    return service.environments or {"production": Environment()}


def serving_environments(service: Service) -> list[str]:
    """Environments that take the service's own traffic (the others are reached only when pinned)."""
    if service.split is not None:
        return [name for name, weight in service.split.weights.items() if weight > 0] or [
            next(iter(service.split.weights))
        ]
    envs = environments_of(service)
    return ["production"] if "production" in envs else [next(iter(envs))]


def validate(loaded: LoadedScenario) -> None:
    """Checks that span tables: names, binding targets, splits, secret references, worker code."""
    from edge.platform.workers import WorkerLoadError, load_worker  # workers imports fetch; keep config light

    spec, file = loaded.spec, loaded.file

    def fail(path: str, expected: str) -> ConfigError:
        return ConfigError(file, path, expected)

    services: dict[str, Service] = {}
    for i, service in enumerate(spec.services):
        if service.name in services:
            raise fail(f"services[{i}].name", f"expected a unique service name, {service.name!r} is defined twice")
        services[service.name] = service
    if not services:
        raise fail("services", "expected at least one service")

    for i, service in enumerate(spec.services):
        here = f"services[{i}]"
        envs = environments_of(service)
        for env_name, env in envs.items():
            env_path = f"{here}.environments.{env_name}" if service.environments else here
            bindings = {**service.bindings, **env.bindings}
            for binding, target in bindings.items():
                where = f"{env_path}.bindings.{binding}" if binding in env.bindings else f"{here}.bindings.{binding}"
                target_service, target_env = split_target(target)
                if target_service not in services:
                    raise fail(where, f"expected the name of a service, got {target!r} (services: {', '.join(services)})")
                if target_env is not None and target_env not in environments_of(services[target_service]):
                    known = ", ".join(environments_of(services[target_service]))
                    raise fail(where, f"expected an environment of {target_service!r} ({known}), got {target_env!r}")
            worker = env.worker or (service.worker if env.model is None else None)
            if worker is None and env.model is None and service.model is None:
                raise fail(env_path, "expected `worker` (a Python module) or `model` (synthetic behaviour)")
            if worker is not None:
                try:
                    load_worker(Path(loaded.base_dir) / worker)
                except WorkerLoadError as exc:
                    raise fail(f"{env_path}.worker" if env.worker else f"{here}.worker", str(exc)) from None
        if service.split is not None:
            for env_name in service.split.weights:
                if env_name not in envs:
                    raise fail(
                        f"{here}.split.weights.{env_name}",
                        f"expected an environment of {service.name!r} ({', '.join(envs)}), got {env_name!r}",
                    )
            retry = service.split.retry
            if retry is not None and retry.to not in envs:
                raise fail(f"{here}.split.retry.to", f"expected an environment of {service.name!r} ({', '.join(envs)}), got {retry.to!r}")
        if service.rollout is not None:
            if service.split is None or len(envs) < 2:
                raise fail(f"{here}.rollout", "expected a split service (environments and `split`): the rollout moves its weights")
            for role in ("canary", "stable"):
                name = getattr(service.rollout, role)
                if name not in envs:
                    raise fail(f"{here}.rollout.{role}", f"expected an environment of {service.name!r} ({', '.join(envs)}), got {name!r}")
            if service.rollout.canary == service.rollout.stable:
                raise fail(f"{here}.rollout.stable", f"expected an environment other than the canary, got {service.rollout.stable!r} for both")

    public = [s for s in spec.services if s.routes]
    group_names: set[str] = set()
    for t, traffic in enumerate(spec.traffic):
        name = group_name(traffic, t)
        if name in group_names:
            raise fail(f"traffic[{t}].name", f"expected a name no other traffic group has, got {name!r} again")
        group_names.add(name)
        for r, template in enumerate(traffic.requests):
            for header, value in template.headers.items():
                if value.startswith("secret:"):
                    ref = value[len("secret:"):]
                    svc, _, name = ref.partition(".")
                    where = f"traffic[{t}].requests[{r}].headers.{header}"
                    if svc not in services:
                        raise fail(where, f'expected "secret:SERVICE.NAME" naming a service, got service {svc!r}')
                    if not any(name in {**services[svc].secrets, **e.secrets} for e in environments_of(services[svc]).values()):
                        raise fail(where, f"expected a secret of {svc!r}, it has no secret {name!r}")
        if not public:
            raise fail(f"traffic[{t}]", "expected at least one public service (one with `routes`) to send traffic to")

    for i, event in enumerate(spec.timeline):
        svc, _, env_name = event.target.partition("@")
        where = f"timeline[{i}]"
        if svc not in services:
            raise fail(f"{where}.target", f"expected a service ({', '.join(services)}), got {svc!r}")
        envs = environments_of(services[svc])
        if env_name and env_name not in envs:
            raise fail(f"{where}.target", f"expected an environment of {svc!r} ({', '.join(envs)}), got {env_name!r}")
        if event.action == "approve" and services[svc].rollout is None:
            raise fail(f"{where}.target", f"expected a service with a rollout, {svc!r} has none")
        if event.action == "weights":
            if services[svc].split is None:
                raise fail(f"{where}.target", f"expected a service with a split, {svc!r} has none")
            unknown = [name for name in event.weights if name not in envs]
            if unknown:
                raise fail(f"{where}.weights.{unknown[0]}", f"expected an environment of {svc!r} ({', '.join(envs)})")
            if abs(sum(event.weights.values()) - 100) > 1e-9 or any(w < 0 for w in event.weights.values()):
                raise fail(f"{where}.weights", f"expected weights >= 0 summing to 100 (percent), got {sum(event.weights.values()):g}")
        if event.action == "promote":
            if event.to not in envs:
                raise fail(f"{where}.to", f"expected an environment of {svc!r} ({', '.join(envs)}), got {event.to!r}")
            if is_model(services[svc], envs[env_name]) != is_model(services[svc], envs[event.to]):
                raise fail(f"{where}.to", f"expected {event.to!r} and {env_name!r} to be both code or both synthetic models")

    if spec.tune is not None:
        with_rollout = [s.name for s in spec.services if s.rollout is not None]
        if not with_rollout:
            raise fail("tune", "expected a service with a `rollout` to tune")
        if spec.tune.service is None and len(with_rollout) > 1:
            raise fail("tune.service", f"expected the service to tune, one of {', '.join(with_rollout)}")
        if spec.tune.service is not None and spec.tune.service not in with_rollout:
            raise fail("tune.service", f"expected a service with a rollout ({', '.join(with_rollout)}), got {spec.tune.service!r}")
        tune_candidates(loaded)

    for i, rule in enumerate(threshold_rules(spec)):
        subject = parse_threshold(rule.threshold).subject
        if subject != "clients":
            svc, _, env_name = subject.partition("@")
            if svc not in services or env_name not in environments_of(services[svc]):
                known = ", ".join(f"{s.name}@{e}" for s in spec.services for e in environments_of(s))
                raise fail(f"thresholds[{i}]", f"expected clients or a service environment ({known}), got {subject!r}")


def is_model(service: Service, env: Environment) -> bool:
    """Does this environment run a synthetic model (rather than worker code)?"""
    return (env.model or (service.model if env.worker is None else None)) is not None


def resolve_secret(spec: Scenario, reference: str) -> str:
    """The value behind "secret:SERVICE.NAME" (production's, or the first environment defining it)."""
    svc_name, _, name = reference[len("secret:"):].partition(".")
    service = next(s for s in spec.services if s.name == svc_name)
    envs = environments_of(service)
    ordered = [envs["production"]] if "production" in envs else []
    for env in ordered + list(envs.values()):
        if name in env.secrets:
            return env.secrets[name]
    return service.secrets[name]
