"""Overload of a live ``edge serve``: 1 -> 4,096 closed-loop connections in one run.

The server is ``edge serve benchmarks/live/chain.toml`` (gateway -> auth -> app, code workers), a
process of its own started through ``edge.live.serve.serve`` (what ``edge serve`` runs) so that the
run can choose the ingress's ``Limits``; the clients are asyncio protocols in this process (no wrk needed), each sending
the chain's request, waiting for the whole answer, and sending the next at once. A shed answer
(503) is re-sent at once too, unless ``--honor-retry-after``: the hostile case, where shedding has
to be cheap for good throughput to hold.

Per step (connections 1, 4, 16, ..., 4096): good throughput (2xx per second), p50 and p99 of the
good answers' latency, the share of 503s and their median latency (these latencies for requests
not re-sent at once after a 503), the share of requests that were re-sent at once and the median
latency of their 2xx (the server holds such a connection back until the 503's Retry-After), the
median lag of the clients' own event loop (which every latency measured here includes: the clients share the machine's CPUs
with the server), connection errors, and the server's RSS after the step. Then ``--slow-readers`` clients that pipeline requests and never read
the answers, for the write timeout and buffer bounds: the server's RSS while they hang and after
they are gone.

``--compare`` starts a second server, with adaptive admission off (``queue_delay_target = 0``: a
fixed ``max_in_flight``), and runs each step against both in turn; ``--repeat N`` runs each step N
times per server, interleaved, and shows the medians (this machine's noise, with other processes
on it, is tens of percent from one run to the next).

    python benchmarks/overload.py [--quick] [--compare] [--repeat 3] [--seconds 4] [--max-connections 4096] [--slow-readers 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from served import rss_mb  # noqa: E402
from edge.live.serve import RELEASE_CHECK  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REQUEST = b"GET / HTTP/1.1\r\nHost: example.com\r\nx-custom-token: s3cret-token-0f9a\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


def serve_chain(limits: dict[str, float]) -> None:
    """The server process: ``edge serve benchmarks/live/chain.toml`` with these ``Limits`` fields."""
    import msgspec
    import trio

    from edge.live.admin_client import new_token
    from edge.live.ingress import Limits
    from edge.live.serve import serve
    from edge.scenario.load import load

    loaded = load(str(HERE / "live" / "chain.toml"))

    def ready(endpoints) -> None:
        print(f"serving on {endpoints['ingress'].url}", flush=True)

    trio.run(functools.partial(
        serve, loaded, port=0, admin_port=0, admin_token=new_token(), limits=msgspec.convert(limits, Limits), on_ready=ready,
    ))


@contextlib.contextmanager
def edge_server(limits: dict[str, float]):
    """``serve_chain(limits)`` in a process of its own, on free ports; yields (port, pid)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--serve", json.dumps(limits)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()  # the ingress URL comes first
        match = re.search(r"http://\S+:(\d+)", line)
        if match is None:
            raise SystemExit(f"edge serve did not start: {line!r}")
        yield int(match.group(1)), proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Step:
    def __init__(self) -> None:
        self.counting = False
        self.good: list[float] = []  # latencies of 2xx answers in the window
        self.shed: list[float] = []  # latencies of 503s
        # latencies of answers to requests re-sent at once after a 503, ignoring its Retry-After:
        # the server holds such a connection back until the Retry-After has passed
        self.good_resent: list[float] = []
        self.shed_resent: list[float] = []
        self.lag: list[float] = []  # the clients' own event loop lag
        self.other = 0
        self.errors = 0
        self.clients: list[Client] = []  # closed at the end of the step: the next one starts afresh


class Client(asyncio.Protocol):
    """One closed-loop connection; reconnects when the server closes it."""

    def __init__(self, step: Step, port: int, honor_retry_after: bool, running: list[bool]) -> None:
        self.step, self.port, self.honor, self.running = step, port, honor_retry_after, running
        self.buffer = b""
        self.sent_at = 0.0
        self.resent = False  # is the request in flight re-sent at once after a 503?
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.step.clients.append(self)
        self.send()

    def send(self) -> None:
        if self.running[0] and self.transport is not None and not self.transport.is_closing():
            self.sent_at = time.perf_counter()
            self.transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            match = _CONTENT_LENGTH.search(self.buffer, 0, end + 2)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(self.buffer) < total:
                return
            status = int(self.buffer[9:12])
            closing = b"connection: close" in self.buffer[:end].lower()
            self.buffer = self.buffer[total:]
            self.record(status, time.perf_counter() - self.sent_at)
            self.resent = status == 503 and not self.honor
            if closing:
                self.transport.close()  # type: ignore[union-attr]
                return
            if status == 503 and self.honor:
                asyncio.get_running_loop().call_later(1.0, self.send)
            else:
                self.send()

    def record(self, status: int, latency: float) -> None:
        step = self.step
        if not step.counting:
            return
        if 200 <= status < 300:
            (step.good_resent if self.resent else step.good).append(latency)
        elif status == 503:
            (step.shed_resent if self.resent else step.shed).append(latency)
        else:
            step.other += 1

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        self.transport = None
        if self.running[0]:
            asyncio.get_running_loop().create_task(connect(self.step, self.port, self.honor, self.running))


async def connect(step: Step, port: int, honor: bool, running: list[bool]) -> None:
    loop = asyncio.get_running_loop()
    while running[0]:
        try:
            await loop.create_connection(lambda: Client(step, port, honor, running), "127.0.0.1", port)
            return
        except OSError:
            if step.counting:
                step.errors += 1
            await asyncio.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def lag_probe(step: Step, running: list[bool]) -> None:
    """How late this process's own event loop wakes up: the clients' measured latencies include it."""
    while running[0]:
        asked = time.perf_counter()
        await asyncio.sleep(0.01)
        if step.counting:
            step.lag.append(time.perf_counter() - asked - 0.01)


async def run_step(port: int, connections: int, seconds: float, honor: bool) -> Step:
    step = Step()
    running = [True]
    await asyncio.gather(*(connect(step, port, honor, running) for _ in range(connections)))
    probe = asyncio.create_task(lag_probe(step, running))
    await asyncio.sleep(min(1.0, seconds / 4))  # warm-up: connections settle, queues fill
    step.counting = True
    await asyncio.sleep(seconds)
    step.counting = False
    running[0] = False
    await probe
    for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
        task.cancel()
    for client in step.clients:
        if client.transport is not None:
            client.transport.close()  # else the server keeps them open (and counted) until collected
    await asyncio.sleep(0)
    return step


async def slow_readers(port: int, pid: int, count: int, hold: float) -> tuple[int, float]:
    """``count`` connections that pipeline requests and never read: how many the server dropped, and
    its RSS at the end of ``hold`` seconds."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        socks.append(sock)
    burst = REQUEST * 64
    deadline = time.monotonic() + hold
    dropped = set()
    while time.monotonic() < deadline:
        for index, sock in enumerate(socks):
            if index in dropped:
                continue
            try:
                sock.send(burst)
            except BlockingIOError:
                pass
            except OSError:
                dropped.add(index)
        await asyncio.sleep(0.2)
    during = rss_mb(pid)
    for sock in socks:
        sock.close()
    return len(dropped), during


def summary(step: Step, seconds: float) -> dict[str, float]:
    """One measured step's figures."""
    good = len(step.good) + len(step.good_resent)
    sheds = len(step.shed) + len(step.shed_resent)
    answers = good + sheds + step.other
    return {
        "good/s": good / seconds,
        "p50 ms": percentile(step.good, 0.5) * 1e3,
        "p99 ms": percentile(step.good, 0.99) * 1e3,
        "503 %": 100 * sheds / answers if answers else 0.0,
        "503 p50": percentile(step.shed, 0.5) * 1e3,
        "resent %": 100 * (len(step.good_resent) + len(step.shed_resent)) / answers if answers else 0.0,
        "resent 2xx p50": percentile(step.good_resent, 0.5) * 1e3,
        "cl. lag": percentile(step.lag, 0.5) * 1e3,
        "other": step.other,
        "conn err": step.errors,
    }


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else float("nan")


def run_steps(servers: list[tuple[str, dict[str, float]]], steps: list[int], args: argparse.Namespace) -> None:
    """Each step against each server in turn, ``args.repeat`` times over (interleaved, so that a
    machine whose load drifts weighs on both alike); the median of each figure."""
    with contextlib.ExitStack() as stack:
        running = [(label, *stack.enter_context(edge_server(limits))) for label, limits in servers]
        time.sleep(0.5)
        before = {label: rss_mb(pid) for label, _, pid in running}
        for label, _, pid in running:
            print(f"{label}: pid {pid}; RSS at start {before[label]:.0f} MB")
        print(f"{args.seconds:g} s per step, {args.repeat} run(s) each (medians); shed clients "
              f"{'wait Retry-After' if args.honor_retry_after else 're-send at once'}")
        print("good/s: 2xx per second, all of them; p50/p99 of the 2xx and p50 of the 503s: of requests not re-sent at once "
              "after a 503; 'resent 2xx p50': the 2xx to requests that were (held back by the server to their Retry-After)")
        columns = list(summary(Step(), 1.0))
        print(f"{'conns':>6} {'server':>9} " + " ".join(f"{name:>{max(8, len(name))}}" for name in columns) + f" {'RSS MB':>7}")
        for connections in steps:
            runs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in running}
            for _ in range(args.repeat):
                for label, port, _ in running:
                    runs[label].append(summary(asyncio.run(run_step(port, connections, args.seconds, args.honor_retry_after)), args.seconds))
                    time.sleep(0.5)
            for label, _, pid in running:
                figures = [median([run[name] for run in runs[label]]) for name in columns]
                print(f"{connections:>6} {label:>9} " + " ".join(f"{value:>{max(8, len(name))}.1f}" for name, value in zip(columns, figures))
                      + f" {rss_mb(pid):>7.0f}", flush=True)
        for label, port, pid in running:
            if args.slow_readers:
                hold = 3.0 if args.quick else 8.0
                dropped, during = asyncio.run(slow_readers(port, pid, args.slow_readers, hold))
                time.sleep(2 * RELEASE_CHECK + 1.0)  # the server looks at its free heap this often: two looks
                print(f"{label}: {args.slow_readers} clients that never read, {hold:g} s: server dropped {dropped}; "
                      f"RSS {during:.0f} MB while they hung, {rss_mb(pid):.0f} MB after they left")
            print(f"{label}: RSS before {before[label]:.0f} MB, after {rss_mb(pid):.0f} MB", flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve_chain(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per step (default 4)")
    parser.add_argument("--max-connections", type=int, default=4096, help="last step (default 4096)")
    parser.add_argument("--factor", type=int, default=4, help="connections grow by this factor per step (default 4)")
    parser.add_argument("--slow-readers", type=int, default=300, help="clients that never read (default 300; 0 skips)")
    parser.add_argument("--honor-retry-after", action="store_true", help="shed clients wait Retry-After (1 s) before re-sending")
    parser.add_argument("--compare", action="store_true", help="a server with adaptive admission off beside the one with it on, steps interleaved")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each step per server (default 1); the medians are shown")
    parser.add_argument("--limits", default="{}", help='Limits fields as JSON, e.g. \'{"queue_delay_target": 0.01}\'')
    parser.add_argument("--quick", action="store_true", help="1 s per step, 100 slow readers")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.slow_readers = 1.0, min(args.slow_readers, 100)
    steps = []
    n = 1
    while n <= args.max_connections:
        steps.append(n)
        n *= args.factor
    limits = json.loads(args.limits)
    servers = [("on", limits)]
    if args.compare:
        servers.insert(0, ("off", {**limits, "queue_delay_target": 0}))
    print(f"servers: {'off = adaptive admission off (a fixed max_in_flight); ' if args.compare else ''}on = Limits {limits or 'defaults'}")
    run_steps(servers, steps, args)


if __name__ == "__main__":
    main()
