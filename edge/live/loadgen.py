"""``edge serve --traffic``: the scenario's traffic groups, in real time, over real sockets.

The same request mixes and arrival profiles the simulation uses are sent as HTTP/1.1 (h11 as the
client side) to the server's own ingress, so one command gives live dashboards with realistic
traffic. Open groups start each request at its time whether or not earlier ones have answered,
spread over a pool of keep-alive connections that grows when every connection is busy; closed
groups are one task per user. (Client timeouts and max_inflight apply to simulated runs.)

The generator shares the server's event loop and machine, so it can fall behind its schedule: each
group counts the requests due and those sent, and how long the oldest request due has waited
(``edge_loadgen_*``, and a warning on stderr past ``LAG_WARNING``), where a generator that quietly
sent less would pass for a server that answered less.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import random
from typing import Callable, Iterator

import h11
import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.live import receive
from edge.live.ratelimit import Allowance
from edge.metrics import families as fam
from edge.metrics.recorders import STATUS_CLASSES, status_class
from edge.scenario.resolved import LoadedScenario
from edge.scenario.arrivals import Arrivals
from edge.platform.distributions import Distribution
from edge.platform.fetch import Request
from edge.engine.traffic import ReplaySchedule, RequestMix, plan_traffic

log = logging.getLogger("edge.live.loadgen")

REQUEST_TIMEOUT = 30.0
LAG_WARNING = 0.5
"""Seconds behind schedule (a request due that long ago and not sent yet) past which the generator
says so: far longer than a scheduler pass or a collection pause, and soon reached when the machine
cannot keep up (issue 28: Prometheus read 284-367/s of a 500/s scenario, without a word)."""
WARNING_WINDOW = 10.0
"""At most one such warning per this many seconds; ``edge_loadgen_lag_seconds`` has every reading."""
CHECK_INTERVAL = 0.25
"""Seconds between looks at the lag for the warning."""

_tickets = itertools.count()


class GroupProgress:
    """One traffic group against its schedule: requests sent, and when each request not sent yet
    falls due. A request is entered before its time, so one whose task wakes late counts as late."""

    def __init__(self) -> None:
        self.sent = 0  # written to a connection, or given up on when none could be opened
        self.dropped = 0  # never sent: still waiting ``REQUEST_TIMEOUT`` after its time
        self._waiting: dict[int, float] = {}

    def due(self, at: float) -> int:
        """A request falls due at ``at`` (trio time); its ticket for ``out``."""
        ticket = next(_tickets)
        self._waiting[ticket] = at
        return ticket

    def out(self, ticket: int) -> bool:
        """The request has left (once per ticket: a retry on a fresh connection is not another)."""
        if self._waiting.pop(ticket, None) is None:
            return False
        self.sent += 1
        return True

    def drop(self, ticket: int) -> None:
        del self._waiting[ticket]
        self.dropped += 1

    def planned(self, now: float) -> int:
        """Requests due by ``now``: those sent, those dropped and those waiting past their time."""
        return self.sent + self.dropped + sum(1 for at in self._waiting.values() if at <= now)

    def lag(self, now: float) -> float:
        """Seconds the oldest request due and not sent has waited; 0 when none has."""
        return max(0.0, now - min(self._waiting.values(), default=now))


class OpenSchedule:
    """An open group's arrivals against the clock. Those due wait their turn in order, drawn as they
    fall due (the simulation's order of draws from the group's random stream); one still waiting
    ``REQUEST_TIMEOUT`` after its time is dropped, as its client would have given up on it."""

    def __init__(self, group: GroupProgress, mix: RequestMix | ReplaySchedule, arrivals: Arrivals | ReplaySchedule, rng: random.Random,
                 *, began: float, length: float) -> None:
        self.group = group
        self.mix = mix
        self.arrivals = arrivals
        self.rng = rng
        self.began = began
        self.length = length
        self._backlog: collections.deque[tuple[float, Request, int]] = collections.deque()
        self._at = arrivals.after(0.0, length)
        self._ticket = self._enter()

    def _enter(self) -> int | None:
        """The next arrival, entered before its time: a task that wakes late for it counts as late."""
        return self.group.due(self.began + self._at) if self._at != math.inf else None

    def next_due(self) -> float:
        return self.began + self._at

    def over(self) -> bool:
        return self._ticket is None and not self._backlog

    def take(self, now: float) -> tuple[Request, int] | None:
        """The oldest request due by ``now`` and its ticket, or None when none is."""
        while self._ticket is not None and self.began + self._at <= now:
            self._backlog.append((self.began + self._at, self.mix.draw(self.rng), self._ticket))
            self._at = self.arrivals.after(self._at, self.length)
            self._ticket = self._enter()
        while self._backlog and self._backlog[0][0] < now - REQUEST_TIMEOUT:
            self.group.drop(self._backlog.popleft()[2])
        if not self._backlog:
            return None
        _, request, ticket = self._backlog.popleft()
        return request, ticket


class LoadStats:
    """What became of the requests sent: answered, failed or in flight, each counted as it happens."""

    def __init__(self) -> None:
        self.answered = [0] * len(STATUS_CLASSES)
        self.failed = 0  # no answer: connection refused or reset, or the timeout
        self.in_flight = 0


class _Stale(Exception):
    """A kept-alive connection the server had closed (its idle timeout) before this request came:
    nothing of an answer arrived. Any HTTP client sends the request again on a new connection."""


def _header_bytes(value: str) -> bytes:
    """A header value as the bytes to send: one byte a character where each is one (a fetch
    ``Headers`` value holds a received header's bytes so, and the ingress reads them back so),
    UTF-8 otherwise. h11 would encode a str as ASCII, and a replayed user agent with a byte above
    0x7F ended the generator with UnicodeEncodeError. (A lone surrogate, which a JSON log may hold,
    is sent as its three bytes rather than ending it.)"""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


class _Connection:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.used = False  # has it carried a request before this one?

    async def exchange(self, request: Request, body: bytes, written: Callable[[], None]) -> int:
        """Send one request (``written`` is called once it is) and read its whole answer; returns the status."""
        target = request.url.split("://", 1)[1]
        host, _, rest = target.partition("/")
        headers = [("host", host), *((name, _header_bytes(value)) for name, value in request.headers.raw()), ("content-length", str(len(body)))]
        out = self.h11.send(h11.Request(method=request.method, target="/" + rest, headers=headers))
        if body:
            out += self.h11.send(h11.Data(data=body))
        out += self.h11.send(h11.EndOfMessage())
        reused, self.used = self.used, True
        try:
            await self.stream.send_all(out)
        except trio.BrokenResourceError:
            if reused:
                raise _Stale from None
            raise
        written()
        status, answered = 0, False
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await receive.recv(self.stream, receive.BUFFER_BYTES)
                except OSError:  # reset
                    if reused and not answered:
                        raise _Stale from None
                    raise
                if reused and not data and not answered:
                    raise _Stale
                answered = True
                self.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                return status
            elif isinstance(event, h11.ConnectionClosed):
                raise trio.BrokenResourceError("server closed the connection")

    def reusable(self) -> bool:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return True
        return False


class LoadGenerator:
    """The scenario's traffic groups against ``host:port``; runs until cancelled or the groups end."""

    def __init__(self, loaded: LoadedScenario, host: str, port: int, *, seed: int, warning_window: float = WARNING_WINDOW) -> None:
        self.host = host
        self.port = port
        self.plans = plan_traffic(loaded, seed=seed)
        self.groups = {plan.name: GroupProgress() for plan in self.plans}
        self.stats = LoadStats()
        self._warnings = Allowance(1, warning_window)
        self._idle: list[_Connection] = []

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch)
            async with trio.open_nursery() as groups:
                for plan in self.plans:
                    group = self.groups[plan.name]
                    if plan.arrivals is None:
                        assert plan.users is not None and plan.think is not None
                        for _ in range(plan.users):
                            groups.start_soon(self._user, group, plan.mix, plan.think, plan.start, plan.length, plan.rng)
                    else:
                        groups.start_soon(self._open, group, plan.mix, plan.arrivals, plan.start, plan.length, plan.rng, groups)
            nursery.cancel_scope.cancel()  # every group has ended: nothing left to fall behind

    async def _open(self, group: GroupProgress, mix: RequestMix | ReplaySchedule, arrivals: Arrivals | ReplaySchedule, start: float,
                    length: float, rng: random.Random, nursery: trio.Nursery) -> None:
        await trio.sleep(start)
        schedule = OpenSchedule(group, mix, arrivals, rng, began=trio.current_time(), length=length)
        while not schedule.over():
            taken = schedule.take(trio.current_time())
            if taken is None:
                await trio.sleep_until(schedule.next_due())
                continue
            nursery.start_soon(self._send, group, *taken)
            # One request per scheduler pass, however late: the generator takes no bigger share of
            # the event loop than the server it shares it with. Sending every late arrival at once
            # tipped a busy machine's server into overload (513 in flight, 5xx, scrapes refused).
            await trio.lowlevel.checkpoint()

    async def _user(self, group: GroupProgress, mix: RequestMix | ReplaySchedule, think: Distribution, start: float, length: float,
                    rng: random.Random) -> None:
        due = trio.current_time() + start + think.sample(rng)
        ends = due + length
        while due < ends:
            ticket = group.due(due)
            await trio.sleep_until(due)
            await self._send(group, mix.draw(rng), ticket)
            due = trio.current_time() + think.sample(rng)

    async def _send(self, group: GroupProgress, request: Request, ticket: int) -> None:
        stats = self.stats

        def written() -> None:
            if group.out(ticket):
                stats.in_flight += 1

        body = await request.bytes()
        connection = self._idle.pop() if self._idle else None
        try:
            with trio.fail_after(REQUEST_TIMEOUT):
                if connection is not None:
                    try:
                        status = await connection.exchange(request, body, written)
                    except _Stale:
                        await connection.stream.aclose()
                        connection = None
                if connection is None:
                    connection = _Connection(await trio.open_tcp_stream(self.host, self.port))
                    status = await connection.exchange(request, body, written)
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, h11.ProtocolError) as exc:
            if not group.out(ticket):  # it had been written: no longer in flight
                stats.in_flight -= 1
            stats.failed += 1
            if stats.failed in (1, 10, 100, 1000):
                log.warning("live traffic: %d request(s) got no answer (latest: %s)", stats.failed, exc or type(exc).__name__)
            if connection is not None:
                await connection.stream.aclose()
            return
        stats.in_flight -= 1
        stats.answered[status_class(status)] += 1
        if connection.reusable():
            self._idle.append(connection)
        else:
            await connection.stream.aclose()

    async def _watch(self) -> None:
        while True:
            await trio.sleep(CHECK_INTERVAL)
            line = self.warning(trio.current_time())
            if line is not None:
                log.warning("%s", line)

    def warning(self, now: float) -> str | None:
        """The line to warn with when a group is over ``LAG_WARNING`` behind schedule, at most one a window."""
        lags = {name: group.lag(now) for name, group in self.groups.items()}
        name = max(lags, key=lags.__getitem__, default=None)
        if name is None or lags[name] <= LAG_WARNING or not self._warnings.take(now, 1):
            return None
        group = self.groups[name]
        return (f"live traffic is {lags[name]:.2f}s behind schedule (group {name}: {group.sent} of {group.planned(now)} "
                "requests due sent): this machine, or the server sharing the generator's event loop, cannot keep up, "
                "so the server sees less than the scenario's rate (edge_loadgen_lag_seconds)")

    def summary(self, now: float) -> str:
        """Every request due, as the shutdown line accounts for it: sent = answered + failed + in flight."""
        stats = self.stats
        sent = sum(group.sent for group in self.groups.values())
        dropped = sum(group.dropped for group in self.groups.values())
        planned = sum(group.planned(now) for group in self.groups.values())
        classes = ", ".join(f"{n} {name}" for name, n in zip(STATUS_CLASSES, stats.answered) if n)
        return (f"live traffic: {sent} requests sent = {sum(stats.answered)} answered{f' ({classes})' if classes else ''}"
                f" + {stats.failed} without an answer + {stats.in_flight} in flight when it stopped; "
                f"{planned} were due = {sent} sent + {dropped} dropped ({REQUEST_TIMEOUT:g}s late) + "
                f"{planned - sent - dropped} not sent yet")


class LoadCollector(Collector):
    """The generator's progress per group, as ``edge_loadgen_*`` families, read at scrape time."""

    def __init__(self, generator: LoadGenerator) -> None:
        self.generator = generator

    def collect(self) -> Iterator[Metric]:
        now = trio.current_time()
        readings: dict[fam.Family, Callable[[GroupProgress], float]] = {
            fam.LOADGEN_PLANNED: lambda group: group.planned(now),
            fam.LOADGEN_SENT: lambda group: group.sent,
            fam.LOADGEN_LAG: lambda group: group.lag(now),
        }
        for family in fam.LOADGEN_FAMILIES:
            kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            metric = kind(family.name, family.help, labels=list(family.labels))
            for name, group in self.generator.groups.items():
                metric.add_metric([name], readings[family](group))
            yield metric
