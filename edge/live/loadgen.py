"""``edge serve --traffic``: the scenario's traffic groups, in real time, over real sockets.

The same request mixes and arrival profiles the simulation uses are sent as HTTP/1.1 (h11 as the
client side) to the server's own ingress, so one command gives live dashboards with realistic
traffic. Open groups start each request at its time whether or not earlier ones have answered,
spread over a pool of keep-alive connections that grows when every connection is busy; closed
groups are one task per user. (Client timeouts and max_inflight apply to simulated runs.)
"""

from __future__ import annotations

import logging
import math
import random

import h11
import trio

from edge.live import receive
from edge.scenario import config
from edge.scenario.arrivals import Arrivals
from edge.platform.distributions import Distribution
from edge.platform.fetch import Request
from edge.engine.traffic import ReplaySchedule, RequestMix, plan_traffic

log = logging.getLogger("edge.live.loadgen")

REQUEST_TIMEOUT = 30.0


class LoadStats:
    def __init__(self) -> None:
        self.sent = 0
        self.answered = 0
        self.failed = 0  # no answer: connection refused or reset, or the timeout


class _Stale(Exception):
    """A kept-alive connection the server had closed (its idle timeout) before this request came:
    nothing of an answer arrived. Any HTTP client sends the request again on a new connection."""


class _Connection:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.used = False  # has it carried a request before this one?

    async def exchange(self, request: Request, body: bytes) -> int:
        """Send one request and read its whole answer; returns the status."""
        target = request.url.split("://", 1)[1]
        host, _, rest = target.partition("/")
        headers = [("host", host), *request.headers.raw(), ("content-length", str(len(body)))]
        out = self.h11.send(h11.Request(method=request.method, target="/" + rest, headers=headers))
        if body:
            out += self.h11.send(h11.Data(data=body))
        out += self.h11.send(h11.EndOfMessage())
        reused, self.used = self.used, True
        try:
            await self.stream.send_all(out)
        except trio.BrokenResourceError:
            if reused:
                raise _Stale from None
            raise
        status, answered = 0, False
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await receive.recv(self.stream, receive.BUFFER_BYTES)
                except OSError:  # reset
                    if reused and not answered:
                        raise _Stale from None
                    raise
                if reused and not data and not answered:
                    raise _Stale
                answered = True
                self.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                return status
            elif isinstance(event, h11.ConnectionClosed):
                raise trio.BrokenResourceError("server closed the connection")

    def reusable(self) -> bool:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return True
        return False


class LoadGenerator:
    """The scenario's traffic groups against ``host:port``; runs until cancelled or the groups end."""

    def __init__(self, loaded: config.LoadedScenario, host: str, port: int, *, seed: int) -> None:
        self.loaded = loaded
        self.host = host
        self.port = port
        self.seed = seed
        self.stats = LoadStats()
        self._idle: list[_Connection] = []

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for plan in plan_traffic(self.loaded, seed=self.seed):
                if plan.arrivals is None:
                    assert plan.users is not None and plan.think is not None
                    for _ in range(plan.users):
                        nursery.start_soon(self._user, plan.mix, plan.think, plan.start, plan.length, plan.rng)
                else:
                    nursery.start_soon(self._open, plan.mix, plan.arrivals, plan.start, plan.length, plan.rng, nursery)

    async def _open(self, mix: RequestMix | ReplaySchedule, arrivals: Arrivals | ReplaySchedule, start: float, length: float, rng: random.Random, nursery: trio.Nursery) -> None:
        await trio.sleep(start)
        began = trio.current_time()
        at = 0.0
        while (at := arrivals.after(at, length)) != math.inf:
            await trio.sleep_until(began + at)
            nursery.start_soon(self._send, mix.draw(rng))

    async def _user(self, mix: RequestMix | ReplaySchedule, think: Distribution, start: float, length: float, rng: random.Random) -> None:
        await trio.sleep(start + think.sample(rng))
        ends = trio.current_time() + length
        while trio.current_time() < ends:
            await self._send(mix.draw(rng))
            await trio.sleep(think.sample(rng))

    async def _send(self, request: Request) -> None:
        self.stats.sent += 1
        body = await request.bytes()
        connection = self._idle.pop() if self._idle else None
        try:
            with trio.fail_after(REQUEST_TIMEOUT):
                if connection is not None:
                    try:
                        await connection.exchange(request, body)
                    except _Stale:
                        await connection.stream.aclose()
                        connection = None
                if connection is None:
                    connection = _Connection(await trio.open_tcp_stream(self.host, self.port))
                    await connection.exchange(request, body)
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, h11.ProtocolError) as exc:
            self.stats.failed += 1
            if self.stats.failed in (1, 10, 100, 1000):
                log.warning("live traffic: %d request(s) got no answer (latest: %s)", self.stats.failed, exc or type(exc).__name__)
            if connection is not None:
                await connection.stream.aclose()
            return
        self.stats.answered += 1
        if connection.reusable():
            self._idle.append(connection)
        else:
            await connection.stream.aclose()
