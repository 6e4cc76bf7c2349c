"""The live clock keeps the model's time: sub-millisecond waits last what they say (issue 13 item 7).

trio's own deadlines go through epoll's whole-millisecond timeout, so a 150 µs ``trio.sleep``
lasts about 1.1 ms; ``RealClock`` waits on a timerfd. The tolerance is the issue's (0.1 ms at the
median), on each wait less the time the machine kept the thread waiting for a CPU during it
(measured: ``delays``), so that it holds beside other processes; the medians are over many waits.
Where a test is about the order of timers rather than their precision, it waits on events, not
on wall time.
"""

from __future__ import annotations

import statistics
import time
from typing import AsyncIterator

import pytest
import trio
import trio.testing

from delays import thread_waited
from edge.platform import clock as clock_module, timerfd
from edge.platform.clock import RealClock

TOLERANCE = 100e-6


@pytest.fixture
async def clock() -> AsyncIterator[RealClock]:
    real = RealClock()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(real.run)
        yield real
        nursery.cancel_scope.cancel()


async def sleep_durations(clock: RealClock, seconds: float, times: int) -> tuple[list[float], list[float]]:
    """How long each sleep lasted, and how long of it the thread was kept waiting for a CPU."""
    durations, waits = [], []
    for _ in range(times):
        waited = thread_waited()
        began = time.perf_counter()
        await clock.sleep(seconds)
        durations.append(time.perf_counter() - began)
        waits.append(thread_waited() - waited)
    return durations, waits


@pytest.mark.parametrize("seconds", [150e-6, 1.5e-3])
async def test_a_live_sleep_lasts_what_it_says_within_a_tenth_of_a_millisecond_at_the_median(clock, seconds):
    durations, waits = await sleep_durations(clock, seconds, 200)
    median = statistics.median(duration - waited for duration, waited in zip(durations, waits))
    assert median <= seconds + TOLERANCE, (f"{seconds * 1e6:.0f} µs sleeps took {median * 1e6:.0f} µs at the median, less the "
                                           f"machine's delays (median {statistics.median(waits) * 1e6:.0f} µs)")
    assert min(durations) >= seconds  # woken early, the clock waits out the rest: never short


async def test_trio_sleep_is_what_the_clock_improves_on():
    """The premise: without the timerfd, a 150 µs wait is rounded up to epoll's millisecond."""
    durations = []
    for _ in range(50):
        began = time.perf_counter()
        await trio.sleep(150e-6)
        durations.append(time.perf_counter() - began)
    assert statistics.median(durations) > 150e-6 + TOLERANCE


async def test_a_chain_of_callbacks_keeps_the_models_total(clock):
    """Each step counts from when the previous one was due, not from when it ran: 300 steps of
    150 µs are due at exactly 150 µs apart, however late each ran (a busy machine delays the
    running, never the schedule), and take at least 45 ms."""
    done = trio.Event()
    due: list[float] = []

    def step(left: int) -> None:
        due.append(clock._due)  # when this step was due (what the next one counts from)
        if left:
            clock.call_later(150e-6, step, left - 1)
        else:
            done.set()

    began = time.perf_counter()
    clock.call_later(150e-6, step, 299)
    await done.wait()
    assert time.perf_counter() - began >= 45e-3 - 1e-6  # never sooner than the schedule (less float rounding)
    assert len(due) == 300
    assert all(abs((later - earlier) - 150e-6) < 1e-9 for earlier, later in zip(due, due[1:]))


async def test_a_callback_run_late_sets_its_next_timer_from_when_it_was_due(clock):
    """The loop held up for 10 ms: the step due at 1 ms runs at ~10 ms, and its 4 ms successor,
    due at 5 ms by the model's time, fires at once (in the same pass of the clock, before any other
    task runs) rather than 4 ms later."""
    fired = trio.Event()
    at: dict[str, tuple[float, int]] = {}  # when each step was due, and the scheduler passes seen by then
    passes = 0

    async def count_passes() -> None:
        nonlocal passes
        while True:
            passes += 1
            await trio.lowlevel.checkpoint()

    def first() -> None:
        at["first"] = (clock._due, passes)
        clock.call_later(0.004, second)

    def second() -> None:
        at["second"] = (clock._due, passes)
        fired.set()

    async with trio.open_nursery() as nursery:
        clock.call_later(0.001, first)
        time.sleep(0.01)  # blocks the trio thread, as a busy loop would
        nursery.start_soon(count_passes)
        await fired.wait()
        nursery.cancel_scope.cancel()
    assert at["second"][0] - at["first"][0] == pytest.approx(0.004, abs=1e-9)  # counted from when first was due
    assert at["second"][1] == at["first"][1]  # and already due: fired with it, no other task ran between


async def test_an_earlier_timer_wakes_the_clock_before_the_one_it_waits_for(clock):
    # The late timer is far enough that no busy machine reaches it first: an early timer that did
    # not wake the clock would fire with it, 60 s on, and fail_after says so.
    fired: list[str] = []
    early = trio.Event()
    clock.call_later(60.0, fired.append, "late")
    await trio.testing.wait_all_tasks_blocked()  # the clock is now waiting for the 60 s timer
    clock.call_later(0.0005, lambda: (fired.append("early"), early.set()))
    with trio.fail_after(30):
        await early.wait()
    assert fired == ["early"]


async def test_timers_due_at_the_same_time_fire_in_the_order_they_were_set(clock):
    order: list[int] = []
    done = trio.Event()
    for i in range(5):
        clock.call_later(0.001, order.append, i)
    clock.call_later(0.001, done.set)
    await done.wait()
    assert order == [0, 1, 2, 3, 4]


async def test_a_cancelled_sleep_ends_at_once_and_later_timers_still_fire(clock):
    with trio.move_on_after(0.002):
        await clock.sleep(10.0)
    fired = trio.Event()
    clock.call_later(0.001, fired.set)
    with trio.fail_after(1):
        await fired.wait()


async def test_a_zero_sleep_ends_without_waiting(clock):
    waited = thread_waited()
    began = time.perf_counter()
    for _ in range(100):
        await clock.sleep(0.0)
    took = time.perf_counter() - began - (thread_waited() - waited)  # less the machine's delays
    assert took < 0.05  # 100 times trio's 1 ms would be 0.1 s


async def test_without_a_timerfd_the_clock_falls_back_to_trios_deadlines(monkeypatch):
    """Not Linux: the same timers, at trio's millisecond precision."""
    monkeypatch.setattr(clock_module.timerfd, "open_timer", lambda: None)
    real = RealClock()
    order: list[str] = []
    early = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(real.run)
        real.call_later(60.0, order.append, "late")  # far: only an early timer that fails to wake the clock waits for it
        await trio.testing.wait_all_tasks_blocked()  # the clock waits for the 60 s timer
        real.call_later(0.001, lambda: (order.append("early"), early.set()))
        with trio.fail_after(30):
            await early.wait()
        nursery.cancel_scope.cancel()
    assert order == ["early"]


async def test_a_timerfd_armed_at_zero_still_expires():
    """0 would disarm a timerfd: ``arm`` turns it into the smallest delay instead."""
    timer = timerfd.open_timer()
    assert timer is not None
    try:
        timer.arm(0.0)
        with trio.fail_after(1):
            await trio.lowlevel.wait_readable(timer)
        timer.clear()
        timer.clear()  # nothing left to read: not an error
    finally:
        timer.close()
