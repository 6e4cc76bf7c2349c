"""Stopping a pool of replication processes at once, for an interrupted ``edge tune`` (or ``--power``).

``ProcessPoolExecutor.shutdown`` waits for the replications its processes are running, seconds to
minutes each, and an interrupted command must not. Python 3.14 has a public way
(``terminate_workers``). Before it, the pool's processes are reachable only through its private
``_processes`` (a dict of pid to process), used only on the Python versions it was tested on
(``TESTED``) and when it has that shape.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.process import BaseProcess

TESTED = ((3, 11), (3, 13))
"""The oldest and newest Python minor versions whose pool's ``_processes`` was tested (every one
in between); 3.14 has ``terminate_workers``."""

_PYTHON = sys.version_info[:2]
TERMINATE_WAIT = 5.0
"""Seconds a terminated process has to end before it is killed."""


def stop_workers(executor: ProcessPoolExecutor) -> None:
    """End the replications running in ``executor``'s processes now, drop the pending ones, and shut
    the pool down.

    With ``terminate_workers`` (3.14), that. Before: terminate each process, then ``shutdown``, which
    finds the pool broken and fails every pending replication itself (cancelling them too, with
    ``cancel_futures``, races with that, and on 3.11 the pool's thread then prints an
    InvalidStateError traceback). Fallback, on an untested Python or a ``_processes`` of another
    shape: ``shutdown(cancel_futures=True)``, which drops the pending replications but waits for
    the running ones, so the command ends one replication later.
    """
    terminate = getattr(executor, "terminate_workers", None)
    if callable(terminate):
        terminate()
        return
    processes = getattr(executor, "_processes", None) if TESTED[0] <= _PYTHON <= TESTED[1] else None
    if not isinstance(processes, dict) or not all(isinstance(p, BaseProcess) for p in processes.values()):
        executor.shutdown(wait=True, cancel_futures=True)
        return
    running = list(processes.values())
    for process in running:
        process.terminate()
    for process in running:
        # A process whose SIGTERM runs a Python handler (forked from a parent that installed one)
        # may outlive it; the pool's thread would then wait for it for ever.
        process.join(TERMINATE_WAIT)
        if process.is_alive():
            process.kill()
            process.join()
    executor.shutdown(wait=True)
