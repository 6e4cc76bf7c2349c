"""Work done aside in a forked child (``edge.platform.aside``): its answer or its error comes back,
a child that dies says how, an interrupted block ends the child and an errored one lets it finish,
no child outlives its block, and where a fork is unsafe (another thread runs) the work runs here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.platform.aside import Aside, AsideError
from edge.platform.files import OutputError, write_output

ROOT = Path(__file__).resolve().parent.parent


def _gone(pid: int) -> bool:
    """Whether ``pid`` was reaped: a zombie left behind would still be waitable."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_answer_comes_back_from_a_child():
    with Aside(lambda: (os.getpid(), [1.5, "two"])) as aside:
        assert aside.forked
        pid = aside._pid
        child, value = aside.result()
    assert child == pid != os.getpid()
    assert value == [1.5, "two"]
    assert _gone(pid)
    assert aside.result() == (child, value)  # asked again: the same answer, no second wait


def test_an_error_in_the_child_is_raised_here():
    def fails():
        raise OutputError("/x/y.png: No space left on device")

    with Aside(fails) as aside:
        with pytest.raises(OutputError) as caught:
            aside.result()
    assert caught.value.shown() == "cannot write output: /x/y.png: No space left on device"


def test_an_error_that_cannot_be_rebuilt_here_is_named():
    class Odd(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}-{b}")

    def fails():
        raise Odd(1, 2)

    with Aside(fails) as aside, pytest.raises(AsideError, match="Odd"):
        aside.result()


def test_a_child_killed_by_a_signal_says_so():
    with Aside(lambda: os.kill(os.getpid(), signal.SIGKILL)) as aside, pytest.raises(AsideError, match="signal 9"):
        aside.result()


def test_an_interrupted_block_ends_the_child_which_unwinds(tmp_path):
    unwound = tmp_path / "unwound"

    def forever():
        try:
            (tmp_path / "started").touch()
            while True:
                time.sleep(0.01)
        finally:
            unwound.write_text("yes")

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with Aside(forever) as aside:
            pid = aside._pid
            while not (tmp_path / "started").exists() and time.monotonic() < started + 10:
                time.sleep(0.01)
            raise KeyboardInterrupt
    assert time.monotonic() - started < 10
    assert unwound.read_text() == "yes"
    assert _gone(pid)


def test_an_interrupted_child_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out.om"

    def write():
        def stuck(*_):  # the temporary file is written: the child hangs before renaming it
            (tmp_path / "writing").touch()
            time.sleep(60)

        os.replace = stuck  # the child's own copy of the module: the parent's is untouched
        write_output(target, b"x" * 100_000)

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with Aside(write):
            deadline = time.monotonic() + 10
            while not (tmp_path / "writing").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
            raise KeyboardInterrupt
    assert time.monotonic() - started < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["writing"]  # no out.om, no .out.om.*.tmp


def test_a_block_ended_by_an_ordinary_error_lets_the_child_finish(tmp_path):
    done = tmp_path / "done"

    def work():
        time.sleep(0.3)
        done.write_text("written")

    with pytest.raises(ValueError):
        with Aside(work):
            raise ValueError("the other output failed")
    assert done.read_text() == "written"  # finished, not killed: nothing lost to another's error


def test_with_another_thread_running_the_work_runs_here():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with Aside(os.getpid) as aside:
            assert not aside.forked
            assert aside.result() == os.getpid()

        def fails():
            raise OutputError("here")

        with Aside(fails) as aside, pytest.raises(OutputError, match="here"):
            aside.result()
    finally:
        stop.set()
        other.join()


def test_what_was_buffered_before_the_fork_is_written_once():
    # stdout to a pipe is block-buffered: an unflushed line would be written again by a child that
    # flushed its copy of the buffer.
    code = (
        "import sys\n"
        "from edge.platform.aside import Aside\n"
        "print('before')\n"
        "print(Aside(lambda: 'child').result())\n"
        "print('after')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "before\nchild\nafter\n", "")


def test_interrupted_while_waiting_for_the_answer_ends_the_child(tmp_path):
    unwound = tmp_path / "unwound"

    def forever():  # 20 s: long enough to tell an ended child from one waited out, without hanging
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            unwound.write_text("yes")

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            with Aside(forever) as aside:
                pid = aside._pid
                signal.setitimer(signal.ITIMER_REAL, 0.3)
                aside.result()  # waits: the alarm lands here
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 10
    assert unwound.read_text() == "yes"
    assert _gone(pid)
