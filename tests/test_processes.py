"""Stopping an interrupted command's pool of replication processes (``edge/tune/processes.py``)."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from edge.tune import processes


def _started(futures):
    deadline = time.monotonic() + 60
    while not futures[0].running():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("python", [(3, 11), (3, 13)])  # the ends of the tested range
def test_running_replications_are_ended_at_once_and_pending_ones_fail(monkeypatch, python):
    monkeypatch.setattr(processes, "_PYTHON", python)
    monkeypatch.delattr(ProcessPoolExecutor, "terminate_workers", raising=False)  # a Python before 3.14
    before = set(multiprocessing.active_children())
    executor = ProcessPoolExecutor(max_workers=2)
    futures = [executor.submit(time.sleep, 600) for _ in range(5)]
    _started(futures)
    began = time.monotonic()
    processes.stop_workers(executor)
    assert time.monotonic() - began < 60  # not the 600 s a running replication would take
    assert all(future.done() for future in futures)
    # None finished: each failed with the broken pool, or (the pool's thread racing the kill) was cancelled.
    assert all(future.cancelled() or isinstance(future.exception(), BrokenProcessPool) for future in futures)
    assert set(multiprocessing.active_children()) <= before


@pytest.mark.parametrize("python", [(3, 10), (3, 14)])  # one before the tested range, one past
def test_on_an_untested_python_running_replications_finish_and_pending_ones_are_dropped(monkeypatch, python):
    monkeypatch.setattr(processes, "_PYTHON", python)
    monkeypatch.delattr(ProcessPoolExecutor, "terminate_workers", raising=False)
    _finish_and_drop(lambda executor: None)


def test_a_pool_without_its_processes_dict_gets_the_same_fallback(monkeypatch):
    monkeypatch.delattr(ProcessPoolExecutor, "terminate_workers", raising=False)
    _finish_and_drop(lambda executor: monkeypatch.setattr(executor, "_processes", None))


def _finish_and_drop(unshape):
    executor = ProcessPoolExecutor(max_workers=1)
    futures = [executor.submit(time.sleep, 0.5) for _ in range(8)]
    _started(futures)
    unshape(executor)
    processes.stop_workers(executor)
    assert all(future.done() for future in futures)
    finished = [future for future in futures if not future.cancelled()]
    assert finished[0] is futures[0] and all(future.result() is None for future in finished)
    assert len(finished) < len(futures)


def _ignore_sigterm():
    import signal

    signal.signal(signal.SIGTERM, lambda *_: None)  # as a handler a forked child inherits from its parent might


def test_a_process_that_outlives_its_sigterm_is_killed_rather_than_waited_for(monkeypatch):
    monkeypatch.setattr(processes, "_PYTHON", (3, 11))
    monkeypatch.setattr(processes, "TERMINATE_WAIT", 0.5)
    monkeypatch.delattr(ProcessPoolExecutor, "terminate_workers", raising=False)
    executor = ProcessPoolExecutor(max_workers=1, initializer=_ignore_sigterm)
    futures = [executor.submit(time.sleep, 600) for _ in range(2)]
    _started(futures)
    began = time.monotonic()
    processes.stop_workers(executor)
    assert time.monotonic() - began < 60 and all(future.done() for future in futures)
