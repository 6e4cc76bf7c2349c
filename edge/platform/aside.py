"""Work done aside, in a forked child, while this process goes on with other work.

A run's outputs are independent of each other once the run is over: the plots are drawn from the
report alone while the OpenMetrics file is written from the scrapes. On a machine with a second
core, drawing them at the same time takes the longer of the two instead of their sum (about a
second of a simulated hour's reporting). ``fork`` rather than a process pool: the child already
has the report and the scrapes, so nothing is pickled on the way in, only the result on the way
back.

The work runs here, in this process, where a fork is not safe or not possible: off Linux (Windows
has no ``fork``; on macOS a forked child may crash in system frameworks the parent loaded, which is
why Python's own process pools spawn there), and where another thread runs (a child would inherit
locks that thread may hold, and Python 3.12 warns of it). Either way the caller sees the same thing: ``result()`` returns what
the work returned or raises what it raised.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from types import TracebackType
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class AsideError(RuntimeError):
    """The child ended without an answer: killed by a signal, or out of memory."""


class Aside(Generic[T]):
    """``work()`` started in a forked child; ``result()`` waits for it. Use as a context manager:
    the child is waited for when the block ends, so it never outlives it. A block left by an
    interrupt (KeyboardInterrupt, a SIGTERM turned into one) ends the child first; outputs are
    written whole or not at all, so an interrupted child leaves none behind. A block left by an
    ordinary error lets the child finish: what it was writing is not lost to someone else's error."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._pid = 0
        self._reader = -1
        self._done: tuple[bool, object] | None = None
        if not sys.platform.startswith("linux") or threading.active_count() > 1:
            self._done = _outcome(work)
            return
        for stream in (sys.stdout, sys.stderr):  # or the child could write their buffers a second time
            with contextlib.suppress(Exception):
                stream.flush()
        reader, writer = os.pipe()
        # SIGTERM is held back across the fork until the child has its own handler: a block
        # interrupted at once must still find a child that unwinds.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            pid = os.fork()
            if pid == 0:  # the child: never returns
                os.close(reader)
                _child(work, writer, held)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        os.close(writer)
        self._pid, self._reader = pid, reader

    @property
    def forked(self) -> bool:
        """Whether the work runs in a child (False: it ran here, in ``__init__``)."""
        return self._pid != 0

    def result(self) -> T:
        if self._done is None:
            self._done = self._wait()
        ok, value = self._done
        if not ok:
            assert isinstance(value, BaseException)
            raise value
        return value  # type: ignore[return-value]

    def __enter__(self) -> Aside[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._pid and self._done is None:
            if kind is not None and not issubclass(kind, Exception):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._pid, signal.SIGTERM)
            self._done = self._wait()

    def _wait(self) -> tuple[bool, object]:
        chunks = []
        try:
            while chunk := os.read(self._reader, 1 << 16):
                chunks.append(chunk)
        except BaseException:  # interrupted while waiting: the child is ended, not waited out
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGTERM)
            raise
        finally:
            os.close(self._reader)
            _, status = os.waitpid(self._pid, 0)
            self._pid = 0
        if not chunks:
            how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.waitstatus_to_exitcode(status)}"
            return False, AsideError(f"the process doing this work ended with {how} and no answer")
        try:
            return pickle.loads(b"".join(chunks))  # type: ignore[no-any-return]
        except Exception as exc:  # an exception whose class cannot be rebuilt here
            return False, AsideError(f"the process doing this work failed, with an answer that could not be read: {exc}")


def _outcome(work: Callable[[], T]) -> tuple[bool, object]:
    try:
        return True, work()
    except BaseException as exc:
        return False, exc


def _child(work: Callable[[], T], writer: int, mask: set[int | signal.Signals]) -> None:
    """Do ``work``, send its outcome, and end without running this process's exit handlers (they
    are the parent's: its temporary files, its flushes)."""
    try:
        # A SIGTERM from the parent (its block was interrupted) unwinds the work, so that an
        # output being written removes its temporary file.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        outcome = _outcome(work)
        try:
            answer = pickle.dumps(outcome)
        except Exception:
            answer = pickle.dumps((False, AsideError(f"{outcome[1]!r} (it could not be sent back as it was)")))
        view = memoryview(answer)
        while view:
            view = view[os.write(writer, view):]
    finally:
        os._exit(0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
