"""Shared CPU: one budget per top-level request, and the node's finite pool of cores.

Workers connected by service bindings share the CPU budget of the top-level request and run on one
thread: while the gateway awaits its AUTH binding it uses no CPU, and the CPU that auth spends is
charged to the same request. ``CpuAccount`` is that budget; every ``Call`` along a chain carries the
same account. ``CorePool`` is the machine: CPU work holds a core for its duration, and when every core
is busy the work waits its turn (FIFO), which is how CPU contention turns into latency.
"""

from __future__ import annotations

import functools
from collections import deque
from typing import Any, Callable, Coroutine, Generator, Protocol

import time
import types

from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

from edge.platform import fibers, runs, watchdog
from edge.platform.clock import ModelClock


class CpuLimitExceeded(Exception):
    """The top-level request ran out of CPU time; the whole chain fails with it."""

    def __init__(self, used: float, limit: float) -> None:
        super().__init__(f"exceeded CPU time limit: used {used * 1e3:.3f}ms of {limit * 1e3:.3f}ms")
        self.used = used
        self.limit = limit


class InvocationLimitExceeded(Exception):
    """A chain made more service-binding invocations than the platform allows per request."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"too many service binding invocations in one request (limit {limit}): "
            "is a worker calling itself?"
        )
        self.limit = limit


class CpuAccount:
    """The CPU budget and binding-invocation count of one top-level request.

    ``exceeded_at`` names the service environment whose work crossed the limit: the failure belongs
    to the top-level request, but an operator needs to know which worker burnt the budget.
    """

    __slots__ = ("limit", "used", "invocations", "max_invocations", "exceeded_at")

    def __init__(self, limit: float, max_invocations: int) -> None:
        self.limit = limit
        self.used = 0.0
        self.invocations = 0
        self.max_invocations = max_invocations
        self.exceeded_at: tuple[str, str] | None = None  # (service, environment)

    @property
    def exceeded(self) -> bool:
        return self.exceeded_at is not None

    def charge(self, seconds: float, where: tuple[str, str]) -> float:
        """Charge up to ``seconds``; returns what the budget allowed, marking it exceeded if short.

        A request whose budget is already gone raises at once: its chain is being torn down.
        """
        if self.exceeded_at is not None:
            raise CpuLimitExceeded(self.used, self.limit)
        left = self.limit - self.used
        if seconds > left:
            self.exceeded_at = where
            seconds = left if left > 0 else 0.0
        self.used += seconds
        return seconds


class CorePool:
    """``cores`` CPUs shared by every worker on the node; CPU work queues FIFO for a free one.

    Waiters are callbacks, called when a core is handed to them: a parked task (code workers) and
    a timer chain (synthetic workers) queue in the same line.
    """

    __slots__ = ("cores", "clock", "_free", "_waiting", "busy_seconds")

    def __init__(self, cores: int, clock: ModelClock) -> None:
        if cores < 1:
            raise ValueError(f"a node needs at least one core, got {cores}")
        self.cores = cores
        self.clock = clock
        self._free = cores
        self._waiting: deque[Callable[[], None]] = deque()
        self.busy_seconds = 0.0

    def take(self) -> bool:
        """Take a free core if there is one."""
        if self._free:
            self._free -= 1
            return True
        return False

    def wait(self, then: Callable[[], None]) -> None:
        """Queue for a core: ``then`` is called holding one, when ``release`` hands it over."""
        self._waiting.append(then)

    def release(self, seconds: float) -> None:
        """Give the core back after ``seconds`` of work: to the next in line, or to the pool."""
        self.busy_seconds += seconds
        if self._waiting:
            self._waiting.popleft()()
        else:
            self._free += 1

    async def run(self, seconds: float) -> None:
        """Occupy one core for ``seconds`` of CPU time, waiting for a core if none is free."""
        if not self.take():
            await self.queue()
        try:
            await self.clock.sleep(seconds)
        finally:
            self.release(seconds)

    async def queue(self) -> None:
        """Wait in line (FIFO) until ``release`` hands over a core; the caller holds it then."""
        fiber = runs.current().fiber
        if fiber is not None:
            wake = fiber.wake
            self.wait(wake)
            try:
                await fibers.suspend()  # woken holding the core that release() handed over
            except GeneratorExit:  # closed while waiting: it holds no core
                self._waiting.remove(wake)
                raise
        else:
            await self._wait_as_task()

    async def _wait_as_task(self) -> None:
        handover = functools.partial(reschedule, current_task())
        self.wait(handover)

        def abort(_: Any) -> Abort:
            self._waiting.remove(handover)
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)  # woken holding the core that release() handed over


class Meter(Protocol):
    """What ``metered`` charges one call's measured CPU to."""

    def left(self) -> float:
        """CPU seconds the call may still burn before its request is over budget."""

    def charge(self, seconds: float) -> None:
        """A step of the call burnt ``seconds`` of thread CPU."""


@types.coroutine
def metered(coro: Coroutine[Any, Any, Any], meter: Meter) -> Generator[Any, Any, Any]:
    """Run ``coro`` as ``await coro`` would, charging the thread CPU time of each of its steps.

    Live mode (and virtual time with ``measure_cpu``): worker code really runs, and its CPU is
    what the chain must pay for. A step is the
    code between two points where the worker parks (a binding call, a sleep); steps of other
    tasks interleave between them and are not counted. This drives the coroutine the way ``await``
    does (send what trio resumes it with, throw what trio throws), with a CPU clock read around
    each step. While a step runs, the run's ``step`` (``runs.Run.step``) says when it started and
    how much CPU it may use (``meter.left()``): the watchdog interrupts a step that goes past that
    (or past the wall limit) with ``WorkerInterrupted``, since Python cannot be preempted otherwise.
    """
    send: Any = None
    error: BaseException | None = None
    run = runs.current()
    while True:
        outer = run.step  # a call run inline by a binding is a step inside its caller's step
        inner = run.charged
        started = time.thread_time()
        run.step = (started, meter.left())
        try:
            trap = coro.send(send) if error is None else coro.throw(error)
        except StopIteration as done:
            run.step = outer
            _charge_own(meter, started, inner, run)
            return done.value
        except BaseException:
            run.step = outer
            _charge_own(meter, started, inner, run)
            raise
        run.step = outer
        _charge_own(meter, started, inner, run)
        try:
            send, error = (yield trap), None
        except GeneratorExit:  # closed while parked: close the worker too, as await does
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the coroutine, as await does
            send, error = None, exc


def _charge_own(meter: Meter, started: float, inner: float, run: runs.Run) -> None:
    """Charge a step's own CPU: ``run.charged`` counts what every metered step of the run
    charged, so a step subtracts what steps nested in it (a bound worker run inline, see
    ``EnvironmentActor.serve_inline``) charged since it began (``inner``), and no CPU is charged
    twice."""
    own = time.thread_time() - started - (run.charged - inner)
    run.charged += own
    meter.charge(own)


watchdog.boundary(metered)
