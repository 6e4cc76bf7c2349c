"""Time for the model: a virtual clock that owns its timers, and seeded random streams.

The model never asks trio for the time or sleeps with ``trio.sleep`` directly: it goes through a
``ModelClock``, so that the same model can run on real time (live mode) as on virtual time.

Why a clock that holds its own timers: ``trio.sleep`` opens a cancel scope and registers a deadline
per call, which caps a simulation at a few tens of thousands of timer events a second. Here a sleeping
fiber (``edge.platform.fibers``) or task puts its wake-up on a heap. When trio finds nothing
runnable it asks the clock how long to block (``deadline_to_sleep_time``); the virtual clock answers
by running ready fibers and firing timers in order until one wakes a task, and saying "don't block". trio's own
deadlines (``trio.sleep``, ``fail_after`` in user code) still work: the clock jumps to them when they
come first.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
import time
from collections import deque
from typing import Any, Awaitable, Callable, Coroutine

import trio
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

from edge.platform import fibers, runs, timerfd, trio_internals


class ModelClock:
    """What the model needs from time: ``now()``, ``sleep()`` and ``call_later()``."""

    def now(self) -> float:
        raise NotImplementedError

    def sleep(self, seconds: float) -> Awaitable[None]:
        raise NotImplementedError

    def call_later(self, seconds: float, fn: Callable[..., Any], *args: Any) -> None:
        raise NotImplementedError

    def late(self) -> float:
        """How long after its time the ``call_later`` callback being run was called: never, in
        virtual time, where a timer's callback runs at its instant."""
        return 0.0


class VirtualClock(trio.abc.Clock, ModelClock):
    """A trio clock whose time only moves when nothing is left to do at the current instant.

    Timers are heap entries ``[when, seq, task_or_None, fn, args]``; ``seq`` keeps equal times in
    FIFO order, which makes runs deterministic. A cancelled sleep clears its entry's task instead of
    searching the heap (lazy deletion).

    The clock also drives fibers (``edge.platform.fibers``): worker coroutines it resumes itself.
    Fibers woken at the current instant wait in ``_ready`` (FIFO) and run before time moves on; a
    fiber's sleep is a timer whose callback resumes it. Every ``_YIELD_EVERY`` events the clock
    hands control back to trio for one pass even if no task is runnable, so that a long stretch of
    fiber and callback work still lets trio deliver Ctrl+C and I/O.
    """

    _YIELD_EVERY = 1024

    def __init__(self) -> None:
        self._now = 0.0
        self._closed = False
        self._timers: list[list[Any]] = []
        self._seq = itertools.count()
        self._ready: deque[tuple[fibers.Fiber, Any]] = deque()
        self.events = 0  # timers fired: a cheap progress and speed figure
        self._runq: Any = ()

    # -- trio.abc.Clock ------------------------------------------------------------------
    def start_clock(self) -> None:
        # trio's queue of runnable tasks: after a callback or fiber step, an empty one means the
        # clock can go on at once instead of handing control back for an empty scheduler pass.
        self._runq = trio_internals.run_queue()
        trio_internals.wrap_io_manager(_RarePolls)

    def current_time(self) -> float:
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        """No task is runnable: run ready fibers, then fire timers in order, and never block."""
        timers = self._timers
        ready = self._ready
        pop = heapq.heappop
        runq = self._runq
        step = fibers.step
        budget = self._YIELD_EVERY
        while True:
            while ready:
                step(*ready.popleft())
                if runq:  # a fiber woke a task: let it run before the other fibers
                    return 0.0
            if not timers:
                break
            entry = timers[0]
            when = entry[0]
            if deadline <= when:
                break
            budget -= 1
            if not budget:
                return 0.0  # one trio pass now and then, whatever the model does
            pop(timers)
            task = entry[2]
            fn = entry[3]
            if task is None and fn is None:
                continue  # a cancelled sleep
            if when > self._now:
                self._now = when
            self.events += 1
            if task is not None:
                reschedule(task)
                return 0.0
            fn(*entry[4])
            if runq:  # the callback woke a task: let it run before time moves on
                return 0.0
        if deadline == math.inf:
            # Nothing runnable, no timer, no deadline: only a program that is really stuck gets
            # here (a run always holds its end-of-run timer), and then trio's blocking is right.
            return math.inf
        if deadline > self._now:
            self._now = deadline
        return 0.0

    # -- ModelClock ----------------------------------------------------------------------
    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Wait ``seconds`` of model time: a fiber's wake-up is a timer that resumes it, a task's
        a timer that reschedules it (cheaper than ``trio.sleep``'s cancel scope and deadline)."""
        fiber = runs.current().fiber
        if fiber is not None:
            heapq.heappush(self._timers, [self._now + seconds, next(self._seq), None, fibers.step, (fiber, None)])
            return fibers.suspend()
        return self._park(seconds)

    async def _park(self, seconds: float) -> None:
        entry = [self._now + seconds, next(self._seq), current_task(), None, ()]
        heapq.heappush(self._timers, entry)

        def abort(_: Any) -> Abort:
            entry[2] = None
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def call_later(self, seconds: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` from the scheduler at ``now + seconds``; ``fn`` must not block."""
        if self._closed:
            return
        heapq.heappush(self._timers, [self._now + seconds, next(self._seq), None, fn, args])

    def start_fiber(self, coro: Coroutine[Any, Any, Any], on_exit: Callable[[fibers.Fiber, BaseException | None], None]) -> fibers.Fiber:
        """Make ``coro`` a fiber, to start at the current instant after the fibers already ready."""
        fiber = fibers.Fiber(coro, self._ready, on_exit)
        self._ready.append((fiber, None))
        return fiber

    def close(self) -> None:
        """The run is over: drop every pending callback, ready fiber and fiber timer, and ignore
        new ones. A chain of callbacks that reschedules itself (a rollout holding, a controller
        polling) would otherwise keep the clock firing for ever while trio shuts down; sleeping
        tasks keep their timers. Parked fibers are closed by their owners as they are cancelled."""
        self._closed = True
        self._ready.clear()
        self._timers = [entry for entry in self._timers if entry[2] is not None]
        heapq.heapify(self._timers)


class _RarePolls:
    """trio's I/O manager for a virtual-time run, asking the kernel for events only now and then.

    Installed by ``trio_internals.wrap_io_manager``, which states what trio must do for it to work.
    trio polls for I/O (an ``epoll_wait`` syscall) on every scheduler pass. A simulation does no
    I/O; the only descriptor that matters is trio's own wake-up socket (Ctrl+C, ``run_sync_soon``
    from a thread), for which one poll every 20 ms of wall time is soon enough. The interval is
    wall time rather than a count of passes because a pass may carry up to 1024 timer events: one
    poll in 64 passes let a Ctrl+C wait two seconds. A poll that finds nothing changes nothing, so
    the wall clock does not reach the model. A poll that may block (nothing to do) always goes
    through.
    """

    _INTERVAL = 0.02

    def __init__(self, io_manager: Any) -> None:
        self._io_manager = io_manager
        self.get_events_now = io_manager.get_events
        self.process_events = io_manager.process_events  # called every pass: no __getattr__ detour
        self._next_poll = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._io_manager, name)

    def get_events(self, timeout: float) -> Any:
        if timeout == 0:
            now = time.monotonic()
            if now < self._next_poll:
                return ()
            self._next_poll = now + self._INTERVAL
        return self.get_events_now(timeout)


class RealClock(ModelClock):
    """The model's time in live mode: trio's clock, and timers served by one task, to 0.1 ms.

    ``call_later`` must not need a task per timer (a synthetic worker sets several per call), so
    timers wait on a heap and ``run()``, a task in the serving nursery, waits for the earliest one;
    ``sleep`` parks the task on the same heap (entries ``[when, seq, task_or_None, fn, args]``,
    as the virtual clock's; a cancelled sleep clears its task). ``run()`` must be running for
    either to come due.

    Why not trio's deadlines: trio blocks in epoll, whose timeout is whole milliseconds, so a
    modelled 150 µs took 1.1 ms live. ``run()`` waits on a timerfd instead (``edge.platform.timerfd``,
    precise to tens of microseconds), re-armed when an earlier timer arrives; without one (not
    Linux) it falls back to a cancel scope's deadline. Waking from epoll still takes tens of
    microseconds, so the timerfd is armed ``_LEAD`` early and ``run()`` spends the rest yielding to
    the other tasks (trio checkpoints) until the timer is due: at most 200 µs of polling per wake-up,
    which did not show in the server's CPU use at 500 req/s (100 µs left 1.5 ms waits 60-100 µs late). A callback that sets a timer counts from the
    time its own timer was due rather than from when it ran, as in virtual time: a chain of steps
    (a synthetic call's CPU, then its wait) keeps the model's total instead of adding each step's
    wake-up delay.
    """

    _LEAD = 200e-6  # about what waking a process blocked in epoll takes on a busy two-core VM

    def __init__(self) -> None:
        self._timers: list[list[Any]] = []
        self._seq = itertools.count()
        self._armed = -math.inf  # what run() waits for; -inf while it is not waiting
        self._due: float | None = None  # the scheduled time of the callback being run
        self._timer: timerfd.Timer | None = None
        self._wake: trio.CancelScope | None = None

    def now(self) -> float:
        return trio.current_time()

    def sleep(self, seconds: float) -> Awaitable[None]:
        return self._park(self._push([self._start() + seconds, next(self._seq), current_task(), None, ()]))

    @staticmethod
    async def _park(entry: list[Any]) -> None:
        def abort(_: Any) -> Abort:
            entry[2] = None
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def call_later(self, seconds: float, fn: Callable[..., Any], *args: Any) -> None:
        self._push([self._start() + seconds, next(self._seq), None, fn, args])

    def _start(self) -> float:
        return self._due if self._due is not None else trio.current_time()

    def late(self) -> float:
        return trio.current_time() - self._due if self._due is not None else 0.0

    def _push(self, entry: list[Any]) -> list[Any]:
        heapq.heappush(self._timers, entry)
        if entry[0] < self._armed:
            self._arm(entry[0])
        return entry

    def _arm(self, when: float) -> None:
        self._armed = when
        if self._timer is not None:
            if when != math.inf:
                self._timer.arm(when - self._LEAD - trio.current_time())
        elif self._wake is not None:
            self._wake.deadline = when

    async def run(self) -> None:
        """Fire timers as they come due, until cancelled."""
        self._timer = timerfd.open_timer()
        try:
            await self._fire_forever()
        finally:
            if self._timer is not None:
                self._timer.close()
                self._timer = None

    async def _fire_forever(self) -> None:
        timers = self._timers
        pop = heapq.heappop
        while True:
            self._armed = -math.inf
            now = trio.current_time()
            while timers and timers[0][0] <= now:
                when, _, task, fn, args = pop(timers)
                if task is not None:
                    reschedule(task)
                elif fn is not None:
                    self._due = when
                    try:
                        fn(*args)
                    finally:
                        self._due = None
            if timers and timers[0][0] - trio.current_time() < self._LEAD:
                await trio.lowlevel.checkpoint()
                continue
            self._arm(timers[0][0] if timers else math.inf)
            if self._timer is not None:
                await trio.lowlevel.wait_readable(self._timer)
                self._timer.clear()
            else:
                with trio.CancelScope(deadline=self._armed) as self._wake:
                    await trio.sleep_forever()
                self._wake = None


def random_stream(seed: int, *names: object) -> random.Random:
    """An independent random stream for one component of one run.

    Each component draws from its own stream, keyed by the run's seed and the component's name, so
    a change in one place (a canary weight, a new service) does not shift every other draw: runs
    that differ in one knob stay comparable (common random numbers). The key goes through SHA-256
    rather than ``hash()`` so that it does not depend on PYTHONHASHSEED.
    """
    return random.Random(stream_seed(seed, *names))


def stream_seed(seed: int, *names: object) -> int:
    """The seed of ``random_stream(seed, *names)``, for a stream drawn with another generator
    (numpy's, in the batched engine)."""
    key = "/".join([str(seed), *map(str, names)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:16], "big")
