"""Freed heap goes back to the kernel after a burst (edge.platform.memory): when, and that it does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import trio
import trio.testing

from edge.platform import memory

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
