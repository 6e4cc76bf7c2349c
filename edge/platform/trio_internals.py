"""Every use of trio's private internals, in one place, each checked before use.

trio has no public API for what fast, reproducible virtual time needs: seeding the order in which
a scheduler pass runs its tasks, seeing the run queue from the clock, and polling for I/O less
often than once per pass; for the live ingress, reading a socket with no schedule point
between the system call and the caller; and, for the watchdog, knowing trio's SIGINT handler.
Nothing else in edge touches ``trio._core`` or a trio socket's insides. Each hook first checks that this trio is a version the hooks were tested on
(``TESTED``, also the bound in ``pyproject.toml``) and that the objects it reaches have the shape it
uses; if not, the clock's hooks fall back to what the public API gives (slower, still correct) and
seeding refuses with ``UnsupportedTrio``, since an unseeded run is not reproducible.

What one scheduler pass of trio 0.25 to 0.35 does (``trio._core._run.unrolled_run``, the same code
in each): if the run queue ``runner.runq`` is empty, it asks the clock
``deadline_to_sleep_time(runner.deadlines.next_deadline())`` how long to block; it calls
``runner.io_manager.get_events(timeout)`` once (from ``trio.run``'s driver loop), then
``process_events``, expires due deadlines, and takes the whole run queue as the pass's batch. It
runs the batch by popping from its end, so newest-woken first, except that with probability 1/2
(``_r.random() < 0.5``, one draw per pass) it reverses the batch first, so oldest-woken first. It
does not shuffle, unless Hypothesis has been imported in the process: trio's Hypothesis plugin then
makes it sort the batch by spawn order and ``_r.shuffle`` it (still a function of ``_r``'s seed).
"""

from __future__ import annotations

import collections
import random
import re
import socket
import sys
from typing import Any, Callable

import trio

from edge.platform import runs
from edge.platform.user_errors import EdgeError

TESTED = ((0, 25), (0, 35))
"""The oldest and newest trio minor versions the hooks were tested on (every minor in between)."""

SUPPORTED_RANGE = "trio>=0.25,<0.36"


class UnsupportedTrio(EdgeError, RuntimeError):
    """The running trio is not one whose internals the seeding hook was tested on: an install edge
    cannot run reproducibly on, said in one line rather than a traceback."""


def _version_problem() -> str | None:
    match = re.match(r"(\d+)\.(\d+)", trio.__version__)
    if match is None or not TESTED[0] <= (int(match[1]), int(match[2])) <= TESTED[1]:
        return f"trio {trio.__version__} is outside the tested range"
    return None


def _run_module() -> Any:
    """``trio._core._run``, where the runner and the scheduler's random instance live."""
    return getattr(getattr(trio, "_core", None), "_run", None)


def _runner() -> Any:
    """The run's ``Runner`` (``trio._core._run.GLOBAL_RUN_CONTEXT.runner``), or None when this trio
    is untested or the runner lacks a part the clock hooks use: a ``runq`` deque and an
    ``io_manager`` with ``get_events`` and ``process_events``."""
    if _version_problem() is not None:
        return None
    runner = getattr(getattr(_run_module(), "GLOBAL_RUN_CONTEXT", None), "runner", None)
    io_manager = getattr(runner, "io_manager", None)
    if (
        isinstance(getattr(runner, "runq", None), collections.deque)
        and callable(getattr(io_manager, "get_events", None))
        and callable(getattr(io_manager, "process_events", None))
    ):
        return runner
    return None


class _MaybeRunnable:
    """Stands for a run queue the fence cannot see: always true (something may be runnable). A
    clock reading it hands control back to trio after every callback timer and fiber step, at the
    cost of a scheduler pass each."""

    def __bool__(self) -> bool:
        return True


def run_queue() -> Any:
    """trio's queue of runnable tasks (``runner.runq``, a deque in the order tasks were woken).

    Read by the clock between passes, after a callback timer or a fiber step: empty means nothing
    woke a task, so the clock may go on to the next ready fiber or timer without an empty
    scheduler pass. Fallback: ``_MaybeRunnable``.
    """
    runner = _runner()
    return _MaybeRunnable() if runner is None else runner.runq


def wrap_io_manager(wrap: Callable[[Any], Any]) -> bool:
    """Put ``wrap(io_manager)`` in place of trio's I/O manager (``runner.io_manager``) for the rest
    of the run; say whether it was done.

    trio looks the manager up on the runner on every pass and calls its ``get_events(timeout)``
    exactly once per pass, after the clock's ``deadline_to_sleep_time`` and before the batch is
    formed, then its ``process_events``; ``timeout == 0`` means a poll that must not block. The
    wrapper relies on that and must pass every other attribute through. Fallback: trio's own
    manager stays, polling the kernel every pass.
    """
    runner = _runner()
    if runner is None:
        return False
    runner.io_manager = wrap(runner.io_manager)
    return True


def seed_scheduler(seed: int) -> None:
    """Make the order in which trio runs each pass's batch a function of ``seed`` for the current
    run (``runs.Run.scheduler``): the module-level ``random.Random`` (``trio._core._run._r``)
    that reverses, or under Hypothesis shuffles, each batch is replaced, once, by ``_PerRun``,
    which draws from the current run's own.

    A simulation must depend on its seed alone (same seed, byte-identical report), and nothing
    public seeds trio's scheduler; ``_r`` is the process's, so two runs in two threads seeding it
    would draw from one sequence, each shifting the other's order. No fallback: on an untested
    trio, or if ``_r`` is not a ``random.Random``, raise ``UnsupportedTrio`` before the run starts
    rather than run unreproducibly.
    """
    problem = _version_problem()
    scheduler_random = getattr(_run_module(), "_r", None)
    if problem is None and not isinstance(scheduler_random, random.Random):
        problem = f"trio {trio.__version__} has no trio._core._run._r random instance"
    if problem is not None or not isinstance(scheduler_random, random.Random):
        raise UnsupportedTrio(
            f"{problem}: reproducible virtual-time runs seed trio's scheduler through its internals, "
            f"tested with {SUPPORTED_RANGE} (install e.g. 'trio=={TESTED[1][0]}.{TESTED[1][1]}.*')"
        )
    if not isinstance(scheduler_random, _PerRun):
        _run_module()._r = _PerRun(scheduler_random)
    runs.current().scheduler = random.Random(seed)


class _PerRun(random.Random):
    """Stands in for trio's ``_r``: each draw comes from the current run's random, or from trio's
    own outside a seeded run. trio draws in its run loop, which runs in the context of the thread
    that called ``trio.run``, where ``simulate`` made its run current. Overriding ``getrandbits``
    makes ``shuffle`` (and ``_randbelow``) draw through it too, so a sequence is the one the
    run's random would give by itself."""

    def __init__(self, trios: random.Random) -> None:
        super().__init__()
        self._trios = trios

    def _of_run(self) -> random.Random:
        return runs.current().scheduler or self._trios

    def random(self) -> float:
        return self._of_run().random()

    def getrandbits(self, k: int) -> int:
        return self._of_run().getrandbits(k)


def standard_socket(sock: Any) -> socket.socket | None:
    """The standard-library socket inside a trio socket (``trio.socket.SocketType._sock``), or None.

    For ``edge.live.receive``, which must call ``recvmsg_into`` with nothing between the system
    call and its caller: trio's own socket methods add a schedule point after a call that
    succeeded at once. Fallback (None): the caller uses trio's method and its allocations.
    """
    raw = getattr(sock, "_sock", None)
    return raw if isinstance(raw, socket.socket) and raw.fileno() == sock.fileno() else None


def sigint_handler_module() -> str | None:
    """The module in which trio's SIGINT handler raises ``KeyboardInterrupt`` (``trio._core._ki``,
    where ``KIManager.install`` defines it), or None.

    For ``edge.platform.watchdog.from_signal``, which tells a real Ctrl-C from a worker's own
    ``KeyboardInterrupt`` by the frame that raised it. Checked: this trio is tested and the module
    is loaded with its ``KIManager``. Fallback (None): the caller knows trio's handler by its code,
    the handler installed for SIGINT, which holds while trio runs, when worker code runs.
    """
    module = sys.modules.get("trio._core._ki")
    if module is None or _version_problem() is not None or not callable(getattr(getattr(module, "KIManager", None), "install", None)):
        return None
    return module.__name__
