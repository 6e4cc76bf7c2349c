"""When simulated clients send: arrival-rate profiles and the arrival processes that follow them.

A traffic group's rate is a function of time since the group started: a base rate, ramped linearly
through ``stages`` (k6's ramping arrival rate), shaped by a ``diurnal`` curve and multiplied during
``bursts``. Arrivals follow it as a Poisson process (non-homogeneous, drawn by thinning: candidates
at the profile's peak rate, each kept with probability rate(t) / peak) or as an evenly spaced one
(an arrival each time the integral of the rate passes a whole number). Pure functions of a random
stream and the time: the same code drives virtual and live traffic.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, NamedTuple, Sequence

from edge.scenario.values import DEFAULT_ARRIVALS

if TYPE_CHECKING:
    from edge.scenario.schema import Traffic


class Burst(NamedTuple):
    at: float
    duration: float
    factor: float


class Diurnal(NamedTuple):
    period: float
    trough: float  # the lowest rate as a fraction of the highest, in (0, 1]
    peak: float  # when in the period the rate is highest


class RateProfile:
    """Arrivals per second ``t`` seconds after the group started."""

    def __init__(
        self,
        base: float,
        stages: Sequence[tuple[float, float]] = (),  # (duration, rate at its end)
        diurnal: Diurnal | None = None,
        bursts: Sequence[Burst] = (),
    ) -> None:
        self._points = [(0.0, base)]
        for duration, target in stages:
            self._points.append((self._points[-1][0] + duration, target))
        self.diurnal = diurnal
        self.bursts = list(bursts)
        surge = math.prod(b.factor for b in self.bursts if b.factor > 1)
        self.peak = max(rate for _, rate in self._points) * surge

    def rate(self, t: float) -> float:
        rate = self._ramp(t)
        if self.diurnal is not None:
            d = self.diurnal
            rate *= d.trough + (1 - d.trough) * (1 + math.cos(2 * math.pi * (t - d.peak) / d.period)) / 2
        for burst in self.bursts:
            if burst.at <= t < burst.at + burst.duration:
                rate *= burst.factor
        return rate

    def _ramp(self, t: float) -> float:
        points = self._points
        if t >= points[-1][0]:
            return points[-1][1]
        for (t0, r0), (t1, r1) in zip(points, points[1:]):
            if t < t1:
                return r0 + (r1 - r0) * (t - t0) / (t1 - t0) if t1 > t0 else r1
        return points[-1][1]

    @property
    def constant(self) -> bool:
        return len(self._points) == 1 and self.diurnal is None and not self.bursts


class Arrivals:
    """The next arrival time after the last one, for a profile and a process kind."""

    def __init__(self, profile: RateProfile, kind: str, rng: random.Random) -> None:
        if kind not in ("poisson", "constant"):
            raise ValueError(f"expected an arrival process 'poisson' or 'constant', got {kind!r}")
        self.profile = profile
        self.poisson = kind == "poisson"
        self.rng = rng
        self._credit = 0.0  # constant process: arrivals owed, as the integral of the rate
        # Step of the integral for a varying evenly-spaced process: 1/16 of the peak spacing.
        self._step = 1.0 / (16.0 * profile.peak) if profile.peak > 0 else math.inf

    def after(self, t: float, until: float) -> float:
        """The next arrival after ``t``, or ``math.inf`` if none comes before ``until``."""
        profile = self.profile
        if profile.peak <= 0:
            return math.inf
        if self.poisson:
            peak = profile.peak
            while True:
                t += self.rng.expovariate(peak)
                if t >= until:
                    return math.inf
                if profile.constant or self.rng.random() * peak < profile.rate(t):
                    return t
        if profile.constant:
            t += 1.0 / profile.peak
            return t if t < until else math.inf
        while t < until:  # integrate the rate until one more arrival is due
            rate = profile.rate(t)
            need = 1.0 - self._credit
            if rate > 0 and rate * self._step >= need:
                self._credit = 0.0
                return t + need / rate
            self._credit += rate * self._step
            t += self._step
        return math.inf


def profile_of(group: Traffic) -> RateProfile:
    """The rate profile of an open traffic group: its arrivals' rate, stages, diurnal shape, bursts."""
    base = (group.arrivals or DEFAULT_ARRIVALS).rate
    stages = [(stage.duration.seconds, stage.rate.per_second) for stage in group.stages]
    diurnal = None
    if group.diurnal is not None:
        d = group.diurnal
        diurnal = Diurnal(d.period.seconds, float(d.trough), d.peak.seconds)
    bursts = [Burst(b.at.seconds, b.duration.seconds, float(b.factor)) for b in group.bursts]
    return RateProfile(base, stages, diurnal, bursts)
