"""A real ``HttpServer`` on a real loopback socket, run by trio in a thread, for blocking test clients.

The handler answers by path: ``/`` 200, ``/slow?s=SECONDS`` after that long,
``/block?s=SECONDS&hold=SECONDS`` after blocking the event loop ``s`` (a CPU-bound worker: every
other request waits) and then waiting ``hold`` more without blocking it, ``/big`` 4 MB,
``/size`` the size of the request's body, ``/euro`` a redirect whose ``location`` holds a character outside Latin-1, ``/reason`` such a
reason phrase, ``/agent`` 200 after keeping its ``user-agent`` in ``AGENTS``.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import parse_qs

import trio

from edge.live.ingress import HttpServer, Limits
from edge.platform.fetch import Request, Response


AGENTS: list[str | None] = []


async def handler(request: Request) -> Response:
    if request.path == "/agent":
        AGENTS.append(request.headers.get("user-agent"))
    elif request.path == "/slow":
        await trio.sleep(float(request.query.partition("=")[2] or 1))
    elif request.path == "/block":
        query = parse_qs(request.query)
        time.sleep(float(query["s"][0]))
        if "hold" in query:  # without it, no checkpoint: nothing else runs before the answer
            await trio.sleep(float(query["hold"][0]))
    elif request.path == "/big":
        return Response(b"x" * (4 << 20))
    elif request.path == "/size":
        return Response(str(len(await request.bytes())))
    elif request.path == "/euro":
        return Response(None, status=302, headers={"location": "/\u20ac"})
    elif request.path == "/reason":
        return Response("odd", status_text="Gut \u20ac")
    return Response("ok")


class RunningServer:
    def __init__(self, limits: Limits | None = None) -> None:
        self.server = HttpServer(handler, limits)
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.server.serve, listeners)
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def __enter__(self) -> RunningServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(10)
        assert not self._thread.is_alive()

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def exchange(self, data: bytes, *, timeout: float = 5.0, half_close: bool = False) -> bytes:
        """Send ``data`` and read until the server closes (or ``timeout``)."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (socket.timeout, ConnectionResetError):
        pass
    return b"".join(chunks)
