"""The HTTP/1.1 ingress of live mode: h11 on trio sockets, one task per connection.

h11 owns the protocol (framing, keep-alive, pipelining, chunked bodies) and never touches a socket;
this module moves bytes between the socket and h11, applies the limits a public endpoint needs, and
turns each complete request into a ``Request`` for the handler. What a client gets wrong is its
connection's problem, never the server's:

* an unparseable request line or header block: 400, then the connection closes;
* a header block over ``max_header_bytes``: 431, then close;
* a body over ``max_body_bytes`` (declared or counted while it streams): 413, then close;
* a client too slow to send its head or body: 408 and close, before any actor sees the request,
  so a slow client never holds a worker slot;
* a client that goes away while its request is being served: the handler is cancelled.

Keep-alive connections idle longer than ``idle_timeout`` are closed. ``stop_accepting()`` begins a
graceful shutdown: listeners close, idle connections close, requests in flight finish (answered
with ``connection: close``), and ``drained()`` reports when none is left.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any, Awaitable, Callable

import h11
import msgspec
import trio

from edge.platform.fetch import Request, Response

log = logging.getLogger("edge.live.ingress")

Handler = Callable[[Request], Awaitable[Response]]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)
_RECEIVE_CHUNK = 64 * 1024
_SERVER = (b"server", b"edge")


class Limits(msgspec.Struct, frozen=True):
    """What one client may ask of the ingress."""

    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    header_timeout: float = 10.0  # from the first byte of a request to the end of its head
    body_timeout: float = 30.0  # for the whole body, once the head is in
    idle_timeout: float = 60.0  # a keep-alive connection waiting for its next request


class _Reject(Exception):
    """A request the ingress answers itself (status, message) and then closes the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpServer:
    """Serves ``handler`` on any number of listeners; see the module docstring for the rules."""

    def __init__(self, handler: Handler, limits: Limits | None = None, rejected: dict[int, int] | None = None) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.in_flight = 0  # requests handed to the handler and not yet answered
        # status -> requests the ingress answered itself (exported as edge_ingress_rejected_total)
        self.rejected = {} if rejected is None else rejected
        self._closing = False
        self._accepting = trio.CancelScope()
        self._idle: set[_Client] = set()  # waiting for their next request
        self._serving: set[_Client] = set()  # with a request in the handler
        self._drained = trio.Event()
        self._drained.set()

    async def serve(self, listeners: list[trio.SocketListener]) -> None:
        """Accept on ``listeners`` until ``stop_accepting``; returns when every connection closed."""
        async with trio.open_nursery() as connections:
            with self._accepting:
                await trio.serve_listeners(self._connection, listeners, handler_nursery=connections)

    def stop_accepting(self) -> None:
        """Begin a graceful shutdown: no new connections, idle ones close, busy ones finish."""
        self._closing = True
        self._accepting.cancel()
        for client in list(self._idle):
            client.reading.cancel()

    async def drained(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if ``timeout`` seconds were not enough."""
        with trio.move_on_after(timeout):
            await self._drained.wait()
        return self.in_flight == 0

    # -- one connection ------------------------------------------------------------------
    async def _connection(self, stream: trio.SocketStream) -> None:
        client = _Client(stream, self.limits)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.read)
            try:
                await self._converse(client)
            except _Reject as reject:
                self.rejected[reject.status] = self.rejected.get(reject.status, 0) + 1
                await self._reject(client, reject)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client hung up while we wrote; nothing left to tell it
            finally:
                client.reading.cancel()
                with trio.CancelScope(shield=True):
                    await stream.aclose()

    async def _converse(self, client: _Client) -> None:
        """Request after request on one connection, until either side closes it."""
        conn = client.h11
        while not self._closing:
            request = await self._read_request(client)
            if request is None:
                return
            response = await self._handle(client, request)
            if response is None:  # the client went away
                return
            await self._respond(client, request.method, response)
            if conn.our_state is h11.MUST_CLOSE or self._closing:
                return
            conn.start_next_cycle()
            client.consumed()

    async def _read_request(self, client: _Client) -> Request | _BadRequest | None:
        """The next complete request, or None when the client closed (or idled out) between requests."""
        limits = self.limits
        self._idle.add(client)
        try:
            event = await client.next_event(limits.idle_timeout, self._head_started)
        finally:
            self._idle.discard(client)
        client.no_timeout()  # the body has a timeout of its own
        if event is None or isinstance(event, h11.ConnectionClosed):
            if client.started:  # the head began but did not end in time
                raise _Reject(408, "request head not received in time")
            return None
        head: h11.Request = event
        # h11 only bounds a head that is still incomplete; one that arrived whole is measured here.
        head_size = len(head.method) + len(head.target) + sum(len(name) + len(value) + 4 for name, value in head.headers)
        if head_size > limits.max_header_bytes:
            raise _Reject(431, f"request head of {head_size} bytes is over the {limits.max_header_bytes}-byte limit")
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers]
        declared = _content_length(headers)
        if declared is not None and declared > limits.max_body_bytes:
            raise _Reject(413, f"request body of {declared} bytes is over the {limits.max_body_bytes}-byte limit")
        body = await self._read_body(client)
        return _to_request(head, headers, body)

    def _head_started(self, client: _Client) -> None:
        """A request has begun to arrive: shutdown lets it finish, and its head has header_timeout."""
        self._idle.discard(client)
        client.reading.deadline = min(client.reading.deadline, trio.current_time() + self.limits.header_timeout)

    async def _read_body(self, client: _Client) -> bytes:
        limits = self.limits
        conn = client.h11
        if conn.they_are_waiting_for_100_continue:
            await client.stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await client.next_event(limits.body_timeout)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limits.max_body_bytes:
                    raise _Reject(413, f"request body is over the {limits.max_body_bytes}-byte limit")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                client.no_timeout()  # none while the request is served
                return b"".join(chunks)
            elif event is None:
                raise _Reject(408, "request body not received in time")
            else:  # ConnectionClosed
                raise trio.BrokenResourceError("client closed before its body ended")

    async def _handle(self, client: _Client, request: Request | _BadRequest) -> Response | None:
        """Run the handler; None if the client disconnected meanwhile (the handler is cancelled)."""
        if isinstance(request, _BadRequest):
            raise _Reject(400, request.message)
        self.in_flight += 1
        if self._drained.is_set():
            self._drained = trio.Event()
        response: Response | None = None
        try:
            with trio.CancelScope() as client.serving:
                self._serving.add(client)
                if client.hung_up:
                    client.serving.cancel()
                try:
                    response = await self.handler(request)
                except Exception:
                    log.exception("handler failed for %r", request)
                    response = Response("internal error in the ingress", status=500)
        finally:
            self._serving.discard(client)
            client.serving = None
            self.in_flight -= 1
            if self.in_flight == 0:
                self._drained.set()
        if response is not None:
            return response
        if client.hung_up:
            return None
        # abort_in_flight() cut it off: the client is told, not left hanging.
        return Response("the server is shutting down and could not finish this request in time", status=503)

    def abort_in_flight(self) -> int:
        """Answer every request still being served with 503 (the drain time ran out); how many."""
        serving = [client for client in self._serving if client.serving is not None]
        for client in serving:
            client.serving.cancel()  # type: ignore[union-attr]
        return len(serving)

    async def _respond(self, client: _Client, method: str, response: Response) -> None:
        conn = client.h11
        body = await response.bytes()
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.raw() if name.lower() not in _HOP_BY_HOP]
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append(_SERVER)
        if self._closing:
            headers.append((b"connection", b"close"))
        out = conn.send(h11.Response(status_code=response.status, headers=headers, reason=response.status_text.encode("latin-1")))
        if body and method != "HEAD" and response.status not in (204, 304):
            out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        await client.stream.send_all(out)

    async def _reject(self, client: _Client, reject: _Reject) -> None:
        conn = client.h11
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{reject.status} {reject.message}\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()), (b"connection", b"close"), _SERVER]
        try:
            with trio.move_on_after(5):
                await client.stream.send_all(conn.send(h11.Response(status_code=reject.status, headers=headers, reason=HTTPStatus(reject.status).phrase.encode())) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass


class _Client:
    """One connection: h11's state, fed by a reader task that lives as long as the connection.

    The reader owns the socket's receiving side: it is what notices a client hanging up while its
    request is served (and cancels ``serving``), and its cancel scope's deadline is the read
    timeout of whatever the connection is waiting for (next request, head, body). One task per
    connection rather than per request keeps a keep-alive request's cost down.
    """

    def __init__(self, stream: trio.SocketStream, limits: Limits) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.read_ahead = limits.max_header_bytes + limits.max_body_bytes
        self.reading = trio.CancelScope()  # the reader's; cancelled = read timeout or shutdown
        self.serving: trio.CancelScope | None = None  # the handler's, while a request is served
        self.hung_up = False
        self.started = False  # has the request being read begun to arrive?
        self._done_reading = False
        self._arrived = trio.Event()
        self._room = trio.Event()

    async def read(self) -> None:
        with self.reading:
            while True:
                if len(self.h11.trailing_data[0]) > self.read_ahead:
                    self._room = trio.Event()  # enough read ahead: wait for the requests to be served
                    await self._room.wait()
                try:
                    data = await self.stream.receive_some(_RECEIVE_CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""  # reset by the peer: the same as a hang-up here
                self.h11.receive_data(data)  # b"" tells h11 the peer closed
                if not data:
                    self.hung_up = True
                    if self.serving is not None:
                        self.serving.cancel()  # the client is gone: stop serving it
                    break
                self._arrived.set()
        self._done_reading = True
        self._arrived.set()

    def consumed(self) -> None:
        """A request cycle ended: the reader may read ahead again."""
        self.started = False
        self._room.set()

    async def next_event(self, timeout: float, on_start: Callable[[_Client], None] | None = None) -> Any:
        """h11's next event, waiting up to ``timeout`` for the reader if h11 needs data; None once
        reading stopped (timeout, shutdown) with h11 still needing data.

        The read deadline is set only when there is something to wait for: a request that arrived
        whole (most of them) costs no deadline changes, which trio pays for in its deadline heap.
        """
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise _Reject(exc.error_status_hint, str(exc) or "malformed request") from None
            if event is not h11.NEED_DATA:
                return event
            if self.reading.deadline == math.inf:
                self.reading.deadline = trio.current_time() + timeout
            if not self.started and self.h11.trailing_data[0]:
                self.started = True
                if on_start is not None:
                    on_start(self)
            if self._done_reading:
                return None
            self._arrived = trio.Event()
            await self._arrived.wait()

    def no_timeout(self) -> None:
        if self.reading.deadline != math.inf:
            self.reading.deadline = math.inf


class _BadRequest:
    """A request h11 accepted but the fetch API cannot represent (e.g. a GET with a body)."""

    def __init__(self, message: str) -> None:
        self.message = message


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name == "content-length":
            return int(value)  # h11 has already checked it is a number
    return None


def _to_request(head: h11.Request, headers: list[tuple[str, str]], body: bytes) -> Request | _BadRequest:
    target = head.target.decode("latin-1")
    method = head.method.decode("latin-1")
    if target.startswith(("http://", "https://")):
        url = target
    elif target.startswith("/"):
        host = next((value for name, value in headers if name == "host"), "")
        if not host:
            return _BadRequest("missing Host header")
        url = f"http://{host}{target}"
    else:
        return _BadRequest(f"unsupported request target {target[:100]!r}")
    try:
        return Request(url, method=method, headers=headers, body=body or None)
    except (TypeError, ValueError) as exc:
        return _BadRequest(str(exc))


