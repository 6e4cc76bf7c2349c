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
"""

from __future__ import annotations

import logging
import random
from typing import Any

from actors.environment import Post
from actors.mailbox import Call, Mailbox
from edge.clock import ModelClock
from edge.errors import WORKER_EXCEPTION, platform_error
from edge.fetch import Response
from edge.metrics import RunMetrics

log = logging.getLogger("edge.router")


class RetryPolicy:
    __slots__ = ("to", "methods")

    def __init__(self, to: str, methods: frozenset[str]) -> None:
        self.to = to
        self.methods = methods


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
    ) -> None:
        self.service = service
        self.targets = targets
        self.retry = retry
        self.rng = rng
        self.clock = clock
        self.metrics = metrics
        self.mailbox = Mailbox(0)  # only answers to its own attempts arrive, and those are never refused
        self._table: list[tuple[float, str]] = []
        self.set_weights(weights)

    def set_weights(self, weights: dict[str, float]) -> None:
        """Replace the split; weights are percentages summing to 100."""
        unknown = set(weights) - set(self.targets)
        if unknown:
            raise ValueError(f"{self.service} has no environment {sorted(unknown)[0]!r} (has: {', '.join(self.targets)})")
        total = sum(weights.values())
        if abs(total - 100) > 1e-9 or any(w < 0 for w in weights.values()):
            raise ValueError(f"weights must be >= 0 and sum to 100, got {weights}")
        cumulative = 0.0
        table = []
        for name, weight in weights.items():
            if weight > 0:
                cumulative += weight
                table.append((cumulative, name))
        self._table = table
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
        others = [name for name in self.targets if name != environment]
        held = sum(self.weights[name] for name in others)
        rest = 100.0 - percent
        weights = {environment: float(percent)}
        for name in others:
            weights[name] = rest * (self.weights[name] / held if held > 0 else 1 / len(others))
        self.set_weights(weights)
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
        while True:
            attempt, result = await receive()
            self._settle(attempt, result)

    def _choose(self) -> str:
        point = self.rng.random() * 100.0
        for cumulative, name in self._table:
            if point < cumulative:
                return name
        return self._table[-1][1]

    def _route(self, call: Call) -> Response | None:
        name = self._choose()
        retry = self.retry
        if retry is not None and name != retry.to and call.method is None and call.request.method in retry.methods:
            attempt = Call(call.request.clone(), call.account, self._attempt_done, self.clock.now())
            attempt.args = (call, name)
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
        original, tried = attempt.args
        if isinstance(result, Response) and result.status >= 500:
            to = self.retry.to  # type: ignore[union-attr]
            key = (self.service, tried, to)
            self.metrics.retries[key] = self.metrics.retries.get(key, 0) + 1
            self._forward(to, original)
            return
        original.served_by = attempt.served_by
        original.version = attempt.version
        original.on_reply(original, result)
