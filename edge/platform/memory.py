"""Giving memory back to the system once a burst is over.

Why: a long-lived server that met a burst (hundreds of connections each holding a read buffer, a
flood of requests) frees those objects afterwards, but the process keeps the pages. glibc's
``malloc`` returns memory to the kernel only from the top of its heap and from whole ``mmap``
chunks; freed blocks below a live one stay in its free lists, counted in the resident set. After
300 clients that never read, 11.5 MB of the heap was free and still resident until
``malloc_trim(0)`` gave it back (40-65 ms for that heap).

``give_back`` looks every ``period`` seconds at how much of the heap is free (``mallinfo2``,
0.1 ms) and trims once that has grown by ``threshold`` since the last trim: a steady server,
whose free lists stay as they are, never pays for a trim. The trim runs in a worker thread: ctypes releases the GIL around a foreign
call, so the event loop goes on meanwhile.

Only glibc has ``mallinfo2`` (2.33+) and ``malloc_trim``; elsewhere ``available()`` is False and
nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Callable

import trio


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
    )]


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc (musl has neither), or older than 2.33
        return None
    return libc


_LIBC = _glibc()


def available() -> bool:
    return _LIBC is not None


def free_heap_bytes() -> int:
    """Bytes in malloc's free lists: freed, yet still part of the process."""
    assert _LIBC is not None
    return _LIBC.mallinfo2().fordblks


def release_free_heap() -> None:
    """Hand the heap's free pages back to the kernel (blocking: call it from a worker thread)."""
    assert _LIBC is not None
    _LIBC.malloc_trim(0)


async def give_back(
    threshold: int,
    period: float,
    free: Callable[[], int] = free_heap_bytes,
    release: Callable[[], None] = release_free_heap,
) -> None:
    """Forever: every ``period`` seconds, release the free heap if it has grown by ``threshold``
    bytes or more since the last release (or the start).

    Growth, not level: pages a trim gave back stay in malloc's free lists (``fordblks`` counts
    them), so after one trim the level alone would call for another at every look."""
    level = free()
    while True:
        await trio.sleep(period)
        if free() - level >= threshold:
            await trio.to_thread.run_sync(release)
            level = free()
