"""edge.live.receive: every connection reads into one shared buffer and gets a copy of exactly
what arrived (why: the heap fragmentation that ``recv(n)``'s large, shrunk blocks caused)."""

from __future__ import annotations

import random
import tracemalloc

import trio

from edge.live import receive
from edge.platform.trio_internals import standard_socket


async def _pairs(count: int) -> list[tuple[trio.socket.SocketType, trio.socket.SocketType]]:
    return [trio.socket.socketpair() for _ in range(count)]


async def test_concurrent_connections_each_get_their_own_bytes_whole_and_in_order():
    """Fifty connections read at once into the one buffer, their peers writing pieces of random
    sizes in random order: each reader gets exactly its peer's bytes."""
    rng = random.Random(7)
    pairs = await _pairs(50)
    sent = [rng.randbytes(rng.randrange(1, 200_000)) for _ in pairs]
    got: list[bytearray] = [bytearray() for _ in pairs]

    async def read(index: int, sock: trio.socket.SocketType) -> None:
        while data := (await receive.recvmsg(sock, rng.choice([1, 100, 4096, 65536, 1 << 20])))[0]:
            got[index] += data

    async def write(index: int, sock: trio.socket.SocketType) -> None:
        payload, at = sent[index], 0
        while at < len(payload):
            size = rng.randrange(1, 70_000)
            await sock.send(payload[at : at + size])
            at += min(size, len(payload) - at)
            await trio.sleep(0)
        sock.shutdown(trio.socket.SHUT_WR)

    async with trio.open_nursery() as nursery:
        for index, (a, b) in enumerate(pairs):
            nursery.start_soon(read, index, a)
            nursery.start_soon(write, index, b)
    assert [bytes(g) for g in got] == sent
    for a, b in pairs:
        a.close()
        b.close()


async def test_a_read_of_a_hundred_bytes_allocates_about_a_hundred_not_what_it_may_return():
    """The point of the module: the bytes handed back are the only allocation, sized to the data
    (trio's ``recv(65536)`` allocates the 64 KiB first, then shrinks it)."""
    (a, b), = await _pairs(1)
    with a, b:
        await b.send(b"x" * 100)
        await receive.recvmsg(a, 65536)  # the thread's buffer exists from here on
        await b.send(b"y" * 100)
        tracemalloc.start()
        try:
            data, _ = await receive.recvmsg(a, 65536)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert data == b"y" * 100
        assert peak < 4096, peak  # the data, the frames and tuples of the call

        await b.send(b"z" * 100)
        tracemalloc.start()
        try:
            assert await a.recv(65536) == b"z" * 100
            _, trio_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert trio_peak >= 65536  # what the module avoids


async def test_end_of_stream_is_empty_and_size_is_capped_at_the_buffer():
    (a, b), = await _pairs(1)
    with a, b:
        await b.send(b"z" * (receive.BUFFER_BYTES + 10))
        first, _ = await receive.recvmsg(a, receive.BUFFER_BYTES + 10)
        assert len(first) <= receive.BUFFER_BYTES
        rest = bytearray(first)
        b.shutdown(trio.socket.SHUT_WR)
        while data := (await receive.recvmsg(a, 1 << 20))[0]:
            rest += data
        assert bytes(rest) == b"z" * (receive.BUFFER_BYTES + 10)
        assert (await receive.recvmsg(a, 10))[0] == b""


async def test_a_sender_that_never_pauses_does_not_starve_another_connection():
    """Data ready on every read: each read still yields once, as trio's own calls do."""
    (busy, busy_peer), (quiet, quiet_peer) = await _pairs(2)
    with busy, busy_peer, quiet, quiet_peer:
        await busy_peer.send(b"b" * 200_000)
        reads = 0

        async def drain() -> None:
            nonlocal reads
            while True:
                await receive.recvmsg(busy, 1)
                reads += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            await quiet_peer.send(b"hello")
            assert (await receive.recvmsg(quiet, 100))[0] == b"hello"
            nursery.cancel_scope.cancel()
        assert reads < 1000  # the quiet one was served among the first thousand one-byte reads


async def test_a_cancelled_read_loses_nothing():
    (a, b), = await _pairs(1)
    with a, b:
        with trio.move_on_after(0.01):
            await receive.recvmsg(a, 100)  # nothing to read: cancelled while waiting
        await b.send(b"after")
        assert (await receive.recvmsg(a, 100))[0] == b"after"


async def test_without_trio_s_inner_socket_it_falls_back_to_trio_s_own_call():
    class Wrapped:
        """A socket whose insides are not trio's: what another trio might have."""

        def __init__(self, sock: trio.socket.SocketType) -> None:
            self.sock = sock

        def fileno(self) -> int:
            return self.sock.fileno()

        async def recvmsg(self, size: int, ancillary: int):
            return await self.sock.recvmsg(size, ancillary)

    (a, b), = await _pairs(1)
    with a, b:
        assert standard_socket(a) is not None and standard_socket(Wrapped(a)) is None
        await b.send(b"fallback")
        assert (await receive.recvmsg(Wrapped(a), 100))[0] == b"fallback"
