"""A kernel timer that trio can wait on with sub-millisecond precision (Linux ``timerfd``).

Why: trio blocks in ``epoll_wait``, whose timeout is whole milliseconds; CPython rounds a timeout
up, so every ``trio.sleep`` shorter than 1 ms lasts about 1.1 ms, and a longer one up to a
millisecond more than asked. A timerfd is an hrtimer (nanoseconds, no timer slack) that makes a
file descriptor readable when it expires: ``trio.lowlevel.wait_readable`` on it wakes the run
within tens of microseconds of the deadline. Python 3.13 has ``os.timerfd_create``; on 3.11 and
3.12 the two libc calls go through ctypes. Elsewhere (macOS, Windows) ``open_timer`` returns None
and callers keep trio's own deadlines.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Callable

_NONBLOCK_CLOEXEC = 0o4000 | 0o2000000  # TFD_NONBLOCK | TFD_CLOEXEC (as O_NONBLOCK | O_CLOEXEC)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class Timer:
    """A one-shot timer on CLOCK_MONOTONIC, the clock trio's ``current_time`` reads."""

    def __init__(self, fd: int, settime: Callable[[int, int], None]) -> None:
        self._fd = fd
        self._settime = settime

    def fileno(self) -> int:
        return self._fd

    def arm(self, seconds: float) -> None:
        """Expire ``seconds`` from now, replacing any earlier setting (at least 1 ns: 0 disarms)."""
        self._settime(self._fd, max(int(seconds * 1e9), 1))

    def clear(self) -> None:
        """Consume an expiry, so that the descriptor is no longer readable."""
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self._fd)


def open_timer() -> Timer | None:
    """A new timer, or None where the platform has no timerfd."""
    if hasattr(os, "timerfd_create"):
        fd = os.timerfd_create(time.CLOCK_MONOTONIC, flags=_NONBLOCK_CLOEXEC)
        return Timer(fd, lambda fd, ns: os.timerfd_settime_ns(fd, initial=ns))  # type: ignore[attr-defined]  # Python 3.13's
    # The process's own symbols, libc's among them: find_library would run `ldconfig -p`, a
    # process started for every clock, and a unit test's clock must not start one.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, TypeError):  # Windows has no "this process" handle
        return None
    if not hasattr(libc, "timerfd_create"):
        return None
    fd = libc.timerfd_create(time.CLOCK_MONOTONIC, _NONBLOCK_CLOEXEC)
    if fd < 0:
        return None
    settime = libc.timerfd_settime

    def libc_settime(fd: int, ns: int) -> None:
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(ns // 1_000_000_000, ns % 1_000_000_000))
        if settime(fd, 0, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    return Timer(fd, libc_settime)
