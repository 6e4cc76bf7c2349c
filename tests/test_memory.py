"""Freed heap goes back to the kernel after a burst (edge.platform.memory): when, and that it does."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import pytest
import trio
import trio.testing

from edge.platform import memory
from live import ADMIN_TOKEN, ROOT, serve

THRESHOLD = 8 << 20


class _Enough(Exception):
    pass


@pytest.mark.parametrize("growth, releases", [(THRESHOLD - 1, 0), (THRESHOLD, 1), (THRESHOLD + 1, 1)])
def test_the_heap_is_released_when_its_free_part_grew_by_the_threshold_and_not_again_for_the_same_pages(growth, releases):
    """A burst frees ``growth`` bytes after the first look; the release (which leaves the trimmed
    pages counted as free) resets the level, so the next looks do not release again."""
    base = 50 << 20
    looks: list[float] = []
    released: list[float] = []

    def free_bytes() -> int:
        if len(looks) == 5:
            raise _Enough
        looks.append(trio.current_time())
        return base if len(looks) <= 2 else base + growth  # the start, the first look, then the burst's leftovers

    async def main() -> None:
        await memory.give_back(THRESHOLD, 1.0, free=free_bytes, release=lambda: released.append(0.0))

    with pytest.raises(_Enough):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(released) == releases
    assert looks[1] == pytest.approx(1.0)  # a period after the start, not at once


def test_a_fragmented_heap_is_free_and_resident_until_it_is_released():
    """glibc keeps freed blocks below a live one; malloc_trim gives their pages back."""
    assert memory.available(), "glibc's mallinfo2 and malloc_trim are expected on this platform"
    script = textwrap.dedent("""
        from edge.platform import memory
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        blocks = [bytes(2000) for _ in range(20000)]  # 40 MB in malloc's heap (over pymalloc's 512 bytes)
        del blocks[:-1:]  # free all but the last: the heap's top stays in use, so nothing is returned
        before, free = rss(), memory.free_heap_bytes()
        memory.release_free_heap()
        print(before, free, rss(), memory.free_heap_bytes())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    before, free, after, free_after = map(int, out.split())
    assert free > 30 << 20
    assert before - after > 30 << 20
    assert free_after < free


def _maps_and_environ(pid: int) -> tuple[str, dict[str, str]]:
    maps = pathlib.Path(f"/proc/{pid}/maps").read_text()
    raw = pathlib.Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    environ = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    return maps, environ


@pytest.mark.parametrize("choice, on_jemalloc", [(None, True), ("auto", True), ("jemalloc", True), ("python", False)])
def test_edge_serve_runs_on_jemalloc_unless_told_otherwise(choice, on_jemalloc):
    """The same process (its pid) serves after starting itself again with jemalloc preloaded and
    every object in it; --allocator python keeps CPython's allocator."""
    assert memory.jemalloc_library() is not None, "jemalloc is expected here (Debian: libjemalloc2; .ci/run installs it)"
    with serve(*(() if choice is None else ("--allocator", choice)), preload=False) as served:
        maps, environ = _maps_and_environ(served.process.pid)
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: example.com\r\nx-custom-token: s3cret-token-0f9a\r\nConnection: close\r\n\r\n")
            assert sock.recv(12) == b"HTTP/1.1 200"
    assert ("libjemalloc" in maps) is on_jemalloc
    assert (environ.get("PYTHONMALLOC") == "malloc") is on_jemalloc
    assert served.returncode == 0 and "note" not in served.stderr


def test_a_jemalloc_that_did_not_load_is_an_error_when_asked_for_and_a_note_otherwise():
    """Started again already (the marker is set) and still not on jemalloc: the preload failed.
    It is never started a third time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGE_ADMIN_TOKEN": ADMIN_TOKEN, "EDGE_ALLOCATOR_EXEC": "1"}
    asked = subprocess.run([sys.executable, "-m", "edge.cli", "serve", "--port", "0", "--admin-port", "0", "--allocator", "jemalloc"],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert asked.returncode == 2
    assert asked.stderr == f"edge: error: --allocator jemalloc: {memory.jemalloc_library()} did not load (LD_PRELOAD='')\n"
    with serve(env={"EDGE_ALLOCATOR_EXEC": "1"}, preload=False) as served:
        maps, _ = _maps_and_environ(served.process.pid)
    assert "libjemalloc" not in maps and served.returncode == 0
    assert served.stderr.startswith(f"edge: note: {memory.jemalloc_library()} did not load (LD_PRELOAD=''): "
                                    "CPython's allocator keeps most of the memory a burst takes (--allocator)\n")


def test_the_jemalloc_environment_keeps_what_the_user_set():
    """A preload and a MALLOC_CONF of the user's stay; jemalloc comes first, Python allocates through it."""
    own = memory.jemalloc_environment({"LD_PRELOAD": "libtrace.so", "MALLOC_CONF": "narenas:2", "HOME": "/h"}, "libjemalloc.so.2")
    assert own == {"LD_PRELOAD": "libjemalloc.so.2 libtrace.so", "MALLOC_CONF": "narenas:2", "HOME": "/h", "PYTHONMALLOC": "malloc"}
    fresh = memory.jemalloc_environment({}, "libjemalloc.so.2")
    assert fresh == {"LD_PRELOAD": "libjemalloc.so.2", "MALLOC_CONF": memory.JEMALLOC_CONF, "PYTHONMALLOC": "malloc"}


def test_a_run_collects_cycles_less_often_and_puts_the_process_thresholds_back():
    import gc

    from edge.engine.simulate import GC_THRESHOLDS, default_scenario_path, simulate
    from edge.scenario.load import load

    before = gc.get_threshold()
    assert before != GC_THRESHOLDS
    during = []
    simulate(load(default_scenario_path()), duration=0.5, setup=lambda *_: during.append(gc.get_threshold()))
    assert during == [GC_THRESHOLDS] and gc.get_threshold() == before

    def fail(*_):
        raise RuntimeError("a setup that fails")

    with pytest.raises(ExceptionGroup):  # put back however the run ends (here: out of the nursery)
        simulate(load(default_scenario_path()), duration=0.5, setup=fail)
    assert gc.get_threshold() == before


def test_a_sigterm_sent_as_soon_as_the_ready_lines_are_read_drains_and_exits_0():
    # The signals are caught from before the ready lines are printed (a busy machine once let a
    # SIGTERM in between reach the default handler: exit 143).
    for _ in range(5):
        with serve() as served:
            pass  # serve() has read the ready lines; leaving it sends SIGTERM at once
        assert served.returncode == 0, served.stderr
