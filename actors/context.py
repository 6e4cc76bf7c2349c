"""``ctx``, what worker code holds of the platform for the call it serves: CPU, sleeping, time,
randomness, and what the call has cost so far.

Three kinds, one per slot, reused from call to call: ``Context`` (virtual time: the model's CPU
and waits, nothing real counts), ``MeteredContext`` (the worker's real thread CPU is charged too:
live, or virtual time with ``measure_cpu``), and ``LiveContext`` (live: also keeps each call on
its model's timeline, see there).
"""

from __future__ import annotations

import functools
import inspect
import random
from typing import TYPE_CHECKING, Any, Awaitable

from edge.platform import fibers, runs
from edge.platform.cpu import CorePool, CpuAccount, CpuLimitExceeded
from edge.platform.units import parse_duration

if TYPE_CHECKING:
    from actors.environment import EnvironmentActor


@functools.lru_cache(maxsize=1024)
def _parse_seconds(text: str) -> float:
    return parse_duration(text)


def seconds(amount: float | int | str) -> float:
    """Worker code may say ``ctx.cpu("2ms")`` or ``ctx.cpu(0.002)``."""
    return _parse_seconds(amount) if isinstance(amount, str) else float(amount)


class Context:
    """``ctx`` for worker code: what the current call costs, and its random stream."""

    __slots__ = ("_actor", "account", "random", "later")

    paced = False  # a LiveContext: binding calls tell it how long they waited

    def __init__(self, actor: EnvironmentActor) -> None:
        self._actor = actor
        self.account: CpuAccount | None = None
        self.random: random.Random = actor.rng
        self.later: list[Awaitable[Any]] | None = None  # the call's ctx.wait_until work, run after its answer

    def wait_until(self, work: Awaitable[Any]) -> None:
        """Cloudflare's ``ctx.waitUntil``: ``work`` (a coroutine, say) runs after the call has
        been answered, on the call's CPU budget; its slot stays busy until it ends. What it
        raises is logged and counted as the environment's exception, and answers nobody.

        Unlike a JavaScript promise, a Python coroutine does not run until it is awaited: the
        work starts when the answer has gone, not when it is handed over.
        """
        if not inspect.isawaitable(work):
            raise TypeError(f"ctx.wait_until() takes an awaitable (a coroutine, say), not {type(work).__name__}")
        if self.account is None:
            raise RuntimeError("ctx.wait_until() outside a call")
        if self.later is None:
            self.later = [work]
        else:
            self.later.append(work)

    waitUntil = wait_until  # noqa: N815 -- the name Cloudflare's Python Workers use (self.ctx.waitUntil)

    def cpu(self, amount: float | int | str) -> Awaitable[None]:
        """Spend CPU on one of the node's cores, charged to the top-level request's budget."""
        wanted = seconds(amount)
        actor = self._actor
        account = self.account
        assert account is not None, "ctx.cpu() outside a call"
        granted = account.charge(wanted, actor.key)
        actor.stats.cpu_seconds += granted
        fiber = runs.current().fiber
        if fiber is not None and 0 < granted == wanted and actor.cores.take():
            # The common case in virtual time, without a coroutine of its own: the timer that
            # ends the work gives the core back and resumes the worker (``_off_core``).
            actor.clock.call_later(granted, _off_core, actor.cores, granted, fiber)
            return fibers.suspend()
        return self._cpu(wanted, granted)

    async def _cpu(self, wanted: float, granted: float) -> None:
        if granted > 0:
            await self._actor.cores.run(granted)
        if granted < wanted:
            account = self.account
            assert account is not None
            raise CpuLimitExceeded(account.used, account.limit)

    def sleep(self, amount: float | int | str) -> Awaitable[None]:
        """Wait without using CPU (storage, an origin, a timer).

        Hands back the clock's own coroutine rather than wrapping it in another: one frame less on
        a path every worker takes.
        """
        return self._actor.clock.sleep(seconds(amount))

    def now(self) -> float:
        return self._actor.clock.now()


class MeteredContext(Context):
    """``ctx`` of a slot whose worker's real CPU is measured too (live; virtual time with
    ``measure_cpu``), and the ``cpu.Meter`` of its calls.

    One call is charged the larger of the CPU its worker declared (``ctx.cpu``) and the CPU it
    measurably burnt (``cpu.metered``), never both: a declaration says what the work costs on the
    platform, and the Python that stands in for that work must not pay for it a second time,
    while a worker that burns more than it declares pays for what it burns. Declared CPU still
    holds a model core for its whole duration (simulated time); measured CPU only counts against
    the budget, since it has already taken its real time.
    """

    __slots__ = ("declared", "measured")

    def __init__(self, actor: EnvironmentActor) -> None:
        super().__init__(actor)
        self.declared = 0.0
        self.measured = 0.0

    def cpu(self, amount: float | int | str) -> Awaitable[None]:
        wanted = seconds(amount)
        account = self.account
        assert account is not None, "ctx.cpu() outside a call"
        before = max(self.declared, self.measured)
        self.declared += wanted
        due = max(self.declared, self.measured) - before
        granted = account.charge(due, self._actor.key)  # raises if the budget is already gone
        self._actor.stats.cpu_seconds += granted
        return self._cpu(wanted, wanted - (due - granted))  # short of the budget: held only so long, then raises

    def left(self) -> float:
        account = self.account
        assert account is not None
        return account.limit - account.used + max(self.declared - self.measured, 0.0)

    def charge(self, seconds: float) -> None:
        account = self.account
        if account is None or account.exceeded_at is not None:
            return
        before = max(self.declared, self.measured)
        self.measured += seconds
        due = max(self.declared, self.measured) - before
        if due > 0:
            self._actor.stats.cpu_seconds += account.charge(due, self._actor.key)


def _off_core(cores: CorePool, seconds: float, fiber: fibers.Fiber) -> None:
    cores.release(seconds)
    fibers.step(fiber, None)


class Pacing:
    """How much earlier than the model says one environment's live calls should end their waits,
    so that their answers come when the model says, on average. Shared by its slots.

    A synthetic call ``observe``s its final timer's lateness: ``tail`` is its running mean. A code
    call ``settle``s how far behind its model it still finished: what no hold of its own could take
    back (its holds' own timer lateness, the Python between its steps, a binding's hop back).
    ``tail`` then moves by a share of that, the integral of a controller whose target is finishing
    on time: it settles where calls stop finishing late. Not while a call had no hold to cut, or
    had its holds cut to nothing already: more cut would not have helped (no wind-up).
    """

    __slots__ = ("tail",)

    WEIGHT = 1 / 32  # a few dozen calls: follows a change of load within a second at 100 req/s

    def __init__(self) -> None:
        self.tail = 0.0

    def observe(self, seconds: float) -> None:
        self.tail += (seconds - self.tail) * self.WEIGHT

    def settle(self, behind: float, cut_had_room: bool) -> None:
        if cut_had_room or behind < 0:
            self.tail = max(self.tail + behind * self.WEIGHT, 0.0)


class LiveContext(MeteredContext):
    """``ctx`` of a live slot: a ``MeteredContext`` that keeps each call on its model's timeline.

    Why: live, a call takes time the model does not have: the Python that runs the worker and the
    platform (the hand-over to a slot, the binding hops), and timers that fire late. Virtual time
    charges none of it, so the same scenario served live was slower than simulated (at 100 req/s,
    auth, a 0.15 ms model, took 0.34 ms). A call keeps how far behind its model it is: the real
    time since it began less what the model has spent so far (the CPU and sleeps the worker asked
    for, in full; the binding calls it waited on, until they were answered, and the queue for a
    core, as long as they took). Each CPU hold or sleep is shortened by that much, and by the
    environment's ``Pacing.tail``: what calls still ended late by, on average, after their own
    cuts (the lateness of their last hold, the Python after it, the hop back from a binding). As
    if the platform had done that much of the work already, since the Python ran on the same
    thread in the meantime. Never below zero, so a worker whose Python costs more than its model
    is just slower live, as it would be on the platform. The CPU charged to the budget is
    unchanged (``MeteredContext``): only the wall-clock wait is paced.

    A call began when it was posted if an idle slot took it at once (the hand-over is overhead),
    else when a slot took it from the queue (the queue is the model's own wait).
    """

    __slots__ = ("began", "modelled", "room", "_pacing")

    paced = True

    def __init__(self, actor: EnvironmentActor, pacing: Pacing) -> None:
        super().__init__(actor)
        self._pacing = pacing
        self.began = self.modelled = 0.0
        self.room: bool | None = None  # the call's holds so far were all longer than their cut (None: no hold yet)

    def start(self, began: float) -> None:
        """A new call, begun at ``began`` on the model's timeline."""
        self.declared = self.measured = self.modelled = 0.0
        self.began = began
        self.room = None

    def waited(self, seconds: float) -> None:
        """The call waited ``seconds`` on something the model times itself (a binding call until
        it was answered, a core): the model's time, not overhead."""
        self.modelled += seconds

    def finished(self) -> None:
        """The call has its answer: how far behind its model it still is goes into the pacing."""
        if self.room is not None:
            self._pacing.settle(self._actor.clock.now() - self.began - self.modelled, self.room)

    async def _cpu(self, wanted: float, granted: float) -> None:
        if granted > 0:
            cores = self._actor.cores
            if not cores.take():
                queued = self._actor.clock.now()
                await cores.queue()
                self.waited(self._actor.clock.now() - queued)
            try:
                await self._paced(granted)
            finally:
                cores.release(granted)
        if granted < wanted:
            account = self.account
            assert account is not None
            raise CpuLimitExceeded(account.used, account.limit)

    def sleep(self, amount: float | int | str) -> Awaitable[None]:
        return self._paced(seconds(amount))

    async def _paced(self, modelled: float) -> None:
        """Wait what is left of ``modelled`` seconds once the call has caught up with its model."""
        clock = self._actor.clock
        now = clock.now()
        wait = modelled - (now - self.began - self.modelled) - self._pacing.tail
        self.modelled += modelled
        if wait > 0:
            self.room = self.room is not False
            await clock.sleep(wait)
        else:
            self.room = False
