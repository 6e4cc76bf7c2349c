"""The scenario's schema: msgspec Structs of typed values, one per table of a scenario file.

A scenario is TOML. Decoding checks types and unknown keys and parses every readable value
("250ms", "exp(1ms)", "500/s", "app@canary") into its type (``edge.scenario.values``), so the
runtime never parses a string; each Struct's ``__post_init__`` checks the rules within its table
and raises a ``FieldError`` naming the field, so that the loader (``edge.scenario.load``) can
report the path of the failing one. What spans tables (binding targets, split weights, secret
references, worker modules) is checked once the file is decoded (``edge.scenario.checks``), and
what a service's environments inherit from it is worked out once (``edge.scenario.resolved``).

Limits (``LIMITS``) bound what a file can ask for, so that a hostile or runaway generated file
fails with a message instead of hanging, recursing or running out of memory: a scenario is a
regular file of at most 8 MiB, nested at most 32 deep, with at most 10,000 services and 10,000
environments in all, and at most 1,000 entries in any other list or table (vars, routes, traffic
groups, request templates, ...; the timeline 10,000). benchmarks/scale.py's 1,000 services fit
with room to spare.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Annotated, Any, Callable, Literal

import msgspec

from edge.platform.fetch import Request
from edge.platform.routes import RoutePattern
from edge.scenario.gateway import Gateway
from edge.scenario.replay import ON_ERROR as REPLAY_ON_ERROR, SERVICE_TIMES as REPLAY_SERVICE_TIMES, check_format, format_of
from edge.scenario.thresholds import Threshold, parse_threshold
from edge.scenario.values import (
    ArrivalProcess, Duration, DurationDistribution, FieldError, Gate, HeaderValue, Ratio, Rate, ScaledDistribution, SizeDistribution, Target,
)

Number = int | float

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 32
"""Tables and arrays inside one another; the deepest a scenario needs is about 6."""
MAX_SERVICES = 10_000
MAX_ENVIRONMENTS = 10_000
"""In all, across services: each is an actor with its own metrics."""
MAX_TIMELINE = 10_000
MAX_ENTRIES = 1_000
"""Any other list or table: vars, secrets, bindings, tags, routes, environments of a service,
traffic groups, request templates, headers, stages, bursts, steps, gates, thresholds, candidates."""
LIMITS = {"file bytes": MAX_FILE_BYTES, "depth": MAX_DEPTH, "services": MAX_SERVICES, "environments": MAX_ENVIRONMENTS,
          "timeline events": MAX_TIMELINE, "entries of any other list or table": MAX_ENTRIES}


def _at_most(count: int) -> msgspec.Meta:
    return msgspec.Meta(max_length=count)


Entries = _at_most(MAX_ENTRIES)


class Meta(msgspec.Struct, forbid_unknown_fields=True):
    name: str = "scenario"
    """The scenario's name, in the summary and the report."""
    duration: Duration = Duration("1m")
    """Simulated time traffic is sent for (`edge run --duration` overrides it); the run then drains."""
    seed: int = 1
    """Seed of every random draw: the same seed gives a byte-identical JSON report (`--seed` overrides it)."""
    cpu_limit: Duration = Duration("50ms")
    """CPU budget of one top-level request, shared by every worker it reaches."""
    cores: int = 8
    """The node's cores: CPU work waits (FIFO) when all are busy."""
    max_invocations: int = 32
    """Service-binding invocations allowed per top-level request (Workers allow 32)."""
    step_limit: Duration | None = None
    """Wall time one worker step (the code between two awaits) may hold the event loop before the
    watchdog interrupts it (503, error 1102): default 1s live, 10s in virtual time."""
    measure_cpu: bool = False
    """Virtual time: charge code workers' measured CPU (thread CPU time of each step) as well as
    what they declare with ``ctx.cpu``, the larger of the two per call, as live mode always does.
    Off by default: real CPU varies from run to run, so such a run is not deterministic."""
    drain: Duration = Duration("30s")
    """After traffic stops, how long requests in flight get to finish before the run ends: a run
    of ``duration`` 20s simulates up to 20s + drain (it ends sooner once every request is
    answered). A request still waiting then is counted "never answered": an error, and exit 1."""
    request_limit: Duration | None = None
    """Wall time a top-level request may take from its arrival: at it, the platform answers 504
    itself and (live) stops the work. Off by default, as on Cloudflare, which sets no wall-time
    limit on a request whose client is still connected."""
    workers_subdomain: str = "edge"
    """The account's workers.dev subdomain: each environment of a public service also answers at
    its preview hostname ENVIRONMENT.SERVICE.SUBDOMAIN.workers.dev (``preview_host``)."""
    max_rate: Number = 1_000_000
    """Requests per simulated second one traffic group may send at its peak (a looped replay: on
    average over a pass). A rate no run could simulate in reasonable time, usually a typo such as
    ``constant(1000000000/s)``, is refused at load rather than started; raise it to run more."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_rate) and self.max_rate > 0):
            raise FieldError("max_rate", f"expected a positive number of requests per second, got {self.max_rate}")
        if not _LABEL.match(self.workers_subdomain):
            raise FieldError("workers_subdomain", f"expected a DNS label (lowercase letters, digits and '-'), got {self.workers_subdomain!r}")
        if self.request_limit is not None and self.request_limit.seconds <= 0:
            raise FieldError("request_limit", f"expected a positive duration, got {self.request_limit.raw!r}")
        if self.cores < 1:
            raise FieldError("cores", f"expected at least 1 core, got {self.cores}")
        if self.max_invocations < 1:
            raise FieldError("max_invocations", f"expected at least 1, got {self.max_invocations}")


class Model(msgspec.Struct, forbid_unknown_fields=True):
    """A synthetic worker: behaviour given by distributions instead of code."""

    cpu: DurationDistribution = DurationDistribution(0)
    """CPU time per call: charged to the request's budget, holding a core."""
    latency: DurationDistribution = DurationDistribution(0)
    """Time spent waiting without CPU (storage, origin fetches)."""
    errors: Ratio = Ratio(0.0)
    """Share of calls answered with `error_status`."""
    error_status: int = 500
    """The status of a failed call."""
    size: SizeDistribution = SizeDistribution(0)
    """Response body size in bytes (a distribution is allowed: "exp(2KiB)")."""

    def __post_init__(self) -> None:
        # 200..599: what a Response accepts (an informational 1xx is not an answer a worker gives).
        if not 200 <= self.error_status <= 599:
            raise FieldError("error_status", f"expected an HTTP status 200..599, got {self.error_status}")


class _Deployment(msgspec.Struct, forbid_unknown_fields=True):
    """What a service sets for all its environments and an environment may set again."""

    worker: str | None = None
    """A Python worker module, its path relative to the scenario file: Cloudflare's Python Workers shape (`class Default(WorkerEntrypoint)`), `on_fetch`, or `async def fetch(request, env, ctx)`."""
    model: Model | None = None
    """A synthetic worker instead of code: distributions of CPU, latency, errors and size."""
    gateway: Gateway | None = None
    """Seed 004's API gateway: the platform serves the environment from this table (routes to
    bound services' RPC methods) instead of code or a model (``edge.scenario.gateway``)."""
    vars: Annotated[dict[str, str], Entries] = {}
    """Plain values the worker reads as `env.NAME`."""
    secrets: Annotated[dict[str, str], Entries] = {}
    """Values the worker reads as `env.NAME`, kept out of logs, metrics and reports; traffic may send one as a header value `secret:SERVICE.NAME`."""
    bindings: Annotated[dict[str, Target], Entries] = {}
    """Service bindings: `env.NAME.fetch(request)` or `env.NAME.method(...)` calls the target, sharing the request's CPU budget."""
    version: int | None = None
    """The version answers count under (default 1); a `deploy` event raises it."""
    tags: Annotated[dict[str, str], Entries] = {}
    """Labels of the deployment (git commit, date), shown in the report."""
    concurrency: int | None = None
    """Calls served at once (default 256); more wait in the mailbox."""
    mailbox: int | None = None
    """Calls that may wait (default 1024); beyond that they are shed with 503."""
    cold_start: DurationDistribution | None = None
    """Time a slot idle longer than `keep_warm` takes before serving again (default none)."""
    keep_warm: Duration | None = None
    """How long an idle isolate stays warm (default 5m): the TTL of the environment's isolate cache."""
    max_isolates: int | None = None
    """Idle warm isolates the node keeps for an environment (default: its concurrency, one per
    slot); one more evicts the least recently used. Needs a ``cold_start``."""

    def __post_init__(self) -> None:
        _check_deployment_fields(self)


class Environment(_Deployment):
    """One deployment of a service; unset fields inherit the service's (``vars``, ``secrets``,
    ``bindings`` and ``tags`` key by key). Its ``routes`` are its own: a request matching one is
    served by this environment, never split."""

    routes: Annotated[list[RoutePattern], Entries] = []
    """Routes of this environment alone, e.g. "staging.example.com/*" (besides its generated preview hostname)."""


def _check_deployment_fields(env: _Deployment) -> None:
    if env.worker is not None and env.model is not None:
        raise FieldError("worker", "expected either `worker` (Python code) or `model` (synthetic), not both")
    if env.gateway is not None and (env.worker is not None or env.model is not None):
        raise FieldError("gateway", "expected either `gateway` (served by the platform) or `worker`/`model`, not both")
    if env.concurrency is not None and env.concurrency < 1:
        raise FieldError("concurrency", f"expected at least 1, got {env.concurrency}")
    if env.max_isolates is not None and env.max_isolates < 1:
        raise FieldError("max_isolates", f"expected at least 1 isolate, got {env.max_isolates}")
    if env.mailbox is not None and env.mailbox < 0:
        raise FieldError("mailbox", f"expected a capacity >= 0, got {env.mailbox}")
    if env.version is not None and env.version < 1:
        raise FieldError("version", f"expected a version number >= 1, got {env.version}")


class RetryBudget(msgspec.Struct, forbid_unknown_fields=True):
    """Linkerd's retry budget: over the last ``window``, retries may number at most ``ratio`` of
    the requests plus ``min_per_second`` per second; beyond that a failed attempt is not retried
    (its caller gets the failure), so a broken canary cannot double the load on production."""

    ratio: Number = 0.2
    """Retries allowed per request over the window (0.2: one retry per five requests)."""
    min_per_second: Number = 10
    """Retries per second always allowed on top of the ratio, so that low traffic can still retry."""
    window: Duration = Duration("10s")
    """How far back the requests and retries are counted."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ratio) and self.ratio >= 0):
            raise FieldError("ratio", f"expected retries per request >= 0 (0.2 is one retry per five requests), got {self.ratio}")
        if not (math.isfinite(self.min_per_second) and self.min_per_second >= 0):
            raise FieldError("min_per_second", f"expected retries per second >= 0, got {self.min_per_second}")
        if self.window.seconds <= 0:
            raise FieldError("window", f"expected a positive duration, got {self.window.raw!r}")


class Retry(msgspec.Struct, forbid_unknown_fields=True):
    """Seed 003's fallback: a failed attempt on another environment is retried on ``to``."""

    on: str = "5xx"
    """Which failures are retried: "5xx" (a status of 500 or more) is the only choice."""
    methods: Annotated[list[str], Entries] = msgspec.field(default_factory=lambda: ["GET", "HEAD"])
    """Only requests with these methods are retried (the seed: GET and HEAD, which are safe to send twice)."""
    to: str = "production"
    """The environment a failed attempt is retried on."""
    budget: RetryBudget | None = None
    """Caps retries (none: every retryable failure is retried)."""

    def __post_init__(self) -> None:
        if self.on != "5xx":
            raise FieldError("on", f'expected "5xx" (retry when the status is >= 500), got {self.on!r}')
        self.methods = [m.upper() for m in self.methods]


class Affinity(msgspec.Struct, forbid_unknown_fields=True):
    """Sticky assignment: requests carrying the same key see the same environment (while the
    weights allow: raising the canary's weight only moves users to it, never back)."""

    header: str | None = None
    """The request header whose value is the affinity key (e.g. a user id)."""
    cookie: str | None = None
    """The cookie whose value is the affinity key."""

    def __post_init__(self) -> None:
        if (self.header is None) == (self.cookie is None):
            raise FieldError("header", "expected either `header` or `cookie` to name the affinity key, not both or neither")


class Split(msgspec.Struct, forbid_unknown_fields=True):
    weights: Annotated[dict[str, Number], Entries]
    """Percent of the service's traffic per environment; must sum to 100 (0.1 means 0.1%)."""
    retry: Retry | None = None
    """Seed 003's fallback: failed attempts on another environment retried on one (default production)."""
    affinity: Affinity | None = None
    """Keep each user (a header's or cookie's value) on one environment."""
    override: str | None = None
    """A request header naming an environment pins the request to it (Cloudflare's version
    overrides): for testing a canary by hand at weight 0."""

    def __post_init__(self) -> None:
        for name, weight in self.weights.items():
            if not (math.isfinite(weight) and 0 <= weight <= 100):
                raise FieldError(f"weights.{name}", f"expected a percentage between 0 and 100, got {weight}")
        total = sum(self.weights.values())
        if abs(total - 100) > 1e-9:
            raise FieldError("weights", f"expected weights summing to 100 (percent), got {total:g}")


class RolloutStep(msgspec.Struct, forbid_unknown_fields=True):
    """A step of a rollout with a gate of its own: wait ``pause`` before it, or for an approval."""

    weight: Number
    """The canary's percentage of the traffic at this step, in (0, 100]."""
    pause: Duration | None = None
    """How long to wait at the previous weight before this step (instead of one `interval`)."""
    manual: bool = False
    """Wait for an approval (timeline action ``approve``, or the admin API live) before this step."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and 0 < self.weight <= 100):
            raise FieldError("weight", f"expected a percentage in (0, 100], got {self.weight}")


COMPARE_SPENDING = ("obrien-fleming", "pocock", "per-look")


class Compare(msgspec.Struct, forbid_unknown_fields=True):
    """A statistical gate on latency: the canary's against the stable environment's, per interval."""

    test: str = "mann-whitney"
    """The test: "mann-whitney" (one-sided: is the canary slower?) is the only choice."""
    alpha: Number = 0.01
    """The probability that a canary as fast as the stable environment fails a comparison:
    over the whole rollout, spent over its planned comparisons by ``spending`` (or at each
    comparison, with ``spending = "per-look"``). A comparison fails on a one-sided p-value below
    its level."""
    spending: str = "obrien-fleming"
    """How ``alpha`` is spent over the rollout's comparisons (one an analysis at each step below
    100%, plus one per failure the ``failure_limit`` lets it survive): "obrien-fleming" (little at
    the first steps, where the canary has few answers), "pocock" (evenly), or "per-look" (alpha at
    each comparison: about that many times alpha over the rollout)."""
    min_shift: Duration = Duration("0s")
    """...and its median is slower by more than this (a difference too small to matter is not a failure)."""
    min_samples: int = 20
    """Answers each side needs in the interval for the test to be run; with fewer, or while the
    stable environment's weight is 0 (its answers are leftovers of the step before), the gate
    compares nothing and passes."""

    def __post_init__(self) -> None:
        if self.test != "mann-whitney":
            raise FieldError("test", f'expected "mann-whitney", got {self.test!r}')
        if not 0 < self.alpha < 1:
            raise FieldError("alpha", f"expected a probability in (0, 1), got {self.alpha}")
        if self.min_samples < 1:
            raise FieldError("min_samples", f"expected at least 1 answer a side, got {self.min_samples}")
        if self.spending not in COMPARE_SPENDING:
            raise FieldError("spending", f"expected one of {', '.join(COMPARE_SPENDING)}, got {self.spending!r}")


class Sequential(msgspec.Struct, forbid_unknown_fields=True):
    """Wald's sequential probability ratio test on the canary's error ratio, over every canary
    answer since the rollout began: H0 "error ratio p0" against H1 "p1"; crossing the upper bound
    rolls back at once, crossing the lower one passes this gate for the rest of the rollout."""

    p0: Ratio
    """The error ratio of a good canary (H0)."""
    p1: Ratio
    """The error ratio of a bad canary (H1), above p0."""
    alpha: Number = 0.01
    """At most this probability of rolling back a canary at p0 (a false rollback): Wald's bounds
    are upper bounds, and looking once an interval overshoots them (measured: 1.9% for 0.1, 0.09%
    for 0.01); `edge tune` measures the real rate."""
    beta: Number = 0.05
    """At most this probability of missing a canary at p1 (likewise an upper bound)."""

    def __post_init__(self) -> None:
        p0, p1 = self.p0.fraction, self.p1.fraction
        if not 0 < p0 < p1 < 1:
            raise FieldError("p1", f"expected 0 < p0 < p1 < 1, got p0 {p0:g} and p1 {p1:g}")
        for name in ("alpha", "beta"):
            if not 0 < getattr(self, name) < 0.5:
                raise FieldError(f"{name}", f"expected a probability in (0, 0.5), got {getattr(self, name)}")


NO_DATA = ("fail", "pass", "hold")


class Rollout(msgspec.Struct, forbid_unknown_fields=True):
    """A progressive rollout of ``canary`` (Flagger/Argo Rollouts style), driven by the router.

    Every ``interval`` the canary's last interval is analysed: the ``gates`` (thresholds on the
    canary over the interval), the optional statistical gates; a pass moves to the next step's
    weight, a failure counts, and ``failure_limit`` failures roll back (canary weight 0). After the
    last step the canary is promoted: ``stable`` takes its version and all the traffic.
    """

    steps: Annotated[list[Number | RolloutStep], Entries] = []
    """Canary weights in order, e.g. [0.1, 1, 5, 25, 50, 100]; or use step_weight/max_weight."""
    step_weight: Number | None = None
    """Instead of `steps`: raise the canary by this much at each step, up to `max_weight`."""
    max_weight: Number = 100
    """With `step_weight`: the last step's weight."""
    canary: str = "canary"
    """The environment rolled out."""
    stable: str = "production"
    """The environment the canary is compared with, and promoted into at the end."""
    start: Duration = Duration("0s")
    """When the rollout begins (simulated time from the start of the run)."""
    interval: Duration = Duration("1m")
    """How often the canary's last interval is analysed; a pass moves to the next step."""
    gates: Annotated[list[Gate], Entries] = []
    """Thresholds on the canary over one interval (``of SERVICE@ENV`` may be left out)."""
    min_requests: int = 0
    """Canary answers an interval needs to be judged; fewer is "no data"."""
    no_data: str = "fail"
    """What an interval without enough data counts as: "fail" (as Flagger), "pass", or "hold"
    (neither: the step is analysed again next interval)."""
    failure_limit: int = 1
    """Failed analyses that roll the canary back (weight 0)."""
    compare: Compare | None = None
    """A statistical gate on latency: the canary's against the stable environment's."""
    sequential: Sequential | None = None
    """A sequential test (SPRT) on the canary's error ratio over the whole rollout."""

    def __post_init__(self) -> None:
        if bool(self.steps) == (self.step_weight is not None):
            raise FieldError("steps", "expected either `steps` (a list of weights) or `step_weight` (and `max_weight`), not both or neither")
        if self.step_weight is not None and not (0 < self.step_weight <= self.max_weight <= 100):
            raise FieldError("step_weight", f"expected 0 < step_weight <= max_weight <= 100, got {self.step_weight} and {self.max_weight}")
        last = 0.0
        for index, step in enumerate(rollout_steps(self)):
            if step.weight <= last:
                raise FieldError(f"steps[{index}]", f"expected weights that increase, got {step.weight} after {last:g}")
            last = step.weight
        if self.interval.seconds <= 0:
            raise FieldError("interval", f"expected a positive duration, got {self.interval.raw!r}")
        if self.no_data not in NO_DATA:
            raise FieldError("no_data", f"expected one of {', '.join(NO_DATA)}, got {self.no_data!r}")
        if self.failure_limit < 1:
            raise FieldError("failure_limit", f"expected at least 1, got {self.failure_limit}")
        if self.min_requests < 0:
            raise FieldError("min_requests", f"expected a count >= 0, got {self.min_requests}")


def rollout_steps(rollout: Rollout) -> list[RolloutStep]:
    """The steps as records, from either form."""
    if rollout.step_weight is not None:
        count = int(rollout.max_weight // rollout.step_weight)
        return [RolloutStep(weight=rollout.step_weight * (i + 1)) for i in range(count)]
    return [RolloutStep(weight=s) if isinstance(s, (int, float)) else s for s in rollout.steps]


class Service(_Deployment, kw_only=True):
    name: str
    """The service's name: what bindings, thresholds and targets call it."""
    routes: Annotated[list[RoutePattern], Entries] = []
    """Public routes such as "example.com/*"; a service without routes is private."""
    environments: Annotated[dict[str, Environment], Entries] = {}
    """Its deployments by name (`production`, `canary`); none means one, `production`, from the service's own fields."""
    split: Split | None = None
    """How the service's traffic is shared between its environments (weights, retry, affinity)."""
    rollout: Rollout | None = None
    """A progressive rollout of the canary, driven by analysis of its answers."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise FieldError("name", f"expected a service name of letters, digits, '-' and '_', got {self.name!r}")
        for env_name in self.environments:  # part of a preview hostname and of "SERVICE@ENV"
            if not _NAME.match(env_name):
                raise FieldError(f"environments.{env_name}", f"expected an environment name of letters, digits, '-' and '_'")
        _check_deployment_fields(self)


class RequestTemplate(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    """An absolute URL: its host and path pick the route, e.g. "https://example.com/products?page=2"."""
    method: str = "GET"
    """The HTTP method."""
    weight: Number = 1
    """The template's share of the group's requests, relative to the other templates' weights."""
    headers: Annotated[dict[str, HeaderValue], Entries] = {}
    """A value "secret:SERVICE.NAME" is replaced by that service's secret (never printed)."""
    body: str | None = None
    """A literal body (not with GET or HEAD)."""
    body_size: SizeDistribution | None = None
    """A body of this many bytes (a size or a size distribution, "2KiB", "exp(4KiB)"), drawn per request."""

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        if self.body_size is not None and self.body is not None:
            raise FieldError("body_size", "expected either `body` (a literal) or `body_size`, not both")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise FieldError("weight", f"expected a positive weight, got {self.weight}")
        if not _URL.match(self.url):
            raise FieldError("url", f'expected an absolute URL like "https://example.com/path", got {self.url!r}')
        for field in ("body", "body_size"):
            if getattr(self, field) is not None and self.method in ("GET", "HEAD"):
                raise FieldError(f"{field}", f"a {self.method} request cannot have a body")
        _check_request(self)


def _check_request(template: RequestTemplate) -> None:
    """What the traffic's ``Request`` will refuse (a method or a header name that is not an HTTP
    token, a value with a line break) is refused here, with its path, rather than mid-run."""
    made: list[tuple[str, Callable[[], Request]]] = [
        ("url", functools.partial(Request, template.url)),
        ("method", functools.partial(Request, template.url, method=template.method)),
        # A secret's own value is not known here: its name is what can be checked.
        *((f"headers.{name}", functools.partial(Request, template.url, headers=[(name, "" if value.secret else str(value.raw))]))
          for name, value in template.headers.items()),
    ]
    for field, make in made:
        try:
            make()
        except TypeError as exc:
            raise FieldError(f"{field}", f"expected what a fetch Request accepts: {exc}") from None


class Stage(msgspec.Struct, forbid_unknown_fields=True):
    duration: Duration
    """How long the stage lasts; stages follow each other from the group's start."""
    rate: Rate
    """The arrival rate at the end of the stage, reached linearly from the one before."""


class DiurnalShape(msgspec.Struct, forbid_unknown_fields=True):
    period: Duration = Duration("24h")
    """The length of one cycle of the rate (a day by default)."""
    trough: Number = 0.3
    """The lowest rate as a fraction of the highest."""
    peak: Duration = Duration("14h")
    """When in the period the rate is highest."""

    def __post_init__(self) -> None:
        if self.period.seconds <= 0:
            raise FieldError("period", f"expected a positive duration, got {self.period.raw!r}")
        if not 0 < self.trough <= 1:
            raise FieldError("trough", f"expected a fraction in (0, 1], got {self.trough}")


class BurstSpec(msgspec.Struct, forbid_unknown_fields=True):
    at: Duration
    """When the burst begins (simulated time from the start of the run)."""
    duration: Duration
    """How long it lasts."""
    factor: Number
    """The rate is multiplied by this while the burst lasts."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor >= 0):
            raise FieldError("factor", f"expected a non-negative multiplier, got {self.factor}")


class Traffic(msgspec.Struct, forbid_unknown_fields=True):
    """A group of clients: open (an arrival rate) or closed (``users`` with think time)."""

    requests: Annotated[list[RequestTemplate], Entries] = []
    """The request mix: templates drawn by weight for each request (none with ``replay``)."""
    name: str = ""
    """The group's name in the report (default: its position)."""
    arrivals: ArrivalProcess | None = None
    """poisson(RATE) or constant(RATE), RATE like "500/s" (the start rate when there are stages);
    default poisson(100/s) for an open group."""
    stages: Annotated[list[Stage], Entries] = []
    """A ramp: the arrival rate moves linearly to each stage's rate over its duration."""
    diurnal: DiurnalShape | None = None
    """A daily shape over the arrival rate (a trough and a peak per period)."""
    bursts: Annotated[list[BurstSpec], Entries] = []
    """Times when the arrival rate is multiplied for a while."""
    users: int | None = None
    """A closed group: this many users, each sending, waiting for the answer, thinking, again."""
    think: DurationDistribution = DurationDistribution("0s")
    """Think time between a user's answer and its next request: a duration distribution."""
    timeout: Duration | None = None
    """The client gives up after this long: counted as a timeout (an error), whatever comes later."""
    max_inflight: int | None = None
    """Open groups: arrivals that find this many requests of the group outstanding are dropped
    (and counted), as a load tool whose virtual users are all busy."""
    start: Duration = Duration(0)
    """When the group starts sending (simulated time from the start of the run)."""
    duration: Duration | None = None
    """How long the group sends (default: until the end of the run)."""
    replay: str | None = None
    """Recorded traffic instead of a request mix: a log file (path relative to the scenario) whose
    requests are sent at their recorded times (``edge.scenario.replay`` has the formats)."""
    replay_format: str | None = None
    """The replay file's format: clf (Common or Combined Log Format, and any fields after them),
    jsonl, har, or a log format as nginx's log_format or Apache's LogFormat writes it
    ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent $request_time');
    default from its extension (.har, .jsonl or .ndjson, anything else clf)."""
    on_error: str = "abort"
    """Replay: a line that cannot be read stops the load naming it ("abort"), or is skipped and
    counted in the report ("skip": a TLS handshake or an empty request logged as a 400)."""
    service_time: str = "logged"
    """Replay: a request whose line logs a request time is served by a synthetic model in that
    time ("logged"), or as any other request, in the model's ("model")."""
    base_url: str | None = None
    """Replay: the scheme and host a logged path is sent to, e.g. "https://example.com" (a log
    line has a path only)."""
    speed: Number = 1
    """Replay: how many times faster than recorded (2 halves every gap)."""
    loop: bool = False
    """Replay: start the file again when it ends, until the group's end (one mean gap between passes)."""

    def __post_init__(self) -> None:
        if self.replay is not None:
            self._check_replay()
            return
        for field, value in (("replay_format", self.replay_format), ("base_url", self.base_url), ("speed", self.speed != 1), ("loop", self.loop),
                             ("on_error", self.on_error != "abort"), ("service_time", self.service_time != "logged")):
            if value:
                raise FieldError(f"{field}", f"only for a replayed group (replay = \"FILE\")")
        if not self.requests:
            raise FieldError("requests", "expected at least one request template")
        if self.users is not None:
            if self.users < 1:
                raise FieldError("users", f"expected at least one user, got {self.users}")
            open_only: list[tuple[str, object]] = [("arrivals", self.arrivals), ("stages", self.stages), ("diurnal", self.diurnal),
                                                   ("bursts", self.bursts), ("max_inflight", self.max_inflight)]
            for field, given in open_only:
                if given:
                    raise FieldError(f"{field}", f"a closed group (users = ...) has no arrival rate; drop {field} or users")
        if self.max_inflight is not None and self.max_inflight < 1:
            raise FieldError("max_inflight", f"expected at least 1, got {self.max_inflight}")
        if self.timeout is not None and self.timeout.seconds <= 0:
            raise FieldError("timeout", f"expected a positive duration, got {self.timeout.raw!r}")

    def _check_replay(self) -> None:
        assert self.replay is not None
        mixed: list[tuple[str, object]] = [("requests", self.requests), ("arrivals", self.arrivals), ("stages", self.stages),
                                           ("diurnal", self.diurnal), ("bursts", self.bursts), ("users", self.users)]
        for field, value in mixed:
            if value:
                raise FieldError(f"{field}", f"a replayed group sends the file's requests at its times; drop {field} or replay")
        if self.base_url is None or not _BASE_URL.match(self.base_url):
            raise FieldError("base_url", f'expected the scheme and host the replayed paths go to, like "https://example.com", got {self.base_url!r}')
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise FieldError("speed", f"expected a positive factor, got {self.speed}")
        if self.replay_format is not None:
            try:
                check_format(self.replay_format)
            except ValueError as exc:
                raise FieldError("replay_format", f"{exc}") from None
        for field, choice, choices in (("on_error", self.on_error, REPLAY_ON_ERROR), ("service_time", self.service_time, REPLAY_SERVICE_TIMES)):
            if choice not in choices:
                raise FieldError(f"{field}", f"expected {' or '.join(map(repr, choices))}, got {choice!r}".replace("'", '"'))
        if self.on_error == "skip" and format_of(self.replay, self.replay_format) == "har":
            raise FieldError("on_error", 'a HAR file is one JSON document, read whole or refused: "skip" is for logs and JSON lines')
        if self.max_inflight is not None and self.max_inflight < 1:
            raise FieldError("max_inflight", f"expected at least 1, got {self.max_inflight}")
        if self.timeout is not None and self.timeout.seconds <= 0:
            raise FieldError("timeout", f"expected a positive duration, got {self.timeout.raw!r}")


TIMELINE_ACTIONS = ("set", "crash", "cold", "weights", "deploy", "promote", "rollback", "approve")


class TimelineEvent(msgspec.Struct, forbid_unknown_fields=True):
    """Something that happens to the topology at a simulated time: the script of a rollout story.

    * ``set`` (target ``SERVICE@ENV``): new behaviour, as a new version. A synthetic worker's
      ``latency``, ``cpu``, ``errors`` replace its model's; a code worker gets them injected before
      its code runs (extra wait, extra CPU, that share of calls answered 500 without running it).
    * ``crash`` (target ``SERVICE@ENV``, ``duration``): new calls get 503 until it restarts,
      with every slot cold.
    * ``cold`` (target ``SERVICE@ENV``): every slot goes cold at once (a cold-start storm).
    * ``weights`` (target ``SERVICE``, ``weights``): a new split.
    * ``deploy`` (target ``SERVICE@ENV``): a new version (``version``, default one above every
      earlier version: numbers only grow) with ``tags``, ``message``, changed ``vars``, and
      optionally new behaviour as ``set``.
    * ``promote`` (target ``SERVICE@ENV``, ``to`` default "production"): ``to`` takes the target's
      code or model, as a new version of ``to`` recording its source ("from app@staging v4"), and
      all of the service's traffic.
    * ``rollback`` (target ``SERVICE@ENV``, ``version`` default the one deployed before): that
      earlier version serves again, code or model, vars and faults as it was made.
    * ``approve`` (target ``SERVICE``): lets the service's rollout past a ``manual`` step.
    """

    at: Duration
    """When the event happens (simulated time from the start of the run)."""
    action: str
    """What happens: set, crash, cold, weights, deploy, promote, rollback or approve (see above)."""
    target: Target
    """What it happens to: "SERVICE@ENV", or "SERVICE" for weights and approve."""
    latency: DurationDistribution | None = None
    """set/deploy: a new latency (a synthetic model's, or an extra wait before a code worker runs)."""
    cpu: DurationDistribution | None = None
    """set/deploy: a new CPU cost (a model's, or extra CPU before a code worker runs)."""
    errors: Ratio | None = None
    """set/deploy: the share of calls answered 500."""
    duration: Duration | None = None
    """crash: how long until the environment restarts (cold)."""
    weights: Annotated[dict[str, Number], Entries] = {}
    """weights: the new split, e.g. { production = 95, canary = 5 }."""
    version: int | None = None
    """deploy: the new version's number (above every earlier one); rollback: the version to serve again."""
    tags: Annotated[dict[str, str], Entries] = {}
    """deploy: the new version's labels (git commit, date)."""
    to: str = "production"
    """promote: the environment that takes the target's code or model."""
    message: str = ""
    """deploy: the new version's message, shown in its history."""
    vars: Annotated[dict[str, str], Entries] = {}
    """deploy: vars changed by the new version."""

    def __post_init__(self) -> None:
        if self.action not in TIMELINE_ACTIONS:
            raise FieldError("action", f"expected one of {', '.join(TIMELINE_ACTIONS)}, got {self.action!r}")
        pinned = self.target.pinned
        if self.action == "approve":
            if pinned:
                raise FieldError("target", f"an approval is for a service's rollout, got {self.target!r}")
        elif self.action == "weights":
            if pinned:
                raise FieldError("target", f"weights apply to a service (its router), got {self.target!r}")
            if not self.weights:
                raise FieldError("weights", "expected the new split, e.g. { production = 95, canary = 5 }")
        elif not pinned:
            raise FieldError("target", f'expected "SERVICE@ENVIRONMENT" for {self.action}, got {self.target!r}')
        if self.action == "crash":
            if self.duration is None:
                raise FieldError("duration", "expected how long the crash lasts, e.g. \"30s\"")
        if self.version is not None and self.version < 1:
            raise FieldError("version", f"expected a version number >= 1, got {self.version}")
        if self.version is not None and self.action not in ("deploy", "rollback"):
            raise FieldError("version", f"only a deploy (its number) or a rollback (the version to return to) takes one, not {self.action}")
        if self.vars and self.action != "deploy":
            raise FieldError("vars", f"only a deploy changes vars (as a new version), not {self.action}")


class Behaviour(msgspec.Struct, forbid_unknown_fields=True):
    """A canary's behaviour under a tuning hypothesis, applied as a timeline ``set`` at time 0."""

    errors: Ratio | None = None
    """The share of the canary's calls answered 500."""
    latency: ScaledDistribution | None = None
    """The canary's latency (a synthetic model's, or an extra wait before its code runs), or
    "xN": N times its model's (a latency bug of the same shape; a synthetic model only)."""
    cpu: ScaledDistribution | None = None
    """The canary's CPU per call (a model's, or extra CPU before its code runs), or "xN": N times
    its model's (a synthetic model only)."""


class TuneLimits(msgspec.Struct, forbid_unknown_fields=True):
    """What a schedule must achieve to be recommended."""

    false_rollback: Ratio = Ratio("1%")
    """At most this probability of rolling back a good canary."""
    caught: Ratio = Ratio("99%")
    """At least this probability of rolling back a bad one."""
    errors_seen: int | None = None
    """At most this many requests (on average) answered with a canary's error, after fallbacks."""


class PowerGrid(msgspec.Struct, forbid_unknown_fields=True):
    """``edge tune --power``: bugs of growing size, one kind, each a hypothesis of its own."""

    errors: Annotated[list[Ratio], Entries] = []
    """Error ratios of the bad canary, e.g. ["0.2%", "0.5%", "1%", "2%"]."""
    latency: Annotated[list[ScaledDistribution], Entries] = []
    """Latency factors of the bad canary's model, e.g. ["x1", "x1.5", "x2", "x3"]."""
    cpu: Annotated[list[ScaledDistribution], Entries] = []
    """CPU factors of the bad canary's model, e.g. ["x1", "x2", "x4"]."""
    replications: int = 40
    """Replications of every schedule at every point (and under a good canary)."""

    def __post_init__(self) -> None:
        given = [name for name in ("errors", "latency", "cpu") if getattr(self, name)]
        if len(given) != 1:
            raise FieldError("errors", f"expected exactly one of errors, latency or cpu (a curve has one axis), got {len(given)}")
        for name in ("latency", "cpu"):
            for index, value in enumerate(getattr(self, name)):
                if value.factor is None:
                    raise FieldError(f"{name}[{index}]", f'expected a factor like "x1.5" (a curve needs sizes to order), got {value.raw!r}')
        sizes = self.sizes
        for index in range(1, len(sizes)):
            if sizes[index] <= sizes[index - 1]:
                raise FieldError(f"{self.kind}[{index}]", f"expected bugs that grow, got {self.bugs[index]} after {self.bugs[index - 1]}")
        if self.replications < 2:
            raise FieldError("replications", f"expected at least 2 (for a confidence interval), got {self.replications}")

    @property
    def kind(self) -> str:
        return "errors" if self.errors else ("latency" if self.latency else "cpu")

    @property
    def bugs(self) -> list[str]:
        return [str(v) for v in getattr(self, self.kind)]

    @property
    def sizes(self) -> list[float]:
        """Each bug's size: an error ratio, or a factor."""
        return [v.fraction if isinstance(v, Ratio) else v.factor for v in getattr(self, self.kind)]

    def behaviour(self, index: int) -> Behaviour:
        """The bad canary at point ``index``: that bug alone."""
        return Behaviour(**{self.kind: getattr(self, self.kind)[index]})


class Tune(msgspec.Struct, forbid_unknown_fields=True):
    """``edge tune``: compare rollout schedules under a hypothesis about the canary."""

    bad: Behaviour
    """The canary when its version is broken, e.g. { errors = "0.5%" }."""
    good: Behaviour | None = None
    """The canary when it is fine; by default it behaves as the stable environment (a synthetic
    model is copied from it; code is left as it is)."""
    service: str | None = None
    """The service whose rollout is tuned (default: the only one with a rollout)."""
    candidates: Annotated[list[dict[str, Any]], Entries] = []
    """Rollout settings to compare, each over the scenario's rollout, e.g. { steps = [1, 10, 100],
    interval = "2m" }; none: a grid of step lists and intervals."""
    replications: int = 200
    """At most this many replications per schedule (``edge tune --budget`` overrides it): the
    run stops earlier once its recommendation is decided."""
    limits: TuneLimits = msgspec.field(default_factory=TuneLimits)
    """What a schedule must achieve to be recommended (false rollbacks, catches, errors seen)."""
    grid: PowerGrid | None = None
    """Bugs of growing size for ``edge tune --power``: each schedule's P(caught) and time to
    rollback at every point, and the smallest bug it catches with probability ``limits.caught``."""

    def __post_init__(self) -> None:
        if self.replications < 2:
            raise FieldError("replications", f"expected at least 2 (for a confidence interval), got {self.replications}")


class ThresholdRule(msgspec.Struct, forbid_unknown_fields=True):
    """A threshold with options; a plain string in ``thresholds`` is a rule without them."""

    threshold: Threshold
    """The threshold line, e.g. "p99 latency of app@canary < 200ms"."""
    abort: bool = False
    """Stop the run as soon as this threshold fails (as k6's abortOnFail), instead of at the end.
    Checked on the run so far at every interval of the report's series."""
    delay: Duration = Duration("0s")
    """Do not abort before this much simulated time (as k6's delayAbortEval): early figures are
    few and noisy."""
    no_data: Literal["fail", "pass"] = "fail"
    """What the threshold says when its subject saw no requests (the clients sent none, the
    environment answered none): "fail" with the reason "no data" (k6's choice: a run that measured
    nothing proved nothing), or "pass" (e.g. a canary that may get no traffic). ``requests``
    thresholds always have data: a count of zero requests is what they measure."""


class Scenario(msgspec.Struct, forbid_unknown_fields=True):
    services: Annotated[list[Service], _at_most(MAX_SERVICES)]
    """The topology: one table per service (`[[services]]`)."""
    scenario: Meta = msgspec.field(default_factory=Meta)
    """The run itself (`[scenario]`): name, duration, seed, limits."""
    traffic: Annotated[list[Traffic], Entries] = []
    """Client groups (`[[traffic]]`), each with its own arrivals and request mix."""
    thresholds: Annotated[list[str | ThresholdRule], Entries] = []
    """Pass/fail criteria checked after the run (``edge.scenario.thresholds``); a failed one exits 1.
    Decoding leaves only rules: a plain string becomes a rule without options."""
    timeline: Annotated[list[TimelineEvent], _at_most(MAX_TIMELINE)] = []
    """Events at simulated times (`[[timeline]]`): deploys, weights, faults, promotions."""
    tune: Tune | None = None
    """`edge tune`'s hypothesis and the rollout schedules to compare."""

    def __post_init__(self) -> None:
        # A string in a union with a table cannot be a custom type (msgspec), so it is parsed here.
        rules: list[str | ThresholdRule] = []
        for index, rule in enumerate(self.thresholds):
            if isinstance(rule, str):
                try:
                    rule = ThresholdRule(parse_threshold(rule))
                except ValueError as exc:
                    raise FieldError(f"thresholds[{index}]", f"{exc}") from None
            rules.append(rule)
        self.thresholds = rules


def threshold_rules(spec: Scenario) -> list[ThresholdRule]:
    """Every threshold of ``spec``: rules, since decoding (``Scenario.__post_init__``)."""
    return spec.thresholds  # type: ignore[return-value]


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_BASE_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s]+$")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s]+(/\S*)?$")


def tuned_service(spec: Scenario) -> Service:
    """The service ``[tune]`` tunes: the one it names, else the only one with a rollout."""
    tune = spec.tune
    assert tune is not None
    with_rollout = [s for s in spec.services if s.rollout is not None]
    if tune.service is not None:
        return next(s for s in with_rollout if s.name == tune.service)
    return with_rollout[0]


def group_name(traffic: Traffic, index: int) -> str:
    """A traffic group's name in reports and metrics: its own, else ``group<index>``."""
    return traffic.name or f"group{index}"
