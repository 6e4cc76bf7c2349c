"""Admission control: a limit on requests in flight that the queueing delay adapts (CoDel's signal).

A request's queueing delay is how long it waited before the server took it up: from its first byte
reaching the socket (the kernel's receive timestamp, so a wait in the accept backlog counts) to the
ingress parsing its head. In a trio server that is the scheduler's lag, and it grows with the work
in flight: every pass runs every runnable request's next step. Bursts make some requests wait; only
a server past its capacity makes *every* request wait, so the signal is the minimum delay over an
interval (CoDel: Nichols and Jacobson, "Controlling Queue Delay", 2012).

* Each ``interval``, if the least delay over it was above ``target`` (overloaded), the limit shrinks
  in proportion (``target / delay``, halving at most); if requests were refused by the limit while
  the queue kept up, it grows by a tenth. Between ``1`` and ``ceiling`` (``max_in_flight``).
* A request that waited longer than a whole interval is shed whatever the limit: that is no burst
  but a standing queue (clients re-sending at once wait in the accept backlog), and serving it would
  put that wait into the latency of what is admitted.

Why a limit rather than shedding on the delay alone, as CoDel drops packets or wangle's ``Codel``
sloughs requests: clients that re-send at once after a 503 keep every request waiting when every
request is shed, and the delay never comes back under the target (measured: 0 good answers at 256
connections). A limit keeps the requests it admits being served, whose next ones wait little, and
sheds only the excess.

Pure: the caller passes the time, so the tests drive it with a fake clock.
"""

from __future__ import annotations

import math

ADMIT, WAIT, SHED = "admit", "wait", "shed"
# The least the limit goes down to: what keeps a CPU-bound server busy (benchmarks/overload.py: the
# chain's best throughput is at 4 to 64 connections) and a few slow requests from starving the rest.
FLOOR = 4


class AdaptiveLimit:
    """Decides, request by request, whether to admit; ``limit`` is the current concurrency limit."""

    __slots__ = ("target", "interval", "ceiling", "floor", "limit", "_interval_end", "_min", "_limited")

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

    def decide(self, now: float, delay: float, in_flight: int, first: bool) -> str:
        """``ADMIT``, ``WAIT`` (for a slot, until it has waited ``interval`` in all) or ``SHED``, for
        a request that waited ``delay`` seconds, taken up at ``now`` with ``in_flight`` being served;
        ``first``: the first request of its connection (its delay includes the accept backlog)."""
        if now >= self._interval_end:
            self._adapt(now)
        if first and delay > self.interval:
            return SHED  # stale in the backlog: says nothing about how the admitted work fares
        if delay < self._min:
            self._min = delay
        if in_flight >= self.limit:
            self._limited = True
            return WAIT
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
        self._interval_end = now + self.interval
        self._min = math.inf
        self._limited = False
