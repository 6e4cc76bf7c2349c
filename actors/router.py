"""The router actor in front of a service whose traffic is split between environments.

Ingress routes and bindings both reach such a service through its router. For each call the router
draws an environment by weight (fractional percentages such as 0.1 work: the draw is continuous) and
forwards the call. The draw happens in ``post``, in the sender's turn, as Akka's routers do: a pure
decision over the router's current weights needs no mailbox round trip, and skipping it saves a task
switch on every routed call. What the router must decide in its own task goes through its mailbox:
seed 003's fallback. A retryable call (a fetch whose method is in ``retry.methods``) sent to an
environment other than ``retry.to`` goes out as a clone with the router as its reply target; a >= 500
answer makes the router send the original to ``retry.to``. Every other call is forwarded with its
caller's own reply target, so the router costs nothing on the way back.

Weights change with ``set_weights`` while the router runs; the split is exported as
``edge_canary_weight``.

As Cloudflare's gradual deployments, a split may be sticky (``affinity``: a key taken from a header
or cookie is hashed to a fixed point of the 0-100 weight line, so one user keeps one environment,
and raising the canary's weight only moves users onto it) and may honour an ``override`` header
that pins a request to a named environment; a name the service does not have is answered 400
(``unknown-environment``) by the router itself, never by the split. A retry budget (``RetryBudget``, Linkerd's) caps the
fallback's retries. Each call records the environment first chosen for it (``Call.routed_to``), so
what callers finally got can be told per environment: effective against per-attempt success.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
from typing import Any

from actors.environment import Post
from actors.mailbox import Call, Mailbox
from edge.platform.clock import ModelClock
from edge.platform.errors import UNKNOWN_ENVIRONMENT, WORKER_EXCEPTION, platform_error
from edge.platform.fetch import Response
from edge.metrics.recorders import RunMetrics

log = logging.getLogger("edge.router")


class _Attempt:
    """A first attempt's ``context``: the caller's call, and the environment tried."""

    __slots__ = ("original", "tried")

    def __init__(self, original: Call, tried: str) -> None:
        self.original = original
        self.tried = tried


class RetryBudget:
    """At most ``ratio`` retries per request plus ``min_per_second`` retries per second, over a
    sliding ``window`` (kept as ten buckets: the window slides a tenth at a time), as Linkerd's
    retry budget. A failed attempt beyond it is not retried: a broken canary costs production at
    most that much extra load, instead of doubling it."""

    BUCKETS = 10

    def __init__(self, ratio: float, min_per_second: float, window: float) -> None:
        self.ratio = ratio
        self.floor = min_per_second * window
        self.width = window / self.BUCKETS
        self._requests = [0] * self.BUCKETS
        self._retries = [0] * self.BUCKETS
        self._bucket = 0  # index of the current bucket since time 0
        self.requests = 0  # in the window
        self.retries = 0  # in the window

    def _advance(self, now: float) -> int:
        index = int(now / self.width)
        if index != self._bucket:
            for step in range(1, min(index - self._bucket, self.BUCKETS) + 1):
                slot = (self._bucket + step) % self.BUCKETS
                self.requests -= self._requests[slot]
                self.retries -= self._retries[slot]
                self._requests[slot] = self._retries[slot] = 0
            self._bucket = index
        return index % self.BUCKETS

    def note_request(self, now: float) -> None:
        self._requests[self._advance(now)] += 1
        self.requests += 1

    def spend(self, now: float) -> bool:
        """Take one retry from the budget; False (and nothing taken) if it is spent."""
        slot = self._advance(now)
        if self.retries + 1 > self.floor + self.ratio * self.requests:
            return False
        self._retries[slot] += 1
        self.retries += 1
        return True


class RetryPolicy:
    __slots__ = ("to", "methods", "budget")

    def __init__(self, to: str, methods: frozenset[str], budget: RetryBudget | None = None) -> None:
        self.to = to
        self.methods = methods
        self.budget = budget


class Affinity:
    """Where on the 0-100 weight line a request's key puts it (None: no key, draw at random)."""

    __slots__ = ("header", "cookie")

    def __init__(self, header: str | None = None, cookie: str | None = None) -> None:
        self.header = header
        self.cookie = cookie

    def point(self, request: Any) -> float | None:
        if self.header is not None:
            key = request.headers.get(self.header)
        else:
            key = _cookie(request.headers.get("cookie"), self.cookie)  # type: ignore[arg-type]
        return None if key is None else key_point(key)


def _cookie(header: str | None, name: str) -> str | None:
    if header is None:
        return None
    for pair in header.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


@functools.lru_cache(maxsize=65536)  # a user's key comes back with each of their requests
def key_point(key: str) -> float:
    """A key's fixed place in [0, 100): the same in every process and run (not Python's hash)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0


def split_table(weights: dict[str, float]) -> list[tuple[float, str]]:
    """The split as the router walks it: (cumulative percent, environment) for each environment
    with a weight, in the weights' order. A point drawn in [0, 100) goes to the first entry whose
    cumulative percent is above it, or to the last (the sum may fall short of 100 by rounding)."""
    cumulative = 0.0
    table = []
    for name, weight in weights.items():
        if weight > 0:
            cumulative += weight
            table.append((cumulative, name))
    return table


def moved_weights(weights: dict[str, float], environment: str, percent: float) -> dict[str, float]:
    """``environment`` at ``percent``, the rest shared among the others in their proportions
    (equally if none had any), ``environment`` first."""
    others = [name for name in weights if name != environment]
    held = sum(weights[name] for name in others)
    rest = 100.0 - percent
    moved = {environment: float(percent)}
    for name in others:
        moved[name] = rest * (weights[name] / held if held > 0 else 1 / len(others))
    return moved


class RouterActor:
    environment = "router"  # label of answers the router gives itself (internal errors)
    version = ""

    def __init__(
        self,
        *,
        service: str,
        targets: dict[str, Post],
        weights: dict[str, float],
        retry: RetryPolicy | None,
        rng: random.Random,
        clock: ModelClock,
        metrics: RunMetrics,
        affinity: Affinity | None = None,
        override: str | None = None,
    ) -> None:
        self.service = service
        self.targets = targets
        self.retry = retry
        self.affinity = affinity
        self.override = override
        self.rng = rng
        self.clock = clock
        self.metrics = metrics
        self.mailbox = Mailbox(0)  # only answers to its own attempts arrive, and those are never refused
        self._table: list[tuple[float, str]] = []
        self.set_weights(weights)
        if retry is not None and retry.budget is not None:  # counters from the start: a dashboard shows 0, not "no data"
            for name in targets:
                if name != retry.to:
                    metrics.retries_denied.setdefault((service, name), 0)

    def set_weights(self, weights: dict[str, float]) -> None:
        """Replace the split; weights are percentages summing to 100."""
        unknown = set(weights) - set(self.targets)
        if unknown:
            raise ValueError(f"{self.service} has no environment {sorted(unknown)[0]!r} (has: {', '.join(self.targets)})")
        total = sum(weights.values())
        if abs(total - 100) > 1e-9 or any(w < 0 for w in weights.values()):
            raise ValueError(f"weights must be >= 0 and sum to 100, got {weights}")
        self._table = split_table(weights)
        self.weights = {name: float(weights.get(name, 0.0)) for name in self.targets}
        for name, weight in self.weights.items():
            self.metrics.canary_weights[(self.service, name)] = weight

    def set_weight(self, environment: str, percent: float) -> dict[str, float]:
        """Give ``environment`` ``percent`` and share the rest among the others, keeping their
        proportions (equal shares if they all had none): a rollout step, or a rollback with 0."""
        if environment not in self.targets:
            raise ValueError(f"{self.service} has no environment {environment!r} (has: {', '.join(self.targets)})")
        if not 0 <= percent <= 100:
            raise ValueError(f"a weight is a percentage from 0 to 100, got {percent}")
        self.set_weights(moved_weights(self.weights, environment, percent))
        return self.weights

    def post(self, call: Call) -> Response | None:
        try:
            return self._route(call)
        except Exception:  # a routing failure (e.g. a used body that cannot be cloned) costs one call
            log.exception("router of %s failed a call", self.service)
            call.served_by = self
            return platform_error(WORKER_EXCEPTION)

    async def run(self) -> None:
        receive = self.mailbox.receive
        while True:  # no local keeps the last answer alive while the router waits for the next
            self._settle(*await receive())

    def _choose(self, request: Any) -> str:
        point = None
        if self.affinity is not None and request is not None:
            point = self.affinity.point(request)
        if point is None:
            point = self.rng.random() * 100.0
        for cumulative, name in self._table:
            if point < cumulative:
                return name
        return self._table[-1][1]

    def _route(self, call: Call) -> Response | None:
        request = call.request if call.method is None else None  # RPC calls carry no request
        if self.override is not None and request is not None:
            pinned = request.headers.get(self.override)
            if pinned is not None:  # asked for by name: served there or nowhere, never retried elsewhere
                if pinned not in self.targets:
                    call.served_by = self
                    return platform_error(UNKNOWN_ENVIRONMENT)
                call.routed_to = pinned
                return self.targets[pinned](call)
        name = self._choose(request)
        call.routed_to = name
        retry = self.retry
        if retry is None:
            return self.targets[name](call)
        if retry.budget is not None:
            retry.budget.note_request(self.clock.now())
        if name != retry.to and request is not None and request.method in retry.methods:
            attempt = Call(call.request.clone(), call.account, self._attempt_done, self.clock.now())
            attempt.context = _Attempt(call, name)
            immediate = self.targets[name](attempt)
            if immediate is not None:
                self._attempt_done(attempt, immediate)
            return None
        return self.targets[name](call)

    def _forward(self, name: str, call: Call) -> None:
        immediate = self.targets[name](call)
        if immediate is not None:
            call.on_reply(call, immediate)

    def _attempt_done(self, attempt: Call, result: Any) -> None:
        # Called by the environment that answered; the decision is the router's, in its own task.
        self.mailbox.force((attempt, result))

    def _settle(self, attempt: Call, result: Any) -> None:
        context: _Attempt = attempt.context
        original, tried = context.original, context.tried
        if isinstance(result, Response) and result.status >= 500:
            retry: RetryPolicy = self.retry  # type: ignore[assignment]
            if retry.budget is None or retry.budget.spend(self.clock.now()):
                key = (self.service, tried, retry.to)
                self.metrics.retries[key] = self.metrics.retries.get(key, 0) + 1
                self._forward(retry.to, original)
                return
            denied = (self.service, tried)
            self.metrics.retries_denied[denied] = self.metrics.retries_denied.get(denied, 0) + 1
        original.served_by = attempt.served_by
        original.version = attempt.version
        original.thrown = attempt.thrown
        original.on_reply(original, result)
