"""Simulated clients: open arrival streams that send the scenario's request mix to the front door.

An open model keeps sending at its rate whatever the system does (as real users do), so overload
shows up as queueing, shedding and latency rather than as a politely slowed-down client. Each group
draws from its own random stream: adding a group or changing a split leaves the others' arrivals
exactly as they were.
"""

from __future__ import annotations

import bisect
import itertools
import random

from edge import config
from edge.clock import ModelClock, random_stream
from edge.fetch import Request
from edge.units import parse_duration


class RequestMix:
    """Weighted request templates with secrets resolved, ready to stamp out Requests.

    Each template is a Request built (and validated) once; a draw hands out a clone of it, which
    copies fields instead of parsing the URL, method and headers again for every arrival.
    """

    def __init__(self, spec: config.Scenario, templates: list[config.RequestTemplate]) -> None:
        self._cumulative = list(itertools.accumulate(t.weight for t in templates))
        self._total = self._cumulative[-1]
        self._templates = [
            Request(
                t.url,
                method=t.method,
                headers=[
                    (name, config.resolve_secret(spec, value) if value.startswith("secret:") else value)
                    for name, value in t.headers.items()
                ],
                body=None if t.body is None else t.body.encode(),
            )
            for t in templates
        ]

    def draw(self, rng: random.Random) -> Request:
        index = bisect.bisect_right(self._cumulative, rng.random() * self._total)
        return self._templates[min(index, len(self._templates) - 1)].clone()


class OpenArrivals:
    """An open arrival stream: requests at ``rate`` per second (Poisson or evenly spaced).

    It is a chain of clock callbacks rather than a task: each arrival schedules the next, so a
    simulated client costs no task switch per request.
    """

    def __init__(self, front, clock: ModelClock, rng: random.Random, mix: RequestMix, kind: str, rate: float, until: float) -> None:
        self.front = front
        self.clock = clock
        self.rng = rng
        self.mix = mix
        self.poisson = kind == "poisson"
        self.rate = rate
        self.until = until
        self.at = 0.0

    def start(self, at: float) -> None:
        self.at = at
        self._schedule()

    def _schedule(self) -> None:
        self.at += self.rng.expovariate(self.rate) if self.poisson else 1.0 / self.rate
        if self.at < self.until:
            self.clock.call_later(self.at - self.clock.now(), self._arrive)

    def _arrive(self) -> None:
        self.front.submit(self.mix.draw(self.rng), self.at)
        self._schedule()


def start_traffic(loaded: config.LoadedScenario, front, clock: ModelClock, *, seed: int, until: float) -> None:
    spec = loaded.spec
    for index, group in enumerate(spec.traffic):
        kind, rate = config.parse_arrivals(group.arrivals)
        start = parse_duration(group.start)
        end = until if group.duration is None else min(until, start + parse_duration(group.duration))
        rng = random_stream(seed, "traffic", group.name or index)
        OpenArrivals(front, clock, rng, RequestMix(spec, group.requests), kind, rate, end).start(start)
