"""The watchdog: a worker step that holds the trio thread too long is interrupted.

Why: Python cannot preempt a coroutine. A worker that spins (``while True: pass``), burns past its
request's CPU budget, or blocks without awaiting (``time.sleep``, blocking I/O) holds the thread
that runs trio: every other request, ``/healthz`` and the shutdown signals wait behind it, and in
virtual time ``edge run`` never returns. One mechanism covers CPU and wall time, live and virtual:

* **Noticing**, from a daemon thread, at no cost on the hot path. It watches the run that armed
  it (``runs.Run``: a run in another thread is not its to interrupt). Live, the CPU-metering
  trampoline (``cpu.metered``) already reads the thread's CPU clock around each worker step; it
  also publishes ``run.step = (cpu at start, CPU budget left)`` for the step's duration. The
  thread reads the trio thread's CPU clock (``pthread_getcpuclockid``) and its own wall clock:
  more CPU than the budget left, or a step older than the wall limit, is a breach. Virtual time
  publishes nothing more than the fiber being stepped (``run.fiber``; a store per step beyond
  that would show): the thread then looks at the trio thread's stack (``sys._current_frames``)
  and calls a breach when the same ``fibers.step`` frame has been there for the wall limit. Real CPU is not a virtual worker's cost (``ctx.cpu``
  is), so only the wall limit applies there.
* **Interrupting**: ``pthread_kill(SIGUSR2)`` to the trio thread (the main thread: Python runs
  signal handlers there only). The handler runs at the thread's next bytecode, and a blocking call
  (``time.sleep``, a socket read) returns EINTR and runs it too. It raises ``WorkerInterrupted``
  only if the frames it interrupted are worker code inside the step that breached: every frame
  between the interrupted one and the actor's call of the worker (a *boundary*) must be user code,
  never trio nor the platform's actors, so the exception cannot land in a scheduler's or mailbox's
  bookkeeping. Otherwise it does nothing, and the thread signals again on its next tick.

``WorkerInterrupted`` is a ``BaseException``: a worker's ``except Exception`` does not swallow it.
A worker that catches ``BaseException`` and carries on spinning is interrupted again every tick,
but cannot be stopped in-process; nor can a C call that never releases the GIL, nor ``os._exit``.

A genuine Ctrl-C must not pass for a worker fault: while armed in virtual time, SIGINT goes through
``_on_sigint``, which raises ``KeyboardInterrupt`` itself when a worker step holds the thread (trio
would only queue it until the step ends) and otherwise hands over to trio's handler; from then on
the thread ends any worker step it sees with ``KeyboardInterrupt`` too (the run goes on firing
timers until trio delivers the interrupt, and a new request may start spinning meanwhile).
``from_signal`` tells such a ``KeyboardInterrupt`` (raised by this module's or trio's handler)
from one a worker raises.

Determinism: the watchdog only fires on a broken worker, and where it fires depends on the
machine; a virtual run in which it fired is not reproducible (the summary counts the stalls).
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
import types
from typing import Any, Callable

from edge.platform import fibers, runs, trio_internals

log = logging.getLogger("edge.watchdog")

SIGNAL = signal.SIGUSR2
TICK = 0.01
"""Longest the thread sleeps while it watches: bounds how late a breach is noticed, beyond the GIL
hand-over (up to ``sys.getswitchinterval()``, 5 ms) a spinning thread takes to yield to it."""

STEP_LIMIT_LIVE = 1.0
"""Default wall time a live worker step may hold the thread: every other request waits behind it."""
STEP_LIMIT_VIRTUAL = 10.0
"""Default in virtual time, where a step does no real work: only a broken worker comes near it."""

CPU = "cpu"
WALL = "wall"
SIGINT = "sigint"  # a real Ctrl-C came: any worker step still holding the thread is ended with it


class WorkerInterrupted(BaseException):
    """Raised inside a worker step that held the trio thread past its CPU budget or the wall limit."""

    def __init__(self, reason: str, limit: float) -> None:
        what = "CPU budget" if reason == CPU else "step wall-time limit"
        super().__init__(f"worker step interrupted: it held the event loop past its {what} ({limit * 1e3:.0f}ms)")
        self.reason = reason
        self.limit = limit


_boundaries: set[types.CodeType] = set()
_step_codes = {fibers.step.__code__, fibers.Fiber.close.__code__}
_PLATFORM = ("trio", "outcome", "actors", "edge")
_USER_OK = ("edge.platform.fetch", "edge.platform.units")  # pure values a worker builds in its loops


def boundary(*functions: Callable[..., Any]) -> None:
    """Declare functions that call worker code: an interruption lands only in frames above them."""
    for fn in functions:
        _boundaries.add(fn.__code__)


def _is_platform(frame: types.FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name.partition(".")[0] in _PLATFORM and name not in _USER_OK


def _worker_boundary(frame: types.FrameType | None) -> types.FrameType | None:
    """The boundary frame under ``frame`` if every frame above it is user code, else None."""
    user = False
    while frame is not None:
        if frame.f_code in _boundaries:
            return frame if user else None
        if _is_platform(frame):
            return None
        user = True
        frame = frame.f_back
    return None


def _on_signal(signum: int, frame: types.FrameType | None) -> None:
    target = _watchdog.target
    if target is None:
        return
    step, reason, limit = target
    below = _worker_boundary(frame)
    if below is None:
        return  # not in worker code, or in the platform's: try again next tick
    if isinstance(step, types.FrameType):  # virtual time: the breaching fiber step
        while below is not None and below is not step:
            below = below.f_back
        if below is None:
            return
    elif _watchdog.run.step is not step:  # live: that step has ended since
        return
    _watchdog.target = None
    if reason == SIGINT:
        raise KeyboardInterrupt
    raise WorkerInterrupted(reason, limit)


def from_signal(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by a signal handler (a real Ctrl-C), not by worker code."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    if frame.f_code in _SIGINT_CODES:
        return True
    trio_handlers = trio_internals.sigint_handler_module()
    if trio_handlers is not None:
        return frame.f_globals.get("__name__") == trio_handlers
    installed = (_replaced_sigint, signal.getsignal(signal.SIGINT))  # trio's, wrapped by ours or not
    return any(frame.f_code is getattr(handler, "__code__", None) for handler in installed)


_replaced_sigint: Any = None


def _on_sigint(signum: int, frame: types.FrameType | None) -> None:
    _watchdog.sigint = True
    if _worker_boundary(frame) is not None:
        raise KeyboardInterrupt
    previous = _replaced_sigint
    if callable(previous):
        previous(signum, frame)


_SIGINT_CODES = {_on_sigint.__code__, _on_signal.__code__}


class _Watchdog:
    """The thread, and the signal handlers it needs, while the main thread's run is armed: one
    per process, as the signals and the main thread are."""

    def __init__(self) -> None:
        self.armed = 0
        self.wall_limit = math.inf
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()
        self.replaced: Any = None
        self.run = runs.OUTSIDE
        """The run watched: its ``step`` (live) and ``fiber`` (virtual) say what holds the thread."""
        self.target: tuple[Any, str, float] | None = None
        """What the next signal is for: the step (a ``run.step`` tuple, or a ``fibers.step`` frame),
        the reason and the limit crossed."""
        self.sigint = False
        """A real Ctrl-C came while armed: the run is ending, worker steps must not hold it up."""

    def arm(self, wall_limit: float, sigint: bool) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False  # signal handlers run on the main thread only: nothing could interrupt
        run = runs.current()
        if self.armed and run is not self.run:
            return False  # a run inside another's (a worker calling simulate): the outer one is watched
        self.run = run
        self.wall_limit = wall_limit
        self.armed += 1
        if self.armed == 1:
            global _replaced_sigint
            self.replaced = signal.signal(SIGNAL, _on_signal)
            if sigint:
                _replaced_sigint = signal.getsignal(signal.SIGINT)
                if callable(_replaced_sigint):
                    signal.signal(signal.SIGINT, _on_sigint)
            self.stop.clear()
            self.thread = threading.Thread(target=self._watch, args=(threading.get_ident(),), name="edge watchdog", daemon=True)
            self.thread.start()
        return True

    def disarm(self) -> None:
        self.armed -= 1
        if self.armed:
            return
        global _replaced_sigint
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        signal.signal(SIGNAL, self.replaced if self.replaced is not None else signal.SIG_DFL)
        if signal.getsignal(signal.SIGINT) is _on_sigint:
            signal.signal(signal.SIGINT, _replaced_sigint)
        _replaced_sigint = None
        self.run = runs.OUTSIDE
        self.target = None
        self.sigint = False

    def _watch(self, ident: int) -> None:
        cpu_clock = time.pthread_getcpuclockid(ident)
        seen: Any = None
        seen_at = 0.0
        pause = TICK
        while not self.stop.wait(pause):
            step, cpu_left = self._running(ident, cpu_clock)
            pause = TICK
            if step is None:
                seen = None
                continue
            now = time.monotonic()
            if step is not seen:
                seen, seen_at = step, now
            if self.sigint:
                self._fire(ident, step, SIGINT, 0.0)
            elif cpu_left is not None and cpu_left < 0:
                self._fire(ident, step, CPU, step[1])
            elif now - seen_at >= self.wall_limit:
                self._fire(ident, step, WALL, self.wall_limit)
            elif cpu_left is not None:  # wake when the budget would run out, not a tick later
                pause = min(TICK, max(cpu_left, 0.001))

    def _running(self, ident: int, cpu_clock: int) -> tuple[Any, float | None]:
        """The worker step holding the trio thread, if any, and (live) the CPU budget it has left."""
        run = self.run
        live = run.step
        if live is not None:
            return live, live[1] - (time.clock_gettime(cpu_clock) - live[0])
        if run.fiber is None:
            return None, None
        frame = sys._current_frames().get(ident)
        while frame is not None and frame.f_code not in _step_codes:
            frame = frame.f_back
        return frame, None

    def _fire(self, ident: int, step: Any, reason: str, limit: float) -> None:
        self.target = (step, reason, limit)
        signal.pthread_kill(ident, SIGNAL)


_watchdog = _Watchdog()


class armed:
    """``with armed(wall_limit, sigint):`` worker steps on this thread are watched while the block
    runs. ``sigint``: Ctrl-C interrupts a running worker step (virtual time, where trio would
    otherwise queue it until the step ends; live mode's own SIGINT handler must stay in charge)."""

    def __init__(self, wall_limit: float, sigint: bool) -> None:
        self.wall_limit = wall_limit
        self.sigint = sigint
        self.on = False

    def __enter__(self) -> bool:
        self.on = _watchdog.arm(self.wall_limit, self.sigint)
        return self.on

    def __exit__(self, *exc: object) -> None:
        if self.on:
            _watchdog.disarm()
