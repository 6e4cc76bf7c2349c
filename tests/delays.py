"""The margin of a test's bound on real time: how long this machine kept the test's processes waiting.

Every test must pass with two CPU-bound processes running beside it. A bound on real time ("stopped
within a second") holds as written only on an idle machine: on a busy one, a process that is ready
to run waits for a CPU, for as long as the machine's load makes it, which no fixed bound foresees.
So a test that bounds real time adds to its bound what it measured of that waiting, in the same
test, over the same stretch. The kernel counts it per thread: the second field of
``/proc/PID/task/TID/schedstat`` is the time the thread spent runnable but not running; on a
virtual machine, ``/proc/stat``'s steal is the time the host gave the machine's CPUs to others. On
an idle machine the margin is about nothing and the bound is as tight as written; a bound that
still fails with it failed on the code's account, not the machine's. How fast the code is belongs
in benchmarks/, not in a test.

    with delays.measured(served.process) as waited:
        ...                                   # what the bound is about
    assert elapsed < 1.0 + waited.seconds

Where ``/proc`` has no schedstat (not Linux), nothing is measured and the margin is 0.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from pathlib import Path
from typing import Iterator

SAMPLE_EVERY = 0.01
"""Seconds between looks at the counters: a thread or process that ends between two looks loses at
most this much of its count (its last sample stands)."""

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _task_waits(pid: int) -> dict[tuple[int, int], int]:
    """Nanoseconds each thread of ``pid`` has waited for a CPU, by (pid, tid)."""
    found = {}
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                found[(pid, int(task))] = int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[1])
    return found


def _children(pid: int) -> list[int]:
    """The processes ``pid``'s threads started (``/proc/PID/task/TID/children``)."""
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError):
                found.extend(int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return found


def _steal() -> int:
    """Nanoseconds the host has taken the machine's CPUs (``/proc/stat``'s steal), 0 if unknown."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) * 1_000_000_000 // _TICK
    return 0


def thread_waited() -> float:
    """Seconds the calling thread has waited for a CPU since it started (0 where unknown): two
    readings around a wait bound how much of it the machine's load added. It reads one file, at
    about 10 µs: cheap enough between each of many short waits."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        with open("/proc/thread-self/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    return 0.0


class Waited:
    """What ``measured`` saw: ``seconds`` waited for a CPU by the processes, and stolen by the host."""

    def __init__(self, processes: list[int], children: bool) -> None:
        self._processes = processes
        self._children = children
        self._first: dict[tuple[int, int], int] = {}
        self._last: dict[tuple[int, int], int] = {}
        self._steal = 0
        self._sampler_tid = 0
        self.seconds = 0.0

    def _sample(self, *, first: bool = False) -> None:
        pids = list(self._processes)
        if self._children:
            for pid in self._processes:
                pids.extend(_children(pid))
        for pid in pids:
            for key, waited in _task_waits(pid).items():
                if key[1] == self._sampler_tid:
                    continue
                # A thread or process first seen after the start began during the block: all its waiting counts.
                self._first.setdefault(key, waited if first else 0)
                self._last[key] = waited

    def _total(self) -> float:
        return sum(self._last[key] - self._first[key] for key in self._last) / 1e9


@contextlib.contextmanager
def measured(*processes: int | subprocess.Popen, children: bool = True) -> Iterator[Waited]:
    """Measures, while the block runs, how long this process and ``processes`` (and, with
    ``children``, the processes any of them start) waited for a CPU, plus the host's steal;
    ``seconds`` is set when the block ends."""
    pids = [os.getpid(), *(p.pid if isinstance(p, subprocess.Popen) else p for p in processes)]
    waited = Waited(pids, children)
    stop = threading.Event()

    def sample() -> None:
        waited._sampler_tid = threading.get_native_id()
        while not stop.wait(SAMPLE_EVERY):
            waited._sample()

    steal = _steal()
    waited._sample(first=True)
    sampler = threading.Thread(target=sample, name="delays sampler", daemon=True)
    sampler.start()
    try:
        yield waited
    finally:
        stop.set()
        sampler.join()
        waited._sample()
        waited.seconds = waited._total() + (_steal() - steal) / 1e9
