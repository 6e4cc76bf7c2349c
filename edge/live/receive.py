"""Reading a socket into one buffer shared by every connection, copying out exactly what arrived.

Why: ``socket.recv(n)`` allocates ``n`` bytes (tens of KiB: what one read may return) and then
shrinks the object to what came, usually a few hundred bytes. glibc serves such blocks from its
heap, and the small blocks that outlive them settle in the holes they leave: under steady load the
heap of ``edge serve --traffic`` grew about 12 bytes per request and never shrank (fragmentation,
which no ``malloc_trim`` gives back). Reading into one buffer and copying out exactly what arrived
allocates only what is kept, and a request of a few hundred bytes comes from Python's small-object
allocator instead of the heap.

One buffer per thread serves every connection of that thread's event loop. That is safe only
because nothing runs between the system call that fills it and the copy: trio's own socket
methods add a schedule point after a call that succeeded at once (another connection could then
read into the same buffer), so ``recvmsg`` calls the standard socket's method itself and waits
with ``trio.lowlevel.wait_readable`` only when there is nothing to read, and yields only once the
data is copied. Where trio's insides are not as expected it falls back to trio's own method.
"""

from __future__ import annotations

import threading
from typing import Any

import trio

from edge.platform.trio_internals import standard_socket

BUFFER_BYTES = 64 * 1024
"""The most one read returns."""

_local = threading.local()


def _buffer() -> memoryview:
    view = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(BUFFER_BYTES))
    return view


async def recvmsg(sock: trio.socket.SocketType, size: int, ancillary_size: int = 0) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """Up to ``size`` bytes (at most ``BUFFER_BYTES``) and the ancillary data, as
    ``sock.recvmsg(size, ancillary_size)``; ``b""`` at end of stream."""
    raw = standard_socket(sock)
    if raw is None:
        data, ancillary, _, _ = await sock.recvmsg(size, ancillary_size)
        return data, ancillary
    await trio.lowlevel.checkpoint_if_cancelled()
    view = _buffer()[: min(size, BUFFER_BYTES)]
    waited = False
    while True:
        try:
            count, ancillary, _, _ = raw.recvmsg_into([view], ancillary_size)
            break
        except BlockingIOError:
            await trio.lowlevel.wait_readable(raw)
            waited = True
    data = view[:count].tobytes()
    if not waited:  # a schedule point, as every trio I/O call has: a fast sender cannot starve the others
        await trio.lowlevel.cancel_shielded_checkpoint()
    return data, ancillary


async def recv(stream: Any, size: int) -> bytes:
    """Up to ``size`` bytes from a ``trio.SocketStream``, as ``stream.receive_some(size)``."""
    data, _ = await recvmsg(stream.socket, size)
    return data
