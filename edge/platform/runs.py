"""A run's own state: what its code reads without being handed it, kept per run.

Why: the platform's awaitables ask which fiber is being stepped; the watchdog times the worker
step a live run publishes; nested metered steps subtract what the steps inside them charged;
redaction masks the secrets of the run whose log line it is; trio's scheduler draws its batch
order from the run's seed. Kept in module globals, two runs in one process (two threads each
calling ``simulate``, tune's replications on a thread pool) saw each other's: one's fiber, one's
CPU charge, one's secrets masked in the other's logs, one's draws shifting the other's order.

How: a ``ContextVar`` holds the current ``Run``. ``simulate`` enters a new one in its thread before
``trio.run`` (so the run loop, the clock's callbacks and fibers, which run in the thread's own
context, see it, and so does every task: trio copies the context into each); ``serve`` enters
one in its main task before starting any other. Code that runs outside any run (a unit test
driving a clock by hand) shares the default run, ``OUTSIDE``.
"""

from __future__ import annotations

import contextlib
import random
from contextvars import ContextVar
from typing import Any, Iterator


class Run:
    """One run's state (see the module's docstring for who reads it)."""

    __slots__ = ("fiber", "step", "charged", "secrets", "scheduler")

    def __init__(self) -> None:
        self.fiber: Any = None
        """The fiber being stepped, if any: set by ``fibers.step`` around each resume, as trio's
        current task."""
        self.step: tuple[float, float] | None = None
        """Live: ``(thread CPU at the step's start, CPU budget left)`` while a worker step runs
        (``cpu.metered``), for the watchdog."""
        self.charged = 0.0
        """Thread CPU charged by every metered step so far (``cpu.metered``)."""
        self.secrets: set[str] = set()
        """Values masked in this run's log lines and in tracebacks it lets escape (``redact``)."""
        self.scheduler: random.Random | None = None
        """What trio's scheduler draws from while this run is current (``trio_internals.seed_scheduler``);
        None: trio's own."""


OUTSIDE = Run()
"""The run of code that runs outside any (``new``)."""

_current: ContextVar[Run] = ContextVar("edge_run", default=OUTSIDE)

current = _current.get
"""The current run: a bound method, so that a fiber's ``await`` pays no Python frame for it."""

CARRIED = "_edge_secrets"
"""The attribute of an exception escaping a run that holds the run's secrets: its traceback is
printed after the run is over (``redact.format_exception``), and must still mask them."""


@contextlib.contextmanager
def new() -> Iterator[Run]:
    """``with new() as run:`` code in this context (and tasks started from it) runs in ``run``."""
    run = Run()
    token = _current.set(run)
    try:
        yield run
    except BaseException as exc:
        if run.secrets:
            setattr(exc, CARRIED, frozenset(run.secrets) | getattr(exc, CARRIED, frozenset()))
        raise
    finally:
        _current.reset(token)
