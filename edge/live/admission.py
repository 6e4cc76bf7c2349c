"""Admission control: a limit on requests in flight, adapted from the queueing delay (CoDel's signal).

A request's queueing delay is how long it waited before the server took it up: from its first byte
reaching the socket (the kernel's receive timestamp, so a wait in the accept backlog counts) to the
ingress parsing its head. In a trio server that is mostly the scheduler's lag, which grows with the
work in flight: every pass runs every runnable request's next step. Bursts make some requests wait;
only a server past its capacity makes *every* request wait, so the signal is the least delay over
an interval (CoDel: Nichols and Jacobson, "Controlling Queue Delay", 2012).

* At the end of each ``interval``, if the least delay was over ``target``, the limit shrinks in
  proportion (``target / least``, halving at most); if the limit made a request wait while the
  least delay was under the target, it grows the same way (doubling at most). Between ``FLOOR`` and
  ``ceiling`` (``max_in_flight``); it starts at the ceiling.
* A request over the limit waits for a slot (the ingress queues it, oldest first) until it has
  waited ``interval`` in all, then it is shed; at most ``limit`` wait, beyond that it is shed at
  once. Nothing waits without overload, and what is admitted has waited at most an interval.
* Under pressure (the limit reached in this interval or the last), the first request of a
  connection that waited more than an interval, in the accept backlog, is shed at once: clients
  that re-send at once after a 503 make the backlog a standing queue, and serving from it would put
  seconds of wait into the latency of what is admitted. Without pressure a wait of up to ``STALL``
  intervals was a one-off stall (a worker blocking the loop), and the request is served: a health
  check is not refused for it; a longer one is shed all the same. Such a request says how long the
  backlog is, not how the admitted work fares, so it is no part of the signal.

Why a limit, and not shedding on the delay alone as CoDel drops packets (or wangle's ``Codel``
sloughs requests): with clients that re-send at once, shedding every late request leaves only late
requests (each shed one comes back through the backlog) and the delay never comes back under the
target: 0 good answers at 256 connections in benchmarks/overload.py. A limit keeps serving the
connections it took, whose next requests wait little, and sheds the excess.

Pure: the caller passes the time, so the tests drive it with a fake clock.
"""

from __future__ import annotations

import math

ADMIT, WAIT, SHED = "admit", "wait", "shed"
# The least the limit goes down to. A lower limit does not make the scheduler's lag smaller once it
# is made of the passes themselves and of shedding (measured: the limit then fell to 1-2 and good
# throughput with it); the chain's best throughput is at 4 to 64 connections (benchmarks/overload.py).
FLOOR = 4
# Without pressure, a first request that waited up to this many intervals in the backlog is served:
# a stall that long is one-off (a worker blocking the loop until the watchdog stops it); a longer
# wait is a backlog, and would put its length into the latency of what is admitted. The live step
# limit (1 s by default) can outlast 4 intervals (400 ms by default): a request that waited behind
# the whole of such a stall is shed even so.
STALL = 4


class AdaptiveLimit:
    """Decides, request by request, whether to admit; ``limit`` is the current concurrency limit."""

    __slots__ = ("target", "interval", "ceiling", "floor", "limit", "_interval_end", "_min", "_limited", "_pressed")

    def __init__(self, target: float, interval: float, ceiling: int) -> None:
        if not (target > 0 and interval > target and ceiling >= 1):
            raise ValueError(
                f"admission needs 0 < target < interval and a ceiling >= 1, not target {target!r}, "
                f"interval {interval!r}, ceiling {ceiling!r}"
            )
        self.target = target
        self.interval = interval
        self.ceiling = ceiling
        self.floor = min(ceiling, FLOOR)
        self.limit = ceiling
        self._interval_end = -math.inf
        self._min = math.inf  # the least delay seen in the current interval
        self._limited = False  # has the limit refused a request in it?
        self._pressed = False  # had it in the interval before?

    def decide(self, now: float, delay: float, in_flight: int, waiting: int, first: bool) -> str:
        """``ADMIT``, ``WAIT`` (for a slot, until it has waited ``interval`` in all; no more wait
        than ``limit``) or ``SHED``, for
        a request that waited ``delay`` seconds, taken up at ``now`` with ``in_flight`` being served
        and ``waiting`` waiting for a slot; ``first``: the first request of its connection (its delay
        includes the accept backlog)."""
        if now >= self._interval_end:
            self._adapt(now)
        if first and delay > self.interval:
            # Stale in the backlog: it says nothing about how the admitted work fares. Shed under
            # pressure (the limit reached, now or over the last interval), where the backlog is a
            # standing queue; after a one-off stall (a worker that blocked the loop) it is served.
            if delay > STALL * self.interval or in_flight >= self.limit or waiting or self._limited or self._pressed:
                return SHED
            return ADMIT if in_flight < self.limit else WAIT
        if delay < self._min:
            self._min = delay
        if in_flight >= self.limit:
            self._limited = True
            return WAIT if waiting < self.limit else SHED
        return ADMIT

    def _adapt(self, now: float) -> None:
        """The interval that ended sets the limit for the next one."""
        least = self._min
        # No signal without a request taken up, nor from an interval followed by one without any
        # (the server idled: no standing queue).
        if least < math.inf and now < self._interval_end + self.interval and (self._limited or least > self.target):
            # The delay grows with the work in flight (each pass runs every request's next step):
            # scale the limit towards where the least delay would be the target, by 2x at most.
            scale = min(2.0, max(0.5, self.target / least)) if least > 0 else 2.0
            limit = round(self.limit * scale)
            self.limit = min(self.ceiling, max(self.floor, limit if scale <= 1 else max(limit, self.limit + 1)))
        self._pressed = self._limited and now < self._interval_end + self.interval
        self._interval_end = now + self.interval
        self._min = math.inf
        self._limited = False
