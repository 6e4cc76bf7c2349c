"""Fibers: in virtual time, worker coroutines resumed by the clock itself rather than by trio.

Why: in virtual time a worker's ``await`` (``ctx.sleep``, ``ctx.cpu``, a binding call) only ever
waits for the model: a timer on the clock, a free core, another actor's answer. Run as a trio task,
every such wait costs a scheduler pass (park, the clock reschedules the task, trio forms a batch and
switches to it), and those passes were most of a simulated hop. SimPy resumes its processes'
generators straight from its event loop; a fiber is the same thing for a coroutine: the clock's
timer, or the reply that a fiber waits for, calls ``coro.send`` directly.

The same worker code runs live as a trio task. The platform's awaitables (``VirtualClock.sleep``,
``CorePool.run``, ``Mailbox.receive``, ``ask``) look at the run's fiber (``runs.current().fiber``,
per run: two simulations in two threads each step their own): inside a fiber they arrange
the fiber's own wake-up and ``suspend()``; outside one they take trio's path. A worker that awaits
anything else in virtual time (``trio.sleep``, an asyncio future) gets an error at that ``await``
(a 500 for its call), since nothing here would ever resume it.

A fiber is driven by ``step`` (called by the clock: from a timer, or from its queue of fibers made
ready at the current instant). Fibers never run nested: a fiber that wakes another only queues it.
Its owner (an environment actor, a trio task) learns through ``on_exit`` when it ends or fails, and
closes the fibers it still owns when it is cancelled, so that no coroutine outlives its run.
"""

from __future__ import annotations

import types
from collections import deque
from typing import Any, Callable, Coroutine, Generator

from edge.platform import runs

_SUSPEND = object()  # what a fiber yields to ``step``: "my wake-up is arranged, park me"


@types.coroutine
def suspend() -> Generator[Any, Any, Any]:
    """Park the current fiber until whoever holds it calls ``wake``; returns the woken value."""
    return (yield _SUSPEND)


class Fiber:
    """One coroutine and the queue it goes back on when woken.

    ``on_exit(fiber, error)`` is called once when the coroutine ends: ``error`` is None when it
    returned, else what it raised (worker faults are caught below this, in the actor, so an error
    here is a platform bug or a real Ctrl-C).
    """

    __slots__ = ("coro", "_ready", "on_exit", "_run")

    coro: Coroutine[Any, Any, Any] | None

    def __init__(self, coro: Coroutine[Any, Any, Any], ready: deque[Any], on_exit: Callable[[Fiber, BaseException | None], None]) -> None:
        self.coro = coro
        self._ready = ready
        self.on_exit = on_exit
        self._run = runs.current()  # what ``step`` marks: no context lookup per step

    def wake(self, value: Any = None) -> None:
        """Resume the fiber with ``value`` at the current instant, after the fibers already queued."""
        self._ready.append((self, value))

    def close(self) -> None:
        """End a parked fiber (its run is over): ``GeneratorExit`` at its ``await``, so that its
        ``finally`` blocks run. A worker that swallows it and awaits again is just dropped."""
        coro, self.coro = self.coro, None  # a wake-up that comes after this finds nothing to resume
        if coro is None:
            return
        run = self._run
        run.fiber = self
        try:
            coro.close()
        except RuntimeError:  # "coroutine ignored GeneratorExit": nothing more can be done for it
            pass
        finally:
            run.fiber = None


def step(fiber: Fiber, value: Any) -> None:
    """Resume ``fiber`` with ``value`` and run it until it suspends or ends."""
    coro = fiber.coro
    if coro is None:  # closed while its wake-up was on the way
        return
    run = fiber._run
    run.fiber = fiber
    error: BaseException | None = None
    try:
        while True:
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration:
                fiber.on_exit(fiber, None)
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the fiber's owner
                fiber.on_exit(fiber, exc)
                return
            if yielded is _SUSPEND:
                return
            value, error = None, RuntimeError(
                f"in virtual time a worker can await only the platform (ctx.sleep, ctx.cpu, bindings, "
                f"fetch bodies), not {type(yielded).__name__}: nothing would ever resume it"
            )
    finally:
        run.fiber = None
