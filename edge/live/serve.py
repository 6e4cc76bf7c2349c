"""Live mode: the scenario's actors in real time behind the HTTP ingress.

The topology is the one ``edge run`` builds, on a ``RealClock``: synthetic workers wait in real
time, code workers run for real. Requests come in through ``HttpServer`` and leave through the same
``FrontDoor`` the simulation uses, so live and simulated runs record the same metrics.

Besides the scenario's routes, the main port answers ``/metrics`` (Prometheus text format) and
``/healthz``, and the dashboard (``/dashboard``, polling ``/dashboard.json``: edge/live/dashboard.py)
for requests addressed to the server itself (``localhost`` or an IP address, the way a
Prometheus scrape or a health check addresses it) when no route claims that host. A separate
``--metrics-port`` serves them alone. SIGINT/SIGTERM drain: the listeners close, requests in flight
get ``drain`` seconds to finish, whatever is left is answered 503, and the process exits 0.
Once a burst has left ``RELEASE_FREE`` bytes of the heap free, they go back to the kernel.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket
from typing import Any, Callable

import h11
import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors.environment import inline_target
from actors.supervisor import Supervisor
from edge.scenario.resolved import LoadedScenario
from edge.live.admin import AdminApi
from edge.live.dashboard import Dashboard, page
from edge.platform import memory, runs, watchdog
from edge.platform.clock import RealClock
from edge.platform.fetch import Request, Response
from edge.live.ingress import HttpServer, Limits
from edge.live.loadgen import LoadCollector, LoadGenerator
from edge.metrics.exposition import registry_for
from edge.metrics.recorders import RunMetrics
from edge.engine.front_door import FrontDoor
from edge.engine.topology import Topology, build, start_actors
from edge.engine.rollout import schedule_rollouts
from edge.engine.timeline import TimelineEntry, schedule_timeline
from edge.platform.user_errors import EdgeError

log = logging.getLogger("edge.live.serve")


class Endpoint:
    """Where a listener ended up (port 0 picks a free port)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class LiveRuntime:
    """One live topology and the handlers that expose it."""

    def __init__(self, loaded: LoadedScenario, *, admin_token: str, seed: int | None = None) -> None:
        meta = loaded.spec.scenario
        self.loaded = loaded
        self.clock = RealClock()
        self.metrics = RunMetrics()
        self.registry = registry_for(self.metrics)
        self.topology: Topology = build(loaded, seed=meta.seed if seed is None else seed, clock=self.clock, metrics=self.metrics, live=True)
        self.front = FrontDoor(self.topology, meta, self.clock, self.metrics)
        self.admin = AdminApi(self.topology.routers, self.topology.rollouts, token=admin_token, environments=self.topology.environments)
        self.timeline: list[TimelineEntry] = []
        self.ingress: HttpServer | None = None  # the main port's server, once serving: read at each scrape
        self.dashboard = Dashboard(self.metrics, self.clock, self.timeline, meta.cpu_limit.seconds, self.topology.rollouts)

    async def handle(self, request: Request) -> Response:
        """The main port: platform endpoints for requests addressed to the server, else routes."""
        if _addressed_to_server(request.host) and self.topology.routes.match(request.host, request.path) is None:
            platform = self.platform_endpoint(request)
            if platform is not None:
                return platform
            if request.path == "/":
                return Response(self.index(), headers={"content-type": "text/plain; charset=utf-8"})
        return await self.fetch(request)

    def exempt(self, head: h11.Request) -> bool:
        """A health check or a scrape addressed to the server itself, which admission control
        never queues nor sheds: a busy server that answers its health check 503 gets restarted,
        and its metrics go dark exactly when they are needed."""
        path = head.target.partition(b"?")[0]
        if path not in (b"/healthz", b"/metrics"):
            return False
        host = _hostname(next((value for name, value in head.headers if name == b"host"), b"").decode("latin-1"))
        return _addressed_to_server(host) and self.topology.routes.match(host.lower(), path.decode()) is None

    def platform_endpoint(self, request: Request) -> Response | None:
        if request.path == "/metrics":
            self.metrics.tasks = _count_tasks(trio.lowlevel.current_root_task())
            if self.ingress is not None:
                self.metrics.ingress_in_flight = self.ingress.in_flight
                self.metrics.admission_limit = self.ingress.admission_limit
            return Response(generate_latest(self.registry), headers={"content-type": CONTENT_TYPE_LATEST})
        if request.path == "/healthz":
            return Response("ok\n")
        if request.path == "/dashboard":
            return Response(page(self.loaded.spec.scenario.name), headers={"content-type": "text/html; charset=utf-8"})
        if request.path == "/dashboard.json":
            return Response(self.dashboard.json(), headers={"content-type": "application/json", "cache-control": "no-store"})
        return None

    def index(self) -> str:
        """What ``/`` on the server's own address answers when no route of the scenario takes it:
        the server's endpoints, and how to reach the scenario's routes (their hosts), instead of a
        bare 404 ``error code: 1000`` to someone trying the URL the server printed."""
        lines = [
            f"edge serve: {self.loaded.spec.scenario.name}",
            "",
            "  /dashboard   the live dashboard (a page for a browser)",
            "  /metrics     Prometheus metrics",
            "  /healthz     health check",
        ]
        if self.admin.listener is not None:
            host, port = self.admin.listener
            host = f"[{host}]" if ":" in host else host  # an IPv6 address
            lines.append(f"  admin API    http://{host}:{port} (Authorization: Bearer TOKEN; edge weight, edge versions)")
        routes = [str(route) for service in self.loaded.spec.services for route in service.routes]
        if routes:
            lines += ["", "The scenario's routes answer requests that name their host, e.g.", "  curl -H 'Host: HOST' URL",
                      "Routes: " + ", ".join(routes[:20]) + (f" and {len(routes) - 20} more" if len(routes) > 20 else "")]
        return "\n".join(lines) + "\n"

    async def metrics_only(self, request: Request) -> Response:
        """The ``--metrics-port`` handler."""
        return self.platform_endpoint(request) or Response("not found: /metrics, /healthz and /dashboard only\n", status=404)

    async def fetch(self, request: Request) -> Response:
        """Send one top-level request through the front door and wait for its answer."""
        answered = trio.Event()
        answer: list[Response] = []

        def done(response: Response) -> None:
            answer.append(response)
            answered.set()

        opened = self.front.open(request, self.clock.now(), done)
        if opened is None:  # no route: answered already
            return answer[0]
        call, post = opened
        entry = inline_target(post)
        if entry is not None and entry.has_room_inline():
            # Served in this task: no hand-over to a slot task and back (see serve_inline). The
            # request limit (FrontDoor._cut) answers first and cancels this scope, as it would a
            # slot's; the client hanging up cancels this task, and the worker with it.
            with trio.CancelScope() as scope:
                call.scope = scope
                try:
                    await entry.serve_inline(call)
                finally:
                    call.scope = None
            return answer[0]
        self.front.post(call, post)
        try:
            await answered.wait()
        finally:
            if not answer:  # cancelled: the client hung up, or drain ran out
                call.cancel()
        return answer[0]

    async def run_actors(self, nursery: trio.Nursery) -> Supervisor:
        supervisor = start_actors(self.topology, nursery)
        nursery.start_soon(self.clock.run, name="real clock timers")
        nursery.start_soon(self.dashboard.run, name="dashboard readings")
        return supervisor


def _count_tasks(task: trio.lowlevel.Task | None) -> int:
    """Tasks alive under ``task``, itself included (iteratively: nurseries nest as deep as calls do)."""
    count, stack = 0, [task] if task is not None else []
    while stack:
        task = stack.pop()
        count += 1
        stack.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return count


_UNQUEUED = Limits(queue_delay_target=0)
"""The admin API's and ``--metrics-port``'s servers: no admission control (a worker's stall must not
shed a scrape or an operator's command); only the fixed ``max_in_flight``."""


def _hostname(host: str) -> str:
    """A ``Host`` header's name, without its port or brackets."""
    if host.startswith("["):  # [::1]:8787
        return host[1 : host.find("]")]
    if host.count(":") == 1:  # 127.0.0.1:8787, localhost:8787
        return host.partition(":")[0]
    return host  # no port, or a bare IPv6 address


def _addressed_to_server(host: str) -> bool:
    name = _hostname(host)
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class ListenError(EdgeError):
    """An address the server cannot listen on: one line naming it and the flag that sets it."""


_LISTEN_HINTS = {
    errno.EADDRINUSE: "the port is taken (another edge serve?): choose another with {port_flag}, or 0 for any free one",
    errno.EACCES: "ports under 1024 need privileges: choose one above with {port_flag}",
    errno.EADDRNOTAVAIL: "{host} is not an address of this machine: choose one with {host_flag}",
}


async def _listen(server: HttpServer, nursery: trio.Nursery, host: str, port: int, flags: tuple[str, str]) -> Endpoint:
    """Listen on host:port for ``server``; ``flags`` are the options that set them (host, port),
    named when the address cannot be used (a busy port, a privileged one, an address not here)."""
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        host_flag, port_flag = flags
        hint = _LISTEN_HINTS.get(exc.errno, "") if not isinstance(exc, socket.gaierror) else f"no such host name: choose one with {host_flag}"
        why = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {host}:{port} ({host_flag} {host} {port_flag} {port}): {why.lower()}"
                          + (f"; {hint.format(host=host, host_flag=host_flag, port_flag=port_flag)}" if hint else "")) from None
    nursery.start_soon(server.serve, listeners)
    bound = listeners[0].socket.getsockname()
    return Endpoint(host, bound[1])


RELEASE_FREE = 8 * 1024 * 1024
"""Free heap (bytes) at which it is handed back to the kernel: a burst's leftovers, not a steady
server's churn (see edge.platform.memory)."""
RELEASE_CHECK = 5.0
"""Seconds between looks at the free heap."""


async def serve(
    loaded: LoadedScenario,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    metrics_port: int | None = None,
    admin_host: str = "127.0.0.1",
    admin_port: int = 8788,
    admin_token: str,
    limits: Limits | None = None,
    server_header: str = "edge",
    drain: float = 10.0,
    seed: int | None = None,
    traffic: bool = False,
    on_ready: Callable[[dict[str, Endpoint]], Any] | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM, then drain; returns the exit code (0).

    ``traffic`` also drives the scenario's traffic groups at the ingress, over real sockets.
    The server is a run of its own (``runs.new``), entered before it builds anything or starts a
    task: every task it starts is in it.
    """
    with runs.new():
        live = LiveRuntime(loaded, admin_token=admin_token, seed=seed)
        ingress = HttpServer(live.handle, limits, rejected=live.metrics.ingress_rejected, faults=live.metrics.ingress_faults,
                             server=server_header, exempt=live.exempt)
        live.ingress = ingress
        servers = [ingress]
        step_limit = loaded.spec.scenario.step_limit
        with watchdog.armed(watchdog.STEP_LIMIT_LIVE if step_limit is None else step_limit.seconds, sigint=False):
            return await _serve(live, ingress, servers, loaded, host=host, port=port, metrics_port=metrics_port, admin_host=admin_host,
                                admin_port=admin_port, drain=drain, seed=seed, traffic=traffic, on_ready=on_ready)


async def _serve(live: LiveRuntime, ingress: HttpServer, servers: list[HttpServer], loaded: LoadedScenario, *, host: str, port: int,
                 metrics_port: int | None, admin_host: str, admin_port: int, drain: float, seed: int | None, traffic: bool,
                 on_ready: Callable[[dict[str, Endpoint]], Any] | None) -> int:
    async with trio.open_nursery() as nursery:
        supervisor = await live.run_actors(nursery)
        schedule_timeline(loaded.spec, live.topology, live.clock, live.timeline)
        schedule_rollouts(loaded.spec, live.topology, live.clock, live.metrics)
        endpoints = {"ingress": await _listen(ingress, nursery, host, port, ("--host", "--port"))}
        admin = HttpServer(live.admin, _UNQUEUED)
        servers.append(admin)
        endpoints["admin"] = await _listen(admin, nursery, admin_host, admin_port, ("--admin-host", "--admin-port"))
        live.admin.listening_on(admin_host, endpoints["admin"].port)  # before its first request: _listen did not yield
        if metrics_port is not None:
            metrics_server = HttpServer(live.metrics_only, _UNQUEUED)
            servers.append(metrics_server)
            endpoints["metrics"] = await _listen(metrics_server, nursery, host, metrics_port, ("--host", "--metrics-port"))
        if memory.available():
            nursery.start_soon(memory.give_back, RELEASE_FREE, RELEASE_CHECK, name="memory release")
        load = trio.CancelScope()
        # Signals are caught from before the ready lines: a SIGTERM sent as soon as they are read
        # drains like any other, rather than finding the default handler (exit 143).
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            if on_ready is not None:
                on_ready(endpoints)
            if traffic:
                target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
                generator = LoadGenerator(loaded, target, endpoints["ingress"].port, seed=loaded.spec.scenario.seed if seed is None else seed)
                live.registry.register(LoadCollector(generator))

                async def drive() -> None:
                    with load:
                        await generator.run()

                nursery.start_soon(drive)
            async for signum in signals:
                log.info("%s: closing listeners, draining requests in flight (up to %gs)", signal.Signals(signum).name, drain)
                break
        load.cancel()
        if traffic:
            log.info("%s", generator.summary(trio.current_time()))
        for server in servers:
            server.stop_accepting()
        if not await ingress.drained(drain):
            cut = ingress.abort_in_flight()
            log.warning("drain time ran out: %d request(s) answered 503", cut)
            await ingress.drained(5.0)  # the 503s are written by the connections, give them a moment
        supervisor.stop()
        nursery.cancel_scope.cancel()
    return 0
