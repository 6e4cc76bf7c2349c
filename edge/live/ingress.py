"""The HTTP/1.1 ingress of live mode: h11 on trio sockets, one task per connection.

h11 owns the protocol (framing, keep-alive, pipelining, chunked bodies) and never touches a socket;
this module moves bytes between the socket and h11, applies the limits a public endpoint needs, and
turns each complete request into a ``Request`` for the handler. What a client gets wrong is its
connection's problem, never the server's:

* an unparseable request line or header block: 400, then the connection closes;
* a target over ``max_url_bytes``: 414, header fields over ``max_header_bytes`` in all: 431 (the
  limits Cloudflare documents, 16 KB and 128 KB), then close;
* a body over ``max_body_bytes`` (declared or counted while it streams): 413, then close;
* a client too slow to send its head or body: 408 and close, before any actor sees the request,
  so a slow client never holds a worker slot;
* a request line with an HTTP version other than 1.0 and 1.1: 505, then close;
* a request with both Content-Length and Transfer-Encoding (RFC 9112 section 6.1, a smuggling
  vector): 400, then close;
* a head with a bare LF line ending or an obs-fold continuation line: 400, then close. Both are
  rejected rather than normalised (RFC 9112 allows either): a server that reads a head differently
  from the proxy in front of it is how requests get smuggled;
* a ``Host`` that is not ``host[:port]`` (``[::1``, ``a/b``, ``u@h``): 400, then close;
* a client that closes its sending side (EOF) while its request is served: EOF alone cannot tell a
  half-close (``shutdown(SHUT_WR)``, still reading) from a hang-up, so the handler keeps running for
  up to ``hangup_grace``; an answer by then is written (a half-closed client gets it), otherwise the
  handler is cancelled, which frees the slots of its whole chain.

Each client fault is one log line at most (status, reason, peer address: never the request's
target or headers, which carry tokens), through a rate limit (``edge.live.ratelimit``).

What the server gets wrong stays its own request's problem: a worker's answer HTTP/1.1 cannot carry
(a header name, value or reason phrase outside Latin-1, a CR or LF in a value) is sent as a 500
(``error code: 1101``, ``x-edge-error: invalid-response``) and counted in ``faults``.

Overload is shed early and cheaply, before any actor sees the request, so that what is admitted
keeps a bounded latency. Sheds are 503s with ``Retry-After``, counted as ``rejected`` 503s:

* admission control (``edge.live.admission``): a limit on requests in flight (from admission to
  the end of the scheduler pass that answered them), at most ``max_in_flight``, that shrinks while
  every request of a ``queue_delay_interval`` waited over ``queue_delay_target`` before its head
  was parsed (measured from the kernel's receive timestamp, ``SO_TIMESTAMPNS``, so the accept
  backlog counts). A request over the limit waits for a slot, oldest first, for up to an interval
  in all, if those waiting ahead of it will likely have theirs within half an interval; otherwise
  it is shed at once (see ``_admit``). While the limit is reached (in this interval or the last), a
  connection's first request that waited over an interval in the accept backlog is shed at once,
  before its ``Request`` is built. A shed connection is kept, and its next request read only once
  the 503's ``Retry-After`` has passed (``_hold_back``): a client that re-sends at once costs
  nothing until then. ``queue_delay_target = 0`` turns admission control off: then a request over
  ``max_in_flight`` is shed at once and its connection closed;
* more than ``max_connections`` open connections: a new one gets a 503 as it is accepted, and is
  closed once its client has closed (``_refuse_at_once``); at most ``REFUSALS`` per
  ``REFUSAL_WINDOW``, the rest waiting in the kernel's backlog;
* the backlog is taken whole each time a listener is readable (up to ``ACCEPT_BATCH`` a pass), not
  one connection per pass as trio's ``accept`` does (``_accept``);
* a client that does not take its answer within ``write_timeout`` is dropped (counted);
* at most ``read_buffer_bytes`` and a usual head (16 KiB) of a connection's input are read ahead of
  what is being served; more only while a larger head is still arriving.

Keep-alive connections idle longer than ``idle_timeout`` are closed. ``stop_accepting()`` begins a
graceful shutdown: listeners close, idle connections close, requests in flight finish (answered
with ``connection: close``), and ``drained()`` reports when none is left. An idle connection is
closed lingering (a FIN first, then what arrives is dropped until the client closes too): a
request racing the close would otherwise be unread input at the close, which resets the connection.
"""

from __future__ import annotations

import collections
import errno
import logging
import math
import os
import re
import socket
import struct
import sys
import time
from http import HTTPStatus
from typing import Any, Awaitable, Callable

import h11
import msgspec
import trio

from edge.live import receive
from edge.live.admission import ADMIT, SHED, AdaptiveLimit
from edge.live.ratelimit import Allowance, RateLimit
from edge.platform import h11_internals, trio_internals
from edge.platform.errors import INVALID_RESPONSE, platform_error
from edge.platform.fetch import Request, Response

log = logging.getLogger("edge.live.ingress")
client_faults = logging.getLogger("edge.live.ingress.clients")
client_faults.addFilter(RateLimit(limit=10, interval=10.0))
bad_answers = logging.getLogger("edge.live.ingress.answers")  # one worker can do it on every request
bad_answers.addFilter(RateLimit(limit=10, interval=10.0))

Handler = Callable[[Request], Awaitable[Response]]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)
_RECEIVE_CHUNK = 64 * 1024
LINGER = 1.0  # seconds a refused client's remaining input is read (and dropped) before closing
LINGER_BYTES = 1024 * 1024  # and at most this much of it
_REFUSED_POLL = 0.05  # seconds between looks at the refused sockets still open
# Linux's SO_TIMESTAMPNS (the socket module does not name it): recvmsg then says when the data
# reached the socket, and an accepted socket inherits it from its listener.
_SO_TIMESTAMPNS = 35 if sys.platform == "linux" else None
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)
# workerd writes the header names its HTTP library knows in their usual case, the others as given.
_CANONICAL_NAMES = {
    name.lower(): name.encode()
    for name in ("Connection", "Content-Length", "Content-Type", "Date", "Host", "Keep-Alive", "Location",
                 "TE", "Trailer", "Transfer-Encoding", "Upgrade")
}
_VERSIONS = (b"1.1", b"1.0")
_METHODS = frozenset(
    b"GET HEAD POST PUT DELETE PATCH PURGE OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH UNLOCK ACL "
    b"REPORT MKACTIVITY CHECKOUT MERGE MSEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE QUERY BAN".split()
)
"""The methods workerd serves (its HTTP parser's list, checked one by one against it by the
conformance suite's oracle); any other, a lower-case spelling included, is a 501 there and here."""
_BLANK_LINE = re.compile(rb"\n\r?\n")  # the end of a head, as h11 finds it
# RFC 9110 section 7.2: uri-host [":" port], uri-host an IP literal or a reg-name (no "/", "?", "@", ...)
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?")


class Limits(msgspec.Struct, frozen=True):
    """What one client may ask of the ingress."""

    max_header_bytes: int = 128 * 1024  # the header fields together (names, values, ": ", CRLFs), as Cloudflare's 128 KB
    max_url_bytes: int = 16 * 1024  # the request target, as Cloudflare's 16 KB URLs
    max_body_bytes: int = 1024 * 1024
    header_timeout: float = 10.0  # from the first byte of a request to the end of its head
    body_timeout: float = 30.0  # for the whole body, once the head is in
    idle_timeout: float = 60.0  # a keep-alive connection waiting for its next request
    write_timeout: float = 10.0  # for one answer to be taken by the client; then it is dropped
    hangup_grace: float = 1.0  # a request whose client sent EOF keeps its handler this long
    max_in_flight: int = 512  # requests in the handler; beyond, 503 + Retry-After
    # Admission control (edge.live.admission): the limit on requests in flight, at most max_in_flight,
    # shrinks while every request of an interval waited over the target before being read, and a
    # request that waited longer than an interval (in the accept backlog, say) is shed.
    queue_delay_target: float = 0.005  # seconds; 0 turns it off (a fixed max_in_flight)
    queue_delay_interval: float = 0.1
    max_connections: int = 1024  # open connections; beyond, a new one gets 503 and is closed
    read_buffer_bytes: int = 16 * 1024  # input read ahead of the request being served (beyond its head)
    retry_after: int = 1  # seconds, in the Retry-After of a shed answer


class _Reject(Exception):
    """A request the ingress answers itself (status, message) and then closes the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpServer:
    """Serves ``handler`` on any number of listeners; see the module docstring for the rules."""

    def __init__(
        self,
        handler: Handler,
        limits: Limits | None = None,
        rejected: dict[int, int] | None = None,
        faults: dict[str, int] | None = None,
        server: str = "edge",
        exempt: Callable[[h11.Request], bool] | None = None,
    ) -> None:
        """``server`` is the ``Server`` header of every answer ("" for none, as workerd sends).
        A request ``exempt`` says yes to (a health check, a scrape) bypasses admission control: it
        never waits for a slot nor is shed, though it counts in flight while it is served."""
        self.handler = handler
        self.exempt = exempt
        self._server = [(b"server", server.encode("latin-1"))] if server else []
        h11_internals.accept_raw_utf8_targets()  # a raw UTF-8 target is served, as workerd serves it
        self.limits = limits = limits or Limits()
        self.in_flight = 0  # requests handed to the handler and not yet answered
        self.connections = 0
        # status -> requests the ingress answered itself (exported as edge_ingress_rejected_total)
        self.rejected = {} if rejected is None else rejected
        # kind -> faults absorbed: invalid_response, write_timeout (edge_ingress_faults_total)
        self.faults = {} if faults is None else faults
        shed_body = b"503 overloaded: retry later\n"
        self._shed_headers = [
            (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(shed_body)).encode()),
            (b"retry-after", str(limits.retry_after).encode()), *self._server,
        ]
        self._shed_body = shed_body
        self._shed_and_close = [*self._shed_headers, (b"connection", b"close")]
        self._refusal = (
            b"HTTP/1.1 503 Service Unavailable\r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in self._shed_headers)
            + b"connection: close\r\n\r\n" + shed_body
        )
        self.admission = (
            AdaptiveLimit(limits.queue_delay_target, limits.queue_delay_interval, limits.max_in_flight)
            if limits.queue_delay_target else None
        )
        self._waiters: collections.deque[trio.Event] = collections.deque()  # waiting for a slot, oldest first
        self._answered = 0  # requests answered in this scheduler pass: their slots free when it ends
        self._passes = 0  # scheduler passes begun (counted with admission control on)
        self._closing = False
        self._accepting = trio.CancelScope()
        self._idle: set[_Client] = set()  # waiting for their next request
        self._serving: set[_Client] = set()  # with a request in the handler
        # shed connections not read again until their Retry-After: (when, released), oldest first
        self._held_back: collections.deque[tuple[float, trio.Event]] = collections.deque()
        self._holding = trio.Event()  # set when the releaser has a connection to wait for
        # refused over max_connections: (when to close at the latest, socket), oldest first
        self._refused: collections.deque[tuple[float, socket.socket]] = collections.deque()
        self._refused_waiting = trio.Event()
        self._refusals = Allowance(REFUSALS, REFUSAL_WINDOW)  # shared by the listeners
        self._drained = trio.Event()
        self._drained.set()

    async def serve(self, listeners: list[trio.SocketListener]) -> None:
        """Accept on ``listeners`` until ``stop_accepting``; returns when every connection closed."""
        if _SO_TIMESTAMPNS is not None:
            for listener in listeners:
                listener.socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        passes = schedstat = None
        if self.admission is not None:
            passes = _Passes(self._new_pass, self.admission.ran)
            trio.lowlevel.add_instrument(passes)
            schedstat = _SchedStat.open()  # in the loop's thread: it is the one read
            self.admission.cpu_wait = schedstat.read if schedstat is not None else None
        try:
            async with trio.open_nursery() as connections, trio.open_nursery() as helpers:
                helpers.start_soon(self._close_refused)
                helpers.start_soon(self._release_held_back)
                with self._accepting:
                    async with trio.open_nursery() as accepting:
                        for listener in listeners:
                            accepting.start_soon(self._accept, listener, connections)
                helpers.cancel_scope.cancel()  # nothing left for them once accepting stopped
        finally:
            if passes is not None:
                trio.lowlevel.remove_instrument(passes)
            if schedstat is not None:
                self.admission.cpu_wait = None  # type: ignore[union-attr]
                schedstat.close()

    async def _accept(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        """Take every connection waiting in ``listener``'s backlog each time it is readable.

        trio's ``listener.accept()`` takes one connection per scheduler pass, and a pass under load
        lasts tens of milliseconds: the backlog then grew faster than it was taken, and a client
        waited seconds for its connection to be accepted, even to be told 503. Here the backlog is
        taken in one go (``ACCEPT_BATCH`` at most per pass, so a flood of connections cannot hold
        the loop), each connection started as a task of its own, and one over ``max_connections``
        refused on the spot (``_refuse_at_once``).
        """
        async with listener:
            raw = trio_internals.standard_socket(listener.socket)
            while True:
                if raw is None:  # trio's insides are not as expected: its own accept, one per pass
                    stream = await listener.accept()
                    task = self._refuse if self.connections >= self.limits.max_connections else self._connection
                    connections.start_soon(task, stream)
                    continue
                await trio.lowlevel.wait_readable(raw)
                batch = ACCEPT_BATCH
                if self.connections >= self.limits.max_connections:
                    # Full: every connection taken now is refused. Clients refused often reconnect
                    # at once, and refusing as fast as the loop turned took a third of the CPU from
                    # the connections served (4,096 clients); past the allowance, they wait in the
                    # kernel's backlog.
                    batch = self._refusals.take(trio.current_time(), ACCEPT_BATCH)
                    if not batch:
                        await trio.sleep_until(self._refusals.window_end)
                        continue
                accepted = _accept_waiting(raw, batch)
                if accepted is None:
                    await trio.sleep(_ACCEPT_RETRY)  # out of descriptors or memory: let some close
                    continue
                for sock in accepted:
                    if self.connections >= self.limits.max_connections:
                        self._refuse_at_once(sock)
                    else:
                        self.connections += 1  # now: the task starts in the next pass
                        connections.start_soon(self._connection, trio.SocketStream(trio.socket.from_stdlib_socket(sock)), True)

    @property
    def admission_limit(self) -> int:
        """How many requests may be in flight now: the adaptive limit, or the fixed max_in_flight."""
        return self.admission.limit if self.admission is not None else self.limits.max_in_flight

    def stop_accepting(self) -> None:
        """Begin a graceful shutdown: no new connections, idle ones close, busy ones finish."""
        self._closing = True
        self._accepting.cancel()
        for client in list(self._idle):
            client.reading.cancel()
        for _, released in self._held_back:
            released.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if ``timeout`` seconds were not enough."""
        with trio.move_on_after(timeout):
            await self._drained.wait()
        return self.in_flight == 0

    # -- one connection ------------------------------------------------------------------
    async def _connection(self, stream: trio.SocketStream, counted: bool = False) -> None:
        """One connection, from its first request to its close; ``counted``: already counted in
        ``connections``."""
        if not counted:
            self.connections += 1
        try:
            await self._converse_on(stream)
        finally:
            self.connections -= 1

    async def _refuse(self, stream: trio.SocketStream) -> None:
        """Over max_connections: a 503 without parsing anything, then a lingering close."""
        self.count_rejected(503)
        with trio.move_on_after(1.0):
            try:
                await stream.send_all(self._refusal)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await _linger(stream)
        with trio.CancelScope(shield=True):
            await stream.aclose()

    def _refuse_at_once(self, sock: socket.socket) -> None:
        """Over max_connections: a 503 without parsing anything, our side shut at once, and the
        socket left to ``_close_refused``, which closes it once the client has.

        Why not a task per refusal, as for a connection served: clients refused this way often
        reconnect at once, and at 4,096 connections a task each (its writes, its lingering read)
        took a third of the CPU. Why not close at once: closing a socket with unread input resets
        the connection, and a reset can destroy the answer before the client has read it.
        """
        self.count_rejected(503)
        try:
            sock.setblocking(False)
            sock.send(self._refusal)  # a few hundred bytes into an empty send buffer: all of it
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # gone already: nothing to tell it
            sock.close()
            return
        self._refused.append((trio.current_time() + LINGER, sock))
        self._refused_waiting.set()

    async def _close_refused(self) -> None:
        """Close each refused socket once its client has closed (what it sent read and dropped),
        or after ``LINGER`` seconds; every ``_REFUSED_POLL`` seconds while there are any."""
        try:
            while True:
                if not self._refused:
                    self._refused_waiting = trio.Event()
                    await self._refused_waiting.wait()
                await trio.sleep(_REFUSED_POLL)
                now = trio.current_time()
                still: collections.deque[tuple[float, socket.socket]] = collections.deque()
                for deadline, sock in self._refused:
                    if now >= deadline or _read_to_end(sock):
                        sock.close()
                    else:
                        still.append((deadline, sock))
                self._refused = still
        finally:
            for _, sock in self._refused:
                sock.close()
            self._refused.clear()

    def count_rejected(self, status: int) -> None:
        self.rejected[status] = self.rejected.get(status, 0) + 1

    def count_fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    async def _converse_on(self, stream: trio.SocketStream) -> None:
        client = _Client(stream, self.limits)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.read)
            try:
                await self._converse(client)
            except _Reject as reject:
                self.count_rejected(reject.status)
                _log_client_fault(stream, reject.status)
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
            received = await self._read_request(client)
            if received is None:
                if not client.hung_up:  # idled out, or shutdown: we close, and a request may be racing it
                    client.reading.cancel()
                    await client.finished.wait()  # the reader is off the socket: one receiver at a time
                    await _linger(client.stream)  # a FIN first, then what comes is dropped: no reset
                return
            if self.exempt is not None and self.exempt(received[0]):
                self._enter()
                refusal = None
            else:
                refusal = await self._admit(client)
            held = refusal is not None and refusal is not self._shed_and_close
            if refusal is not None:
                await self._shed(client, refusal)
                if held and not self._closing:
                    await self._hold_back(client)
            else:
                passes, started = self._passes, time.perf_counter()
                request = _to_request(*received)
                try:
                    response = await self._handle(client, request)
                finally:
                    self._leave()
                if response is None:  # the client went away
                    return
                await self._respond(client, request, response)
                if passes == self._passes and self.admission is not None:  # no schedule point: all its own work
                    self.admission.worked(time.perf_counter() - started)
            if conn.our_state is h11.MUST_CLOSE or self._closing:
                return
            conn.start_next_cycle()
            client.consumed(held)

    async def _read_request(self, client: _Client) -> tuple[h11.Request, bytes] | None:
        """The next complete request (head, body), or None when the client closed (or idled out)
        between requests; its queueing delay in ``client.delay``.

        The head's fields are checked as bytes: the ``Request`` is built only for what is admitted.
        """
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
        client.method = head.method
        client.delay = time.time() - client.arrived
        if head.http_version not in _VERSIONS:
            raise _Reject(505, f"HTTP/{head.http_version.decode()} is not supported: HTTP/1.1 and HTTP/1.0 are")
        if head.http_version == b"1.0" and any(name == b"transfer-encoding" for name, _ in head.headers):
            raise _Reject(400, "Transfer-Encoding in an HTTP/1.0 request: its framing is faulty (RFC 9112, 6.1)")
        if head.target.startswith((b"http://", b"https://")) and b"@" in head.target.split(b"/", 3)[2]:
            raise _Reject(400, "an absolute-form target with user information (RFC 9110, 4.2.4: not sent, not accepted)")
        if head.method not in _METHODS:
            raise _Reject(501, f"unrecognized request method {head.method[:40].decode('latin-1')!r} (methods are case-sensitive)")
        # h11 only bounds a head that is still incomplete; one that arrived whole is measured here.
        if len(head.target) > limits.max_url_bytes:
            raise _Reject(414, f"request target of {len(head.target)} bytes is over the {limits.max_url_bytes}-byte limit")
        header_size = sum(len(name) + len(value) + 4 for name, value in head.headers)
        if header_size > limits.max_header_bytes:
            raise _Reject(431, f"request headers of {header_size} bytes are over the {limits.max_header_bytes}-byte limit")
        declared = _content_length(head.headers)
        if declared is not None and any(name == b"transfer-encoding" for name, _ in head.headers):
            raise _Reject(400, "a request cannot have both Content-Length and Transfer-Encoding")
        if declared is not None and declared > limits.max_body_bytes:
            raise _Reject(413, f"request body of {declared} bytes is over the {limits.max_body_bytes}-byte limit")
        return head, await self._read_body(client)

    def _head_started(self, client: _Client) -> None:
        """A request has begun to arrive: shutdown lets it finish, and its head has header_timeout."""
        self._idle.discard(client)
        client.reading.deadline = min(client.reading.deadline, trio.current_time() + self.limits.header_timeout)

    async def _read_body(self, client: _Client) -> bytes:
        limits = self.limits
        conn = client.h11
        if conn.they_are_waiting_for_100_continue:
            await self._send(client, conn.send(h11.InformationalResponse(status_code=100, headers=[])))
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

    async def _admit(self, client: _Client) -> list[tuple[bytes, bytes]] | None:
        """Take a slot in flight for the request just read (None), or say how to shed it (the
        headers of its 503).

        A request over the limit waits for a slot, oldest first, until it has waited an interval in
        all; nothing waits while requests fit under the limit, and no more than the limit wait.
        One that waited that long is shed with its connection kept: a connection the ingress took
        is worth keeping under overload (its next request is fresh, while a new connection comes
        through the accept backlog, stale by then), and one that re-sends at once costs a parse
        and a 503 per interval. Closing those let the connections served dwindle whenever the limit
        dipped, and good throughput with them; keeping them with no bound on the queue kept every
        connection ever taken, whose 503s took the CPU (9 good answers per second at 1,024).
        """
        admission = self.admission
        if admission is None:
            if self.in_flight >= self.limits.max_in_flight:
                return self._shed_and_close
            self._enter()
            return None
        decision = admission.decide(trio.current_time(), client.delay, self.in_flight + self._answered, len(self._waiters), client.first, client.held)
        if decision is ADMIT:
            self._enter()
            return None
        if decision is SHED:
            return self._shed_headers
        waiter = trio.Event()  # set by _leave, which hands its slot over
        self._waiters.append(waiter)
        try:
            with trio.move_on_after(max(0.0, admission.interval - client.delay)):
                await waiter.wait()
        except BaseException:
            if waiter.is_set():
                self._leave()
            else:
                self._waiters.remove(waiter)
            raise
        if waiter.is_set():
            return None
        self._waiters.remove(waiter)
        return self._shed_headers

    def _enter(self) -> None:
        self.in_flight += 1
        if self._drained.is_set():
            self._drained = trio.Event()

    def _leave(self) -> None:
        """A request left the handler: its slot goes to the oldest waiting request (which runs in
        the next scheduler pass), if it fits; otherwise it stays taken until this pass ends."""
        if self._waiters and self.in_flight + self._answered <= self.admission.limit:  # type: ignore[union-attr]
            self._waiters.popleft().set()
            self.admission.admitted()  # type: ignore[union-attr]
            return
        self.in_flight -= 1
        if self.admission is not None:
            self._answered += 1
        if self.in_flight == 0:
            self._drained.set()

    def _new_pass(self) -> None:
        """A scheduler pass begins: the slots of the requests answered in the last one are free,
        and go to waiting requests first (they run in this pass).

        Why a slot outlives its answer until the pass ends: most handlers run to their answer
        without a schedule point, so a request is in the handler only while it runs, and the
        count in flight at any decision was 0 or 1: the limit never held, and one pass served
        every request that had arrived, its length (and every latency) growing with the clients.
        Counting what a pass answered bounds the requests one pass serves by the limit.
        """
        self._answered = 0
        self._passes += 1
        waiters = self._waiters
        limit = self.admission.limit  # type: ignore[union-attr]
        while waiters and self.in_flight < limit:
            self.in_flight += 1
            waiters.popleft().set()
            self.admission.admitted()  # type: ignore[union-attr]

    async def _handle(self, client: _Client, request: Request | _BadRequest) -> Response | None:
        """Run the handler in the slot taken; None if the client disconnected meanwhile (the handler
        is cancelled)."""
        if isinstance(request, _BadRequest):
            raise _Reject(400, request.message)
        response: Response | None = None
        try:
            with trio.CancelScope() as client.serving:
                self._serving.add(client)
                if client.hung_up:
                    client.hangup_deadline()
                try:
                    response = await self.handler(request)
                except Exception:
                    # a server bug, not the client's: its traceback, but not the query (tokens)
                    log.exception("handler failed for %s %s", request.method, request.path)
                    response = Response("internal error in the ingress", status=500)
        finally:
            self._serving.discard(client)
            client.serving = None
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

    async def _respond(self, client: _Client, request: Request, response: Response) -> None:
        conn = client.h11
        method = request.method
        try:
            head, body = await self._head_and_body(response)
        except (UnicodeEncodeError, h11.LocalProtocolError):
            # Built (and validated) before h11's send: a send that raises leaves h11 in ERROR.
            self.count_fault("invalid_response")
            bad_answers.error("a worker's answer to %s %s cannot be sent as HTTP/1.1 (a header or reason phrase outside "
                      "Latin-1, or a CR/LF in a value): answered 500 instead", method, request.path)
            response = platform_error(INVALID_RESPONSE)
            head, body = await self._head_and_body(response)
        out = conn.send(head)
        if body and method != "HEAD" and response.status not in (204, 304):
            out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        await self._send(client, out)

    async def _head_and_body(self, response: Response) -> tuple[h11.Response, bytes]:
        body = await response.bytes()
        headers = []
        for name, value in response.headers.raw():
            lowercase = name.lower()
            if lowercase not in _HOP_BY_HOP:
                headers.append((_CANONICAL_NAMES.get(lowercase) or name.encode("latin-1"), value.encode("latin-1")))
        if response.status not in (204, 304):  # RFC 9110 8.6: none on a 204; workerd sends none on a 304 either
            headers.append((b"Content-Length", str(len(body)).encode()))
        headers += self._server
        if self._closing:
            headers.append((b"connection", b"close"))
        return h11.Response(status_code=response.status, headers=headers, reason=response.status_text.encode("latin-1")), body

    async def _shed(self, client: _Client, headers: list[tuple[bytes, bytes]]) -> None:
        """503 + Retry-After from prepared headers, closing the connection or not."""
        self.count_rejected(503)
        conn = client.h11
        await self._send(client, conn.send(h11.Response(status_code=503, headers=headers)) + conn.send(h11.Data(data=self._shed_body)) + conn.send(h11.EndOfMessage()))

    async def _hold_back(self, client: _Client) -> None:
        """Read a shed connection's next request only once its ``Retry-After`` has passed.

        Why: clients that re-send at once after a 503 (wrk does, and many retry loops) would
        otherwise cost a parse and a 503 each time round, and with hundreds of them those 503s took
        the CPU: 161 good answers per second at 256 connections, where the loop serves 2,700.
        Held back, such a client costs nothing until then, and a client that honours the header
        never notices. Shutdown ends the wait, and so does the client hanging up.
        """
        if client.hung_up:
            return
        client.held_back = released = trio.Event()  # the reader sets it too, if the client hangs up
        self._held_back.append((trio.current_time() + self.limits.retry_after, released))
        self._holding.set()
        await released.wait()
        client.held_back = None

    async def _release_held_back(self) -> None:
        """Release each held-back connection when its time comes: one timer for them all, since
        each waits the same Retry-After and they come in the order they leave (a timer each, and
        its cancellation, cost a shed connection more than the shed)."""
        held = self._held_back
        while True:
            if not held:
                self._holding = trio.Event()
                await self._holding.wait()
            await trio.sleep_until(held[0][0])
            now = trio.current_time()
            while held and held[0][0] <= now:
                held.popleft()[1].set()

    async def _send(self, client: _Client, data: bytes) -> None:
        """Write to a client that must take it within write_timeout, or be dropped.

        Most answers fit in the socket's send buffer: one non-blocking write sends them, without
        the deadline (a cancel scope in trio's deadline heap) that only a client slow to read needs.
        """
        try:
            sent = os.write(client.fileno, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:  # reset, broken pipe
            raise trio.BrokenResourceError(str(exc)) from None
        if sent == len(data):
            return
        with trio.move_on_after(self.limits.write_timeout):
            await client.stream.send_all(memoryview(data)[sent:])
            return
        self.count_fault("write_timeout")
        raise trio.BrokenResourceError("the client did not read its answer in time")

    async def _reject(self, client: _Client, reject: _Reject) -> None:
        conn = client.h11
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{reject.status} {reject.message}\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()), (b"connection", b"close"), *self._server]
        try:
            with trio.move_on_after(5):
                out = conn.send(h11.Response(status_code=reject.status, headers=headers, reason=HTTPStatus(reject.status).phrase.encode()))
                if client.method != b"HEAD":  # the answer to a HEAD has no body: h11 would refuse one, and no status line would go
                    out += conn.send(h11.Data(data=body))
                await client.stream.send_all(out + conn.send(h11.EndOfMessage()))
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            return
        # The rest of what the client sends (an oversized head, a refused body) is still unread.
        client.reading.cancel()
        await client.finished.wait()  # the reader is off the socket: one receiver at a time
        await _linger(client.stream)


class _Client:
    """One connection: h11's state, fed by a reader task that lives as long as the connection.

    The reader owns the socket's receiving side: it is what notices a client hanging up while its
    request is served (and cancels ``serving``), and its cancel scope's deadline is the read
    timeout of whatever the connection is waiting for (next request, head, body). One task per
    connection rather than per request keeps a keep-alive request's cost down.
    """

    def __init__(self, stream: trio.SocketStream, limits: Limits) -> None:
        self.stream = stream
        self.socket = stream.socket
        self.fileno = stream.socket.fileno()
        self.arrived = 0.0  # when the request being read reached the socket (time.time())
        self.delay = 0.0  # how long the last request waited before its head was parsed
        self.first = True  # is it the connection's first request?
        self.held = False  # is the request being read one that was held back after a shed?
        self.method = b""  # of the request whose head was read last
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_bytes(limits))
        self.unparsed = h11_internals.unparsed_reader(self.h11)  # looked at several times a request: uncopied where it may be
        # Head and body are consumed as they arrive, so this bounds input waiting behind an answer:
        # a usual head and the read buffer; only a head still arriving may grow to the limits.
        self.read_behind = min(limits.max_header_bytes, _USUAL_HEAD) + limits.read_buffer_bytes
        self.read_ahead = max_head_bytes(limits) + limits.read_buffer_bytes
        self.grace = limits.hangup_grace
        self.reading = trio.CancelScope()  # the reader's; cancelled = read timeout or shutdown
        self.serving: trio.CancelScope | None = None  # the handler's, while a request is served
        self.held_back: trio.Event | None = None  # set to end the hold after a shed
        self.hung_up = False
        self.started = False  # has the request being read begun to arrive?
        self._done_reading = False
        self._arrived = trio.Event()
        self._room = trio.Event()
        self.finished = trio.Event()  # the reader has returned

    async def read(self) -> None:
        with self.reading:
            while True:
                room = self._room_left()
                if room <= 0:
                    self._room = trio.Event()  # enough read ahead: wait for the requests to be served
                    await self._room.wait()
                    continue
                try:
                    # Never more than the room left: each connection's buffer stays within read_ahead.
                    data, ancillary = await receive.recvmsg(self.socket, min(room, _RECEIVE_CHUNK), _ANCILLARY_SIZE)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""  # reset by the peer: the same as a hang-up here
                if data and self.h11.their_state is h11.IDLE and not self.unparsed():
                    self.arrived = _received_at(ancillary)  # the first bytes of a request
                self.h11.receive_data(data)  # b"" tells h11 the peer closed
                if not data:
                    self.hung_up = True
                    if self.serving is not None:
                        self.hangup_deadline()
                    if self.held_back is not None:  # gone: nothing to hold back for
                        self.held_back.set()
                    break
                self._arrived.set()
        self._done_reading = True
        self._arrived.set()
        self.finished.set()

    def _room_left(self) -> int:
        """How much more may be read: up to ``read_behind`` unparsed bytes, so that a client that
        pipelines, or sends and never reads, costs little; past that only while h11 waits for the
        rest of a head (none complete in the buffer), up to a whole head at the limits."""
        unparsed = self.unparsed()
        room = self.read_behind - len(unparsed)
        if room <= 0 and self.h11.their_state is h11.IDLE and b"\r\n\r\n" not in unparsed:
            room = self.read_ahead - len(unparsed)
        return room

    def hangup_deadline(self) -> None:
        """EOF: gone, or only half-closed; the handler gets ``hangup_grace`` to answer either way."""
        serving = self.serving
        if serving is not None:
            serving.deadline = min(serving.deadline, trio.current_time() + self.grace)

    def consumed(self, held: bool) -> None:
        """A request cycle ended: the reader may read ahead again; ``held``: the connection was held
        back after a shed."""
        self.started = False
        self.method = b""
        self.first = False
        self.held = held
        if self.unparsed():  # pipelined: it has waited behind its own connection until now
            self.arrived = time.time()
        self._room.set()

    async def next_event(self, timeout: float, on_start: Callable[[_Client], None] | None = None) -> Any:
        """h11's next event, waiting up to ``timeout`` for the reader if h11 needs data; None once
        reading stopped (timeout, shutdown) with h11 still needing data.

        The read deadline is set only when there is something to wait for: a request that arrived
        whole (most of them) costs no deadline changes, which trio pays for in its deadline heap.
        """
        conn = self.h11
        while True:
            if conn.their_state is h11.IDLE:
                fault = _head_fault(self.unparsed())
                if fault is not None:
                    raise _Reject(400, fault)
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise _Reject(exc.error_status_hint, str(exc) or "malformed request") from None
            if event is not h11.NEED_DATA:
                return event
            if self.reading.deadline == math.inf:
                self.reading.deadline = trio.current_time() + timeout
            if not self.started and self.unparsed():
                self.started = True
                if on_start is not None:
                    on_start(self)
            if self._done_reading:
                return None
            self._room.set()  # h11 needs more than it holds: a read-ahead pause must end (a long body)
            self._arrived = trio.Event()
            await self._arrived.wait()

    def no_timeout(self) -> None:
        if self.reading.deadline != math.inf:
            self.reading.deadline = math.inf


async def _linger(stream: trio.SocketStream) -> None:
    """Shut our side, then read and drop what the client still sends, for up to LINGER seconds and
    LINGER_BYTES: closing a socket with unread input resets the connection, and a reset can destroy
    the answer just sent before the client has read it (what nginx's ``lingering_close`` is for)."""
    with trio.move_on_after(LINGER):
        try:
            await stream.send_eof()
            left = LINGER_BYTES
            while left > 0 and (data := await stream.receive_some(_RECEIVE_CHUNK)):
                left -= len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


class _BadRequest:
    """A request h11 accepted but the fetch API cannot represent (e.g. a GET with a body)."""

    def __init__(self, message: str) -> None:
        self.message = message


def _head_fault(data: bytes | bytearray) -> str | None:
    """Why a complete head waiting in ``data`` must be refused, if it must; None while it is incomplete."""
    end = _BLANK_LINE.search(data)
    if end is None:
        return None
    stop = end.end()
    if data.count(b"\n", 0, stop) != data.count(b"\r\n", 0, stop):
        return "a line of the request head ends in a bare LF, not CRLF"
    if data.find(b"\n ", 0, stop) >= 0 or data.find(b"\n\t", 0, stop) >= 0:
        return "obsolete line folding (a header line that begins with a space or tab)"
    return None


class _Passes(trio.abc.Instrument):
    """Calls ``on_pass()`` as each scheduler pass begins (after trio's wait for I/O), and
    ``ran(seconds)`` as it ends, with how long it ran."""

    def __init__(self, on_pass: Callable[[], None], ran: Callable[[float], None]) -> None:
        self._on_pass = on_pass
        self._ran = ran
        self._began = math.nan

    def after_io_wait(self, timeout: float) -> None:
        self._on_pass()
        self._began = time.perf_counter()

    def before_io_wait(self, timeout: float) -> None:
        if self._began == self._began:  # not NaN: a pass began
            self._ran(time.perf_counter() - self._began)


class _SchedStat:
    """How long the calling thread has been runnable but waiting for a CPU, from Linux's
    ``/proc/thread-self/schedstat`` (its second field, nanoseconds); read with ``pread`` on a
    descriptor kept open (a microsecond), so it is the thread that opened it that is read."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls) -> _SchedStat | None:
        try:
            schedstat = cls(os.open("/proc/thread-self/schedstat", os.O_RDONLY))
            schedstat.read()
        except (OSError, ValueError, IndexError):
            return None  # not Linux, or a kernel without scheduler statistics
        return schedstat

    def read(self) -> float:
        return int(os.pread(self.fd, 128, 0).split()[1]) * 1e-9

    def close(self) -> None:
        os.close(self.fd)


ACCEPT_BATCH = 32
"""The most connections taken from one listener's backlog per scheduler pass."""
REFUSALS, REFUSAL_WINDOW = 100, 0.1
"""While the server is full (max_connections), at most REFUSALS connections are taken (and refused)
per REFUSAL_WINDOW seconds: 1,000 a second, a few percent of a CPU."""


_ACCEPT_RETRY = 0.1  # seconds before accepting again after running out of descriptors or memory
# accept() errors that say a connection died in the backlog: take the next one
_ACCEPT_SKIP = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENOPROTOOPT, errno.EHOSTDOWN,
                          errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH, errno.ENETDOWN})
_ACCEPT_FULL = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


def _accept_waiting(raw: socket.socket, batch: int) -> list[socket.socket] | None:
    """The connections waiting in a listening socket's backlog, up to ``batch``; None when the
    process is out of descriptors or memory (then nothing is taken for a while)."""
    accepted: list[socket.socket] = []
    while len(accepted) < batch:
        try:
            sock, _ = raw.accept()
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno in _ACCEPT_SKIP:
                continue
            if exc.errno in _ACCEPT_FULL:
                log.error("accept failed (%s): taking no connection for %gs", os.strerror(exc.errno), _ACCEPT_RETRY)
                return accepted or None
            raise
        accepted.append(sock)
    return accepted


def _read_to_end(sock: socket.socket) -> bool:
    """Read and drop what a refused client sent (``LINGER_BYTES`` at most per call); True once it
    has closed (or the socket failed)."""
    try:
        for _ in range(LINGER_BYTES // _RECEIVE_CHUNK):
            if not sock.recv(_RECEIVE_CHUNK):
                return True
    except BlockingIOError:
        pass
    except OSError:
        return True
    return False


def _log_client_fault(stream: trio.SocketStream, status: int) -> None:
    """One line per client fault, rate-limited: the status and the peer, nothing the client sent."""
    try:
        peer = stream.socket.getpeername()[0]
    except OSError:
        peer = "?"
    client_faults.warning("%d %s answered to a client at %s", status, HTTPStatus(status).phrase, peer)


_USUAL_HEAD = 16 * 1024
"""A head as large as nearly all are: what may wait unparsed behind a request in service."""


def max_head_bytes(limits: Limits) -> int:
    """The largest request head read whole: the target and the headers at their limits, and the
    rest of the request line and the blank line (the longest method workerd serves is 10 bytes)."""
    return limits.max_url_bytes + limits.max_header_bytes + 64


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # h11 has already checked it is a number
    return None


def _received_at(ancillary: list[tuple[int, int, bytes]]) -> float:
    """When the data recvmsg returned reached the socket (time.time()); now without a timestamp."""
    for _, _, data in ancillary:
        if len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds + nanoseconds * 1e-9
    return time.time()


def _to_request(head: h11.Request, body: bytes) -> Request | _BadRequest:
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers]
    target = head.target.decode("utf-8", "replace")  # raw UTF-8 reaches the worker as it came, as on workerd
    method = head.method.decode("latin-1")
    if target.startswith(("http://", "https://")):
        url = target
    elif target.startswith("/"):
        host = next((value for name, value in headers if name == "host"), "")
        if not host:
            return _BadRequest("missing Host header")
        if _HOST.fullmatch(host) is None:
            return _BadRequest(f"malformed Host header {host[:100]!r}")
        url = f"http://{host}{target}"
    else:
        return _BadRequest(f"unsupported request target {target[:100]!r}")
    try:
        request = Request.incoming(url, method, headers, body or None)
        request.host  # noqa: B018 -- parse the URL now (the handler would anyway): a bad one is the client's 400
    except (TypeError, ValueError) as exc:
        return _BadRequest(str(exc))
    return request


