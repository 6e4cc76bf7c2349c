"""The fence around trio's internals: each hook does what the clock relies on, and an untested trio
gets the public-API path (same virtual times, more scheduler passes) or, for seeding, a refusal."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio
import trio.testing
from trio.lowlevel import Abort, checkpoint, current_task, reschedule, wait_task_rescheduled

from edge.platform import trio_internals, watchdog
from edge.platform.clock import VirtualClock, _RarePolls

ROOT = Path(__file__).resolve().parent.parent


def test_run_queue_holds_a_task_once_it_is_rescheduled():
    seen = {}

    async def main():
        parked = []

        async def park():
            parked.append(current_task())
            await wait_task_rescheduled(lambda _: Abort.SUCCEEDED)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(park)
            await trio.testing.wait_all_tasks_blocked()
            queue = trio_internals.run_queue()
            seen["before"] = list(queue)
            reschedule(parked[0])
            seen["after"] = list(queue)
            seen["task"] = parked[0]

    trio.run(main)
    assert seen["before"] == [] and seen["after"] == [seen["task"]]


def test_a_wrapped_io_manager_is_polled_once_per_pass_with_the_pass_timeout():
    log = []

    class Passes(trio.abc.Instrument):
        def before_io_wait(self, timeout):
            log.append(("pass", timeout))

    class Recording:
        def __init__(self, io_manager):
            self._io_manager = io_manager

        def __getattr__(self, name):
            return getattr(self._io_manager, name)

        def get_events(self, timeout):
            log.append(("poll", timeout))
            return self._io_manager.get_events(timeout)

    async def main():
        assert trio_internals.wrap_io_manager(Recording)
        for _ in range(5):
            await checkpoint()
        await trio.sleep(0.01)  # a pass that blocks in the kernel until the deadline

    trio.run(main, instruments=[Passes()])
    first = next(i for i, entry in enumerate(log) if entry[0] == "poll")
    wrapped = log[first - 1:]
    assert len(wrapped) % 2 == 0 and len(wrapped) >= 12
    for (what, timeout), (then, polled) in zip(wrapped[::2], wrapped[1::2]):
        assert (what, then) == ("pass", "poll") and polled == timeout
    assert any(timeout > 0 for _, timeout in wrapped)


class _FakeIO:
    def __init__(self):
        self.polls = []

    def get_events(self, timeout):
        self.polls.append(timeout)
        return ("event",) if timeout else ()

    def process_events(self, events):
        pass


def test_rare_polls_ask_the_kernel_once_in_20ms_and_on_every_poll_that_may_block():
    io = _FakeIO()
    polls = _RarePolls(io)
    for _ in range(128):
        assert polls.get_events(0) == ()
    assert io.polls == [0]
    time.sleep(0.025)  # a Ctrl+C waits at most this long for the poll that delivers it
    polls.get_events(0)
    assert io.polls == [0, 0]
    assert polls.get_events(2.5) == ("event",)
    assert io.polls == [0, 0, 2.5]


def test_a_virtual_run_woken_only_by_a_thread_gets_its_blocking_poll():
    # Nothing runnable and no timer: trio blocks in the kernel until the thread is done. A poll
    # swallowed by the clock's I/O manager would leave the run spinning for ever.
    clock = VirtualClock()
    done = []

    async def main():
        await clock.sleep(1)
        await trio.to_thread.run_sync(time.sleep, 0.02)
        await clock.sleep(1)
        done.append(clock.now())

    runner = threading.Thread(target=trio.run, args=(main,), kwargs={"clock": clock}, daemon=True)
    runner.start()
    runner.join(timeout=10)
    assert done == [2.0]


def _batch_orders(seed):
    order = []

    async def worker(i):
        for _ in range(4):
            await checkpoint()
            order.append(i)

    async def main():
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(worker, i)

    trio_internals.seed_scheduler(seed)
    trio.run(main)
    return order


def test_seeding_makes_the_batch_orders_a_function_of_the_seed():
    assert _batch_orders(1) == _batch_orders(1)
    assert _batch_orders(1) != _batch_orders(2)


def test_without_hypothesis_each_pass_runs_in_wake_order_or_its_reverse(monkeypatch):
    # What the docstrings say trio does; pytest has imported Hypothesis, whose trio plugin turns
    # this flag on (sort by spawn order, then shuffle), so the test turns it off.
    monkeypatch.setattr(trio._core._run, "_ALLOW_DETERMINISTIC_SCHEDULING", False)
    order = _batch_orders(5)
    passes = [order[i:i + 6] for i in range(0, len(order), 6)]
    woken = list(range(6))
    for ran in passes:
        assert ran in (woken, woken[::-1])
        woken = ran
    assert len(set(map(tuple, passes))) == 2


@pytest.mark.parametrize("version", ["0.25.0", "0.35.9"])
def test_the_tested_range_includes_its_ends(monkeypatch, version):
    monkeypatch.setattr(trio, "__version__", version)
    trio_internals.seed_scheduler(3)


@pytest.mark.parametrize("version", ["0.24.0", "0.36.0", "1.0.0", "dev"])
def test_seeding_refuses_an_untested_trio_naming_the_tested_range(monkeypatch, version):
    monkeypatch.setattr(trio, "__version__", version)
    with pytest.raises(trio_internals.UnsupportedTrio, match=rf"trio {version} is outside .* trio>=0\.25,<0\.36"):
        trio_internals.seed_scheduler(3)


def test_seeding_refuses_when_the_scheduler_random_is_not_there(monkeypatch):
    monkeypatch.setattr(trio._core._run, "_r", object())
    with pytest.raises(trio_internals.UnsupportedTrio, match=r"no trio\._core\._run\._r .* trio>=0\.25,<0\.36"):
        trio_internals.seed_scheduler(3)


def _told_from_signal() -> list[bool]:
    """``watchdog.from_signal`` in a task (where worker code asks it) of the KeyboardInterrupt trio's
    SIGINT handler raises in the task's own code, and of one the task raises itself."""
    told = []

    async def main():
        for interrupt in (lambda: signal.raise_signal(signal.SIGINT), lambda: (_ for _ in ()).throw(KeyboardInterrupt)):
            try:
                interrupt()
            except KeyboardInterrupt as exc:
                told.append(watchdog.from_signal(exc))

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # else trio installs no handler
    trio.run(main)
    return told


@pytest.mark.parametrize("version", ["0.25.0", "0.35.9"])
def test_trios_sigint_handler_is_named_on_the_ends_of_the_tested_range(monkeypatch, version):
    monkeypatch.setattr(trio, "__version__", version)
    assert trio_internals.sigint_handler_module() == "trio._core._ki"
    assert _told_from_signal() == [True, False]


@pytest.mark.parametrize("version", ["0.24.0", "0.36.0"])
def test_an_untested_trios_sigint_is_told_from_a_workers_by_the_installed_handler(monkeypatch, version):
    monkeypatch.setattr(trio, "__version__", version)
    assert trio_internals.sigint_handler_module() is None
    assert _told_from_signal() == [True, False]


def _small_virtual_run():
    """Sleepers, a chain of callback timers, a trio deadline and a trio.sleep on one VirtualClock:
    what happened when (sorted), how many scheduler passes it took, and whether the I/O manager
    could be wrapped."""
    clock = VirtualClock()
    log = []
    passes = []

    class Passes(trio.abc.Instrument):
        def before_io_wait(self, timeout):
            passes.append(timeout)

    async def sleeper(name, seconds):
        for _ in range(2):
            await clock.sleep(seconds)
            log.append((clock.now(), name))

    def tick(left):
        log.append((clock.now(), "tick"))
        if left:
            clock.call_later(0.25, tick, left - 1)

    async def main():
        clock.call_later(0.125, tick, 3)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper, "a", 0.25)
            nursery.start_soon(sleeper, "b", 0.75)
            with trio.move_on_after(0.5625):
                await clock.sleep(10)
            log.append((clock.now(), "deadline"))
            await trio.sleep(0.0625)
            log.append((trio.current_time(), "trio.sleep"))
        log.append((clock.now(), "wrapped" if trio_internals.wrap_io_manager(lambda io: io) else "not wrapped"))

    trio.run(main, clock=clock, instruments=[Passes()])
    return sorted(log), len(passes)


EXPECTED = [
    (0.125, "tick"), (0.25, "a"), (0.375, "tick"), (0.5, "a"), (0.5625, "deadline"), (0.625, "tick"),
    (0.625, "trio.sleep"), (0.75, "b"), (0.875, "tick"), (1.5, "b"),
]


def test_an_untested_trio_gets_the_public_path_with_the_same_virtual_times(monkeypatch):
    fenced, fenced_passes = _small_virtual_run()
    monkeypatch.setattr(trio, "__version__", "0.36.0")
    public, public_passes = _small_virtual_run()
    assert fenced == EXPECTED + [(1.5, "wrapped")]
    assert public == EXPECTED + [(1.5, "not wrapped")]
    # Without the run queue, every callback timer costs a scheduler pass of its own.
    assert public_passes > fenced_passes


def test_edge_run_on_an_untested_trio_is_one_line_and_exit_2():
    code = (
        "import sys, trio; trio.__version__ = '0.1.0'\n"
        "from edge.cli import main\n"
        "sys.exit(main(['run', '--duration', '1s', '-q']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.startswith("edge: error: trio 0.1.0 is outside the tested range") and done.stderr.count("\n") == 1
