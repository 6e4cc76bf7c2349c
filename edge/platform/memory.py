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

What no trim reaches is CPython's own small-object allocator: it takes memory in 1 MiB arenas and
returns an arena only once every block in it is free. After a burst, a few objects the server
keeps (a counter's latest value, a timer, a dashboard reading) sit in most of the arenas the burst
grew, so nearly all of the burst's memory stays: 50 -> 87 MB over 4,096 connections, 85 MB a
minute later. jemalloc returns memory page by page instead: 52 -> 67 -> 58 MB
(``benchmarks/burst_memory.py``; docs/reliability.md has the census of what kept the arenas).
So ``edge serve`` runs on jemalloc when it is installed (``jemalloc_environment``): CPython is
told to use ``malloc`` for every object (``PYTHONMALLOC``) and jemalloc is preloaded; both must be
set before the interpreter starts, hence a new ``exec`` of the same command.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping
from typing import Callable


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
    return int(_LIBC.mallinfo2().fordblks)


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
    import trio  # here, not above: `edge` reads this module before it starts again on jemalloc

    level = free()
    while True:
        await trio.sleep(period)
        if free() - level >= threshold:
            await trio.to_thread.run_sync(release)
            level = free()


JEMALLOC_NAME = "jemalloc"
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"


def jemalloc_library() -> str | None:
    """jemalloc's shared library as the dynamic loader knows it (``libjemalloc.so.2``), if installed
    on Linux (preloading is ``LD_PRELOAD``'s way, and ``/proc/self/maps`` tells it worked)."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.util.find_library(JEMALLOC_NAME)


def jemalloc_loaded() -> bool:
    """Whether this process runs on jemalloc, with every Python object allocated through it."""
    if os.environ.get("PYTHONMALLOC") != "malloc":
        return False
    try:
        with open("/proc/self/maps") as maps:
            return any("libjemalloc" in line for line in maps)
    except OSError:  # not Linux: nothing to say it is
        return False


def jemalloc_environment(environ: Mapping[str, str], library: str) -> dict[str, str]:
    """``environ`` for a process whose objects live in jemalloc's ``library``.

    ``JEMALLOC_CONF`` unless the user set a ``MALLOC_CONF`` of their own: a background thread hands
    pages back while the server is idle (jemalloc's own purging waits for the next allocation), a
    second after they were last used (10 s by default), and at once to the kernel (by default
    jemalloc first marks them ``MADV_FREE``, which stays in the resident set until the kernel needs
    the memory). Over a 4,096-connection burst this kept 5.7 MB a minute later instead of 12."""
    preload = " ".join(filter(None, [library, environ.get("LD_PRELOAD", "")]))
    return {"MALLOC_CONF": JEMALLOC_CONF, **environ, "LD_PRELOAD": preload, "PYTHONMALLOC": "malloc"}
