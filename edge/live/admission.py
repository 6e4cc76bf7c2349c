"""Admission control: a limit on requests in flight, adapted from the queueing delay (CoDel's signal).

A request's queueing delay is how long it waited before the server took it up: from its first byte
reaching the socket (the kernel's receive timestamp, so a wait in the accept backlog counts) to the
ingress parsing its head. In a trio server that is mostly the scheduler's lag: a pass runs every
runnable task's next step, so a pass is as long as the work that became runnable during the last
one. Bursts make some requests wait; only a server past its capacity makes *every* request wait, so
the signal is the least delay over an interval (CoDel: Nichols and Jacobson, "Controlling Queue
Delay", 2012).

What "in flight" means here: a request holds its slot from admission until the scheduler pass that
answered it ends (the ingress frees slots as each pass begins). Most handlers answer without a
schedule point, so a request is in its handler only while it runs; counted that way, the limit
bounds how many requests one pass serves, which is what bounds a pass's length.

* At the end of each ``interval``, if the least delay was over ``target``, the limit shrinks in
  proportion (``target / least``, halving at most); if the limit made a request wait while the
  least delay was under the target, it grows the same way (doubling at most). Between ``FLOOR`` and
  ``ceiling`` (``max_in_flight``); it starts at the ceiling.
* Only the loop's own part of the delay counts: on a machine shared with busy processes the loop
  waits for a CPU part of the time, and the least delay is scaled by the share of the time it ran
  passes (``ran``) that its thread was not runnable and waiting for a CPU (``cpu_wait``: Linux's
  ``/proc/thread-self/schedstat``). A loop blocked by its own worker, in ``time.sleep`` or
  blocking I/O, is not waiting for a CPU: such a stall still counts. And the limit shrinks only
  while admitted requests took at least ``WORK_SHARE`` of the interval (``worked``): passes made
  long by other work (shedding, accepting) are not shortened by serving less. While such passes
  hold requests back, the limit grows instead, towards admitted work having that share.
* A request over the limit waits for a slot (the ingress queues it, oldest first; slots go to the
  waiting before new requests) until it has waited ``interval`` in all, then it is shed. It waits
  only if the requests already waiting would have a slot within half an interval at the last
  interval's pace (``admitted``), and never if more than that many (or the limit, if more) wait:
  otherwise it is shed at once, since a 503 now is worth more to a client than one after waiting.
* Under pressure (the limit reached in this interval or the last), the first request of a
  connection that waited more than an interval, in the accept backlog, is shed at once: serving
  from a standing backlog would put its length into the latency of what is admitted. Without
  pressure a wait of up to ``STALL`` intervals was a one-off stall (a worker blocking the loop),
  and the request is served: a health check is not refused for it; a longer one is shed all the
  same. Such a request says how long the backlog is, not how the admitted work fares, so it is no
  part of the signal; nor is a request read just after its connection was held back for a shed's
  Retry-After (``held``).

Why a limit, and not shedding on the delay alone as CoDel drops packets (or wangle's ``Codel``
sloughs requests): with clients that re-send at once, shedding every late request leaves only late
requests and the delay never comes back under the target: 0 good answers at 256 connections in
benchmarks/overload.py. A limit keeps serving the connections it took and sheds the excess.

Pure: the caller passes the time, so the tests drive it with a fake clock.
"""

from __future__ import annotations

import math
from typing import Callable

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
# The limit shrinks only while admitted requests took at least this share of the interval: below
# it, the passes are long with other work, and serving less would only lower good throughput.
WORK_SHARE = 0.5


class AdaptiveLimit:
    """Decides, request by request, whether to admit; ``limit`` is the current concurrency limit."""

    __slots__ = ("target", "interval", "ceiling", "floor", "limit", "_interval_end", "_min", "_limited", "_pressed", "_work", "_admitted", "_pace",
                 "cpu_wait", "_cpu_wait_then", "_busy")

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
        self._work = 0.0  # seconds admitted requests took, admission to answer, in the current interval
        self._admitted = 0  # requests given a slot in the current interval
        self._pace = 0  # and in the last one: how many waiting requests an interval takes
        # () -> seconds the loop's thread has been runnable but waiting for a CPU, so far; None
        # where the system does not say (see the module's docstring)
        self.cpu_wait: Callable[[], float] | None = None
        self._cpu_wait_then = 0.0
        self._busy = 0.0  # seconds the loop ran passes (not waiting for I/O) in the current interval

    def decide(self, now: float, delay: float, in_flight: int, waiting: int, first: bool, held: bool = False) -> str:
        """``ADMIT``, ``WAIT`` (for a slot, until it has waited ``interval`` in all; no more wait
        than ``limit`` or half the last interval's pace, whichever is more) or ``SHED``, for
        a request that waited ``delay`` seconds, taken up at ``now`` with ``in_flight`` being served
        and ``waiting`` waiting for a slot; ``first``: the first request of its connection (its delay
        includes the accept backlog); ``held``: read only after its connection was held back for a
        shed's Retry-After (taken up as soon as that ended, its delay says nothing of the queue)."""
        if now >= self._interval_end:
            self._adapt(now)
        if first and delay > self.interval:
            # Stale in the backlog: it says nothing about how the admitted work fares. Shed under
            # pressure (the limit reached, now or over the last interval), where the backlog is a
            # standing queue; after a one-off stall (a worker that blocked the loop) it is served.
            if delay > STALL * self.interval or in_flight >= self.limit or waiting or self._limited or self._pressed:
                return SHED
            return ADMIT if in_flight < self.limit else WAIT
        if delay < self._min and not held:
            self._min = delay
        if in_flight >= self.limit:
            self._limited = True
            # Waiting is worth it only if the requests ahead of it will have a slot well within
            # the interval (half of it, at the last interval's pace): otherwise it would likely
            # be shed after waiting, and a 503 now is worth more to the client than one later.
            return WAIT if waiting < max(self.limit, self._pace // 2) else SHED
        self._admitted += 1
        return ADMIT

    def admitted(self) -> None:
        """A waiting request was given a slot."""
        self._admitted += 1

    def worked(self, seconds: float) -> None:
        """An admitted request took ``seconds`` from its admission to its answer written, without
        a schedule point between (its handler's work and the ingress's)."""
        self._work += seconds

    def ran(self, seconds: float) -> None:
        """The loop ran a scheduler pass for ``seconds`` (wall time, its waits for a CPU included)."""
        self._busy += seconds

    def _own_share(self) -> float:
        """Of the time the loop ran passes over the interval, the share it was not waiting for a CPU."""
        if self.cpu_wait is None:
            return 1.0
        waited, self._cpu_wait_then = -self._cpu_wait_then, self.cpu_wait()
        waited += self._cpu_wait_then
        return max(0.0, 1.0 - waited / self._busy) if self._busy > 0 else 1.0

    def _adapt(self, now: float) -> None:
        """The interval that ended sets the limit for the next one."""
        # On a machine shared with busy processes, part of every delay is time the loop waited for
        # a CPU, which no limit shortens: only its own share counts against the target.
        least = self._min * self._own_share()
        # No signal without a request taken up, nor from an interval followed by one without any
        # (the server idled: no standing queue).
        if least < math.inf and now < self._interval_end + self.interval and (self._limited or least > self.target):
            # The delay grows with the work in flight (each pass runs every request's next step):
            # scale the limit towards where the least delay would be the target, by 2x at most.
            scale = min(2.0, max(0.5, self.target / least)) if least > 0 else 2.0
            if scale < 1 and self._work < WORK_SHARE * self.interval:
                # The passes are long, but not with admitted work: with other work (shedding,
                # accepting, parsing), or with the machine's other processes taking the CPU. A
                # lower limit would not shorten them, only serve less; a higher one, while it
                # holds requests back, gives admitted work its share of each pass.
                grow = self._limited and self._work > 0
                scale = min(2.0, WORK_SHARE * self.interval / self._work) if grow else 1.0
            limit = round(self.limit * scale)
            self.limit = min(self.ceiling, max(self.floor, limit if scale <= 1 else max(limit, self.limit + 1)))
        adjacent = now < self._interval_end + self.interval  # the interval just judged followed the last one: no idle one between
        self._pressed = self._limited and adjacent
        self._interval_end = now + self.interval
        self._min = math.inf
        self._limited = False
        self._work = 0.0
        self._pace = self._admitted if adjacent else 0
        self._admitted = 0
        self._busy = 0.0
