"""Simulated clients: traffic groups that send the scenario's request mixes to the front door.

An open group keeps sending at its rate (``edge.scenario.arrivals``) whatever the system does, as the users of
a public service do, so overload shows up as queueing, shedding and latency rather than as a politely
slowed-down client. A closed group is a fixed population of users who wait for each answer and think
before the next request, as a back office or a batch does: its load falls when the system slows.
Each group draws from its own random stream: adding a group or changing a split leaves the others'
arrivals exactly as they were. A replayed group (``replay``) sends a recorded file's requests at
their recorded times instead (``ReplaySchedule``), as an open group: the recording did not wait.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import random

from edge.scenario.resolved import LoadedScenario, ResolvedScenario
from edge.scenario.schema import RequestTemplate, group_name
from edge.scenario.values import DEFAULT_ARRIVALS
from edge.scenario.arrivals import Arrivals, profile_of
from edge.scenario.replay import LoggedRequest, Replay
from edge.platform.clock import ModelClock, random_stream
from edge.platform.distributions import Distribution
from edge.platform.fetch import Request, Response, freeze
from edge.metrics.recorders import ClientStats, RunMetrics


class RequestMix:
    """Weighted request templates with secrets resolved, ready to stamp out Requests.

    Each template is a Request built (and validated) once; a draw hands out a clone of it, which
    copies fields instead of parsing the URL, method and headers again for every arrival. A
    template with a ``body_size`` gets a body of a size drawn for each request.
    """

    def __init__(self, resolved: ResolvedScenario, templates: list[RequestTemplate]) -> None:
        self._cumulative = list(itertools.accumulate(t.weight for t in templates))
        self._total = self._cumulative[-1]
        self._templates = [
            Request(
                t.url,
                method=t.method,
                headers=[
                    (name, resolved.secret(value.secret) if value.secret is not None else value.raw)
                    for name, value in t.headers.items()
                ],
                body=None if t.body is None else t.body.encode(),
            )
            for t in templates
        ]
        for template in self._templates:  # a request the platform delivers has immutable headers: clones keep them so
            freeze(template.headers)
        self._sizes = [None if t.body_size is None else t.body_size.distribution for t in templates]
        self._filler = b""

    def draw(self, rng: random.Random) -> Request:
        index = min(bisect.bisect_right(self._cumulative, rng.random() * self._total), len(self._templates) - 1)
        size = self._sizes[index]
        if size is None:
            return self._templates[index].clone()
        length = max(0, round(size.sample(rng)))
        if len(self._filler) < length:
            self._filler = b"x" * length
        return Request(self._templates[index], body=self._filler[:length])


class ReplaySchedule:
    """A replay file as both an open group's arrivals (``after``) and its request mix (``draw``).

    ``after`` moves to the next recorded request and ``draw`` builds that one, so a dropped
    arrival (``max_inflight``) skips its request rather than shifting the rest. Times are divided
    by ``speed``; with ``loop`` pass *k* starts at k × (span + one mean gap), so the last request
    of a pass and the first of the next are as far apart as the file's requests are on average.
    With ``logged``, a request whose line logs a request time carries it (``LoggedRequest``), as
    the time a synthetic model serves it in; ``speed`` hastens arrivals, not service.
    """

    def __init__(self, replay: Replay, base_url: str, *, speed: float, loop: bool, logged: bool = True) -> None:
        self.entries = replay.entries
        self.base = base_url.rstrip("/")
        self.speed = speed
        self.loop = loop
        self.logged = logged
        count = len(self.entries)
        self.period = replay.span * count / (count - 1) if count > 1 else math.inf
        self.next = 0
        self.current = self.entries[0]

    def after(self, t: float, until: float) -> float:
        """The next recorded request's time (from the group's start), or ``math.inf`` past ``until``
        or the file's end; ``t`` is not needed: the schedule keeps its own place."""
        passes, index = divmod(self.next, len(self.entries))
        if passes and not self.loop:
            return math.inf
        # (not ``passes * period`` on the first pass: a one-request file's period is infinite, and 0 * inf is NaN)
        at = ((passes * self.period if passes else 0.0) + self.entries[index].at) / self.speed
        if at >= until:
            return math.inf
        self.current = self.entries[index]
        self.next += 1
        return at

    def draw(self, rng: random.Random) -> Request:
        entry = self.current
        if entry.time is not None and self.logged:
            return LoggedRequest(self.base + entry.target, method=entry.method, headers=entry.headers, service_time=entry.time)
        return Request(self.base + entry.target, method=entry.method, headers=entry.headers)


class OpenArrivals:
    """An open group: requests at the times its arrival process gives, whatever the system does.

    A chain of clock callbacks rather than a task: each arrival schedules the next, so a simulated
    client costs no task switch per request. With ``max_inflight`` the group behaves like a load
    tool with that many virtual users: an arrival that finds them all waiting is dropped, and
    counted, rather than sent late (which would hide the overload it is there to show).
    """

    def __init__(self, front, clock: ModelClock, rng: random.Random, mix: RequestMix, arrivals: Arrivals, *,
                 until: float, timeout: float | None, max_inflight: int | None, client: ClientStats) -> None:
        self.front = front
        self.clock = clock
        self.rng = rng
        self.mix = mix
        self.arrivals = arrivals
        self.until = until
        self.timeout = timeout
        self.max_inflight = max_inflight
        self.outstanding = 0
        self.client = client
        self.origin = 0.0
        self.at = 0.0

    def start(self, at: float) -> None:
        self.origin = self.at = at
        self._schedule()

    def _schedule(self) -> None:
        after = self.arrivals.after(self.at - self.origin, self.until - self.origin)
        if after != math.inf:
            self.at = self.origin + after
            self.clock.call_later(self.at - self.clock.now(), self._arrive)

    def stop(self) -> None:
        self.until = self.clock.now()

    def _arrive(self) -> None:
        if self.at >= self.until:  # stopped early, after this arrival was scheduled
            return
        if self.max_inflight is None:
            self.front.submit(self.mix.draw(self.rng), self.at, None, self.timeout, self.client)
        elif self.outstanding < self.max_inflight:
            self.outstanding += 1
            self.front.submit(self.mix.draw(self.rng), self.at, self._answered, self.timeout, self.client)
        else:
            self.client.dropped += 1
        self._schedule()

    def _answered(self, response: Response | None) -> None:
        self.outstanding -= 1


class ClosedUsers:
    """A closed group: each user sends, waits for the answer (or its timeout), thinks, sends again.

    The offered load follows the system: when answers slow down, users send less (Little's law:
    throughput = users / (response time + think time)). Users start spread over one think time.
    """

    # A user answered at once (a 404) with no think time would send again at the same instant,
    # for ever: the clock would never move. Its next request waits at least this long.
    MIN_GAP = 1e-6

    def __init__(self, front, clock: ModelClock, rng: random.Random, mix: RequestMix, users: int, think: Distribution, *,
                 until: float, timeout: float | None, client: ClientStats) -> None:
        self.front = front
        self.clock = clock
        self.rng = rng
        self.mix = mix
        self.users = users
        self.think = think
        self.until = until
        self.timeout = timeout
        self.client = client

    def stop(self) -> None:
        self.until = self.clock.now()

    def start(self, at: float) -> None:
        for _ in range(self.users):
            self.clock.call_later(at - self.clock.now() + self.think.sample(self.rng), self._send)

    def _send(self) -> None:
        if self.clock.now() < self.until:
            self.front.submit(self.mix.draw(self.rng), self.clock.now(), self._answered, self.timeout, self.client)

    def _answered(self, response: Response | None) -> None:
        self.clock.call_later(max(self.think.sample(self.rng), self.MIN_GAP), self._send)


@dataclasses.dataclass(frozen=True)
class GroupPlan:
    """One traffic group as both drivers send it: the simulation's clients and ``edge serve --traffic``.

    Open groups have ``arrivals``; closed groups have ``users`` and ``think``. ``rng`` is the
    group's own stream, drawn in the same order by both drivers, so a live run sends the requests a
    simulation with the same seed would (at real times instead of simulated ones).
    """

    name: str
    start: float
    length: float
    """Seconds the group sends for, from ``start`` (``math.inf``: to the end of the run)."""
    mix: RequestMix | ReplaySchedule
    rng: random.Random
    arrivals: Arrivals | ReplaySchedule | None
    users: int | None
    think: Distribution | None
    timeout: float | None
    max_inflight: int | None


def plan_traffic(loaded: LoadedScenario, *, seed: int) -> list[GroupPlan]:
    spec = loaded.spec
    plans = []
    for index, group in enumerate(spec.traffic):
        rng = random_stream(seed, "traffic", group.name or index)
        closed = group.users is not None
        mix: RequestMix | ReplaySchedule
        arrivals: Arrivals | ReplaySchedule | None
        if index in loaded.replays:
            assert group.base_url is not None
            mix = arrivals = ReplaySchedule(loaded.replays[index], group.base_url, speed=float(group.speed), loop=group.loop,
                                            logged=group.service_time == "logged")
        else:
            mix = RequestMix(loaded.resolved, group.requests)
            arrivals = None if closed else Arrivals(profile_of(group), (group.arrivals or DEFAULT_ARRIVALS).kind, rng)
        plans.append(GroupPlan(
            name=group_name(group, index),
            start=group.start.seconds,
            length=math.inf if group.duration is None else group.duration.seconds,
            mix=mix,
            rng=rng,
            arrivals=arrivals,
            users=group.users,
            think=group.think.distribution if closed else None,
            timeout=None if group.timeout is None else group.timeout.seconds,
            max_inflight=group.max_inflight,
        ))
    return plans


def start_traffic(
    loaded: LoadedScenario, front, clock: ModelClock, metrics: RunMetrics, *, seed: int, until: float
) -> list[OpenArrivals | ClosedUsers]:
    """Start every traffic group; returns them, for ``stop()`` should the run end early."""
    groups: list[OpenArrivals | ClosedUsers] = []
    for plan in plan_traffic(loaded, seed=seed):
        end = min(until, plan.start + plan.length)
        client = metrics.group(plan.name)
        sender: OpenArrivals | ClosedUsers
        if plan.arrivals is None:
            assert plan.users is not None and plan.think is not None
            sender = ClosedUsers(front, clock, plan.rng, plan.mix, plan.users, plan.think, until=end, timeout=plan.timeout, client=client)
        else:
            sender = OpenArrivals(front, clock, plan.rng, plan.mix, plan.arrivals, until=end, timeout=plan.timeout,
                                  max_inflight=plan.max_inflight, client=client)
        sender.start(plan.start)
        groups.append(sender)
    return groups
