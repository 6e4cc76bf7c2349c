"""The front door: where top-level requests come in, from simulated traffic or the live ingress.

It routes each request by host and path, gives it its CPU account (the budget every worker of its
chain shares), posts it to the routed service (its split) or environment (an environment's route),
and records what the client saw. Simulated and live
runs go through the same door, so they record the same metrics.
"""

from __future__ import annotations

from typing import Any, Callable

import cachetools
import trio

from actors.environment import Post
from actors.mailbox import Call
from edge.scenario.schema import Meta
from edge.platform.clock import ModelClock
from edge.platform.cpu import CpuAccount
from edge.platform.errors import ERROR_HEADER, NOT_FOUND, WALL_LIMIT, platform_error
from edge.platform.fetch import Request, Response
from edge.metrics.recorders import STATUS_CLASSES, ClientStats, RunMetrics, status_class
from edge.engine.topology import Topology

LIVE_GROUP = "http"
"""The traffic group of requests that came in through the live ingress."""

LATER_POLL = 0.001
"""How often (model seconds) the drain looks again for ``ctx.wait_until`` work still running."""
SETTLE_EVERY = 4096
"""Top-level requests between two ``RunMetrics.settle()`` calls: bounds the histograms' unbinned
values to a few tens of thousands whatever the run's length."""


class TopLevel:
    """A top-level request's client side, carried as its call's ``context`` until it is answered.

    ``waiting`` turns False when the client has its outcome: the answer, or its own timeout (after
    which a late answer still counts for the service, not for the client)."""

    __slots__ = ("service", "done", "client", "waiting")

    def __init__(self, service: str, done: Callable[[Response | None], None] | None, client: ClientStats) -> None:
        self.service = service
        self.done = done
        self.client = client
        self.waiting = True


class FrontDoor:
    """Top-level requests: route by host and path, give each a CPU account, record the outcome."""

    def __init__(self, topology: Topology, meta: Meta, clock: ModelClock, metrics: RunMetrics) -> None:
        self.topology = topology
        self.clock = clock
        self.metrics = metrics
        self.cpu_limit = meta.cpu_limit.seconds
        self.max_invocations = meta.max_invocations
        self.request_limit = None if meta.request_limit is None else meta.request_limit.seconds
        self.inflight = 0
        # Every routed service's timeout counter exists from the start: a dashboard shows 0, not "no data".
        for service in topology.entries:
            metrics.timeouts.setdefault(service, 0)
        self._until_settle = SETTLE_EVERY
        self._drained: trio.Event | None = None
        # URL -> (service, where it goes): parsing and matching every request's URL is a visible share of a hop;
        # simulated traffic repeats a few URLs, live traffic may not, hence a bounded LRU.
        self._routed: cachetools.LRUCache[str, tuple[str, Post] | None] = cachetools.LRUCache(maxsize=4096)

    def submit(
        self, request: Request, sent_at: float, done: Callable[[Response | None], None] | None = None,
        timeout: float | None = None, client: ClientStats | None = None,
    ) -> Call | None:
        """Send a top-level request; ``sent_at`` is when the client meant to send it; what the
        client saw is recorded in ``client`` (its traffic group's stats; by default, "http").

        Latency counts from ``sent_at``, not from when the model got round to it, so that a stalled
        system shows its stall in the latency it causes (no coordinated omission). A client with a
        ``timeout`` gives up that long after ``sent_at``: the request counts as a timeout then,
        ``done(None)`` is called, and the answer that may come later is recorded for the service
        but not for the client. Returns the call, for the caller to cancel if its client goes
        away (None when no route matched).
        """
        opened = self.open(request, sent_at, done, timeout, client)
        if opened is None:
            return None
        call, post = opened
        self.post(call, post)
        return call

    def open(
        self, request: Request, sent_at: float, done: Callable[[Response | None], None] | None = None,
        timeout: float | None = None, client: ClientStats | None = None,
    ) -> tuple[Call, Post] | None:
        """``submit`` but for posting the call: returns it and where it goes, for the caller to
        ``post`` it or serve it itself (live, the ingress's task runs a code worker's call when
        it can: ``EnvironmentActor.serve_inline``). None when no route matched (answered 404)."""
        self._until_settle -= 1
        if not self._until_settle:
            self._until_settle = SETTLE_EVERY
            self.metrics.settle()
        if client is None:
            client = self.metrics.group(LIVE_GROUP)
        url = request.url
        try:
            route = self._routed[url]
        except KeyError:
            route = self._routed[url] = self.topology.routes.match(request.host, request.path)
        if route is None:
            self._record_client(client, None, platform_error(NOT_FOUND), sent_at, done)
            return None
        service, post = route
        account = CpuAccount(self.cpu_limit, self.max_invocations)
        call = Call(request, account, self._completed, sent_at)
        call.context = TopLevel(service, done, client)
        self.inflight += 1
        client.waiting += 1
        if timeout is not None:
            self.clock.call_later(sent_at + timeout - self.clock.now(), self._give_up, call, timeout)
        if self.request_limit is not None:
            self.clock.call_later(sent_at + self.request_limit - self.clock.now(), self._cut, call)
        return call, post

    def post(self, call: Call, post: Post) -> None:
        """Post an opened call where it goes."""
        immediate = post(call)
        if immediate is not None:
            self._completed(call, immediate)

    def _completed(self, call: Call, response: Response) -> None:
        self.inflight -= 1
        top: TopLevel = call.context
        self._record_service(call, top.service, top.client)
        if call.routed_to is not None:
            self.metrics.count_routed(top.service, call.routed_to, response.status)
        if top.waiting:
            top.waiting = False
            top.client.waiting -= 1
            self._record_client(top.client, top.service, response, call.posted_at, top.done)
        if self.inflight == 0 and self._drained is not None:
            self._drained.set()

    def _give_up(self, call: Call, timeout: float) -> None:
        top: TopLevel = call.context
        if not top.waiting:
            return
        top.waiting = False
        clients = top.client
        clients.waiting -= 1
        clients.requests += 1
        clients.timeouts += 1
        clients.latency.observe(timeout)
        self.metrics.timeouts[top.service] = self.metrics.timeouts.get(top.service, 0) + 1
        if top.done is not None:
            top.done(None)

    def _cut(self, call: Call) -> None:
        """The request's ``request_limit`` ran out before its answer: the platform answers 504 now,
        and the work stops (live; in virtual time the late answer still counts for the service).
        An answer due at the very instant the limit runs out is too late: this timer was set first."""
        top: TopLevel = call.context
        if not top.waiting:
            return
        top.waiting = False
        top.client.waiting -= 1
        self._record_client(top.client, top.service, platform_error(WALL_LIMIT), call.posted_at, top.done)
        call.cancel()

    def _record_service(self, call: Call, service: str, client: ClientStats) -> None:
        """What the entry service did with a top-level request, whether its client waited or not."""
        metrics = self.metrics
        metrics.histogram(metrics.ingress, (service, call.served_by.environment)).observe(self.clock.now() - call.posted_at)
        account = call.account
        metrics.histogram(metrics.request_cpu, service).observe(account.used)
        if account.exceeded_at is not None:
            client.cpu_limit_exceeded += 1
            svc, env = account.exceeded_at
            metrics.environment(svc, env).cpu_limit_exceeded += 1

    def _record_client(self, clients: ClientStats, service: str | None, response: Response, sent_at: float, done: Any) -> None:
        """What the client saw."""
        metrics = self.metrics
        status = response.status
        clients.requests += 1
        cls = status_class(status)
        clients.by_class[cls] += 1
        answers = metrics.answers.get(service or "")
        if answers is None:
            answers = metrics.answers[service or ""] = [0] * len(STATUS_CLASSES)
        answers[cls] += 1
        clients.latency.observe(self.clock.now() - sent_at)
        cause = response.headers.get(ERROR_HEADER) if status >= 400 else None  # platform errors are 4xx/5xx
        if cause is not None:
            if cause == "shed":
                clients.shed += 1
            elif cause == "not-found":
                clients.not_found += 1
            elif cause == "unknown-environment":
                clients.unknown_environment += 1
        if done is not None:
            done(response)

    def close(self) -> int:
        """The run is over: every request whose client still waits is counted as never answered
        (a request and an error of its group). Returns how many there were."""
        unanswered = 0
        for client in self.metrics.groups.values():
            client.unanswered += client.waiting
            client.requests += client.waiting
            unanswered += client.waiting
            client.waiting = 0
        return unanswered

    async def drained(self, timeout: float) -> bool:
        """Wait (model time) until no top-level request is in flight and no work a worker handed
        to ``ctx.wait_until`` still runs; False if ``timeout`` ran out."""
        with trio.move_on_after(timeout):
            if self.inflight:
                self._drained = trio.Event()
                await self._drained.wait()
            while self._later_running():  # rare: polled, rather than every call telling the front door
                await self.clock.sleep(LATER_POLL)
        return self.inflight == 0 and not self._later_running()

    def _later_running(self) -> bool:
        return any(actor.later_running for actor in self.topology.environments.values())
