"""The live load generator (``edge serve --traffic``), against a real ingress on a real socket: its
connections, how it keeps to its schedule (and says when it cannot), and what it exports."""

from __future__ import annotations

import logging
import random
import re
import shutil
import subprocess
import time
import urllib.request

import pytest
import trio
from ingress_server import RunningServer
from live import serve
from test_dashboards import Prometheus, promtool

from edge.engine.traffic import plan_traffic
from edge.live.ingress import HttpServer, Limits
from edge.live.loadgen import LAG_WARNING, REQUEST_TIMEOUT, WARNING_WINDOW, GroupProgress, LoadGenerator, OpenSchedule
from edge.platform.fetch import Request, Response
from edge.scenario.resolved import LoadedScenario
from scenario_builder import compose, load, service, traffic

APP = service(routes=["example.com/*"], model={"latency": "1ms"})


def _run(tmp_path, *, think: str, idle_timeout: float, seconds: float = 2.0) -> LoadGenerator:
    one_user = traffic(None, None, users=1, think=think, requests=[{"method": "GET", "url": "https://example.com/"}])
    loaded = load(tmp_path, compose(APP, traffic=[one_user], duration=f"{seconds}s"))

    async def main() -> None:
        with trio.move_on_after(seconds):  # a live group runs until the server stops
            await generator.run()

    with RunningServer(Limits(idle_timeout=idle_timeout)) as server:
        generator = LoadGenerator(loaded, "127.0.0.1", server.port, seed=1)
        trio.run(main)
    return generator


def test_a_kept_alive_connection_the_server_closed_while_idle_is_replaced_not_failed(tmp_path):
    """The server closes a connection idle for 0.2 s; the user thinks 0.5 s between requests, so
    every request after the first finds its pooled connection closed. Each is sent again on a
    new connection, as HTTP clients do: none fails, and none counts twice."""
    generator = _run(tmp_path, think="0.5s", idle_timeout=0.2)
    sent, stats = generator.groups["group0"].sent, generator.stats
    assert sent >= 3 and stats.failed == 0 and sum(stats.answered) + stats.in_flight == sent and stats.in_flight <= 1


def test_a_connection_still_open_is_reused(tmp_path):
    """Thinking less than the idle timeout, the user keeps one connection: the server sees one."""
    opened = []
    original = trio.open_tcp_stream

    async def counting(*args, **kwargs):
        opened.append(args)
        return await original(*args, **kwargs)

    trio.open_tcp_stream = counting
    try:
        generator = _run(tmp_path, think="0.05s", idle_timeout=5.0, seconds=1.0)
    finally:
        trio.open_tcp_stream = original
    assert generator.groups["group0"].sent >= 5 and generator.stats.failed == 0 and len(opened) == 1


def test_header_values_outside_ascii_are_sent_as_their_bytes_not_a_crash(tmp_path):
    """A replayed log's user agent with bytes above 0x7F (nginx logs them as \\xHH; read back, one
    character a byte, as fetch's Headers hold them) and one a scenario writes outside Latin-1: each
    is sent (Latin-1 as its bytes, anything else as UTF-8), and the server gets the logged bytes.
    h11 encodes a str value as ASCII: such a value ended the generator with UnicodeEncodeError."""
    from ingress_server import AGENTS

    (tmp_path / "access.log").write_text(
        '203.0.113.9 - - [02/Mar/2026:09:00:10 +0100] "GET /agent HTTP/1.1" 200 5 "-" "caf\\xC3\\xA9"\n' * 2)
    logged = traffic(None, None, name="log", replay="access.log", base_url="https://example.com", replay_format="clf")
    written = traffic("constant(5/s)", name="written", requests=[{"url": "https://example.com/agent", "headers": {"user-agent": "\u20ac"}}])
    loaded = load(tmp_path, compose(APP, traffic=[logged, written], duration="1s"))
    AGENTS.clear()

    async def main() -> None:
        with trio.move_on_after(1.5):
            await generator.run()

    with RunningServer() as server:
        generator = LoadGenerator(loaded, "127.0.0.1", server.port, seed=1)
        trio.run(main)
    assert generator.stats.failed == 0
    # the ingress reads header bytes as Latin-1, as workerd gives a worker a header's bytes
    assert AGENTS.count("caf\xc3\xa9") == 2
    assert set(AGENTS) == {"caf\xc3\xa9", "\u20ac".encode().decode("latin-1")} and len(AGENTS) >= 5


def test_a_header_value_is_one_byte_a_character_up_to_0xff_and_utf8_past_it():
    from edge.live.loadgen import _header_bytes

    assert _header_bytes("ok") == b"ok"
    assert _header_bytes("\xff") == b"\xff"  # the last one-byte character
    assert _header_bytes("\u0100") == b"\xc4\x80"  # the first that is not: UTF-8
    assert _header_bytes("x\ud800") == b"x\xed\xa0\x80"  # a lone surrogate from a JSON log: sent, not a crash


# -- keeping to the schedule ---------------------------------------------------------------------------

def open_toml(rate: float) -> str:
    """A steady open group at ``rate``, to a page and to a missing one."""
    steady = traffic(f"constant({rate}/s)", name="steady", requests=[{"url": "https://example.com/"}, {"url": "https://example.com/missing"}])
    return compose(APP, traffic=[steady], name="open")


def _open_scenario(tmp_path, rate: float) -> LoadedScenario:
    return load(tmp_path, open_toml(rate), file="open.toml")


def test_lag_is_how_long_the_oldest_request_due_and_not_sent_has_waited():
    group = GroupProgress()
    first, second, later = group.due(10.0), group.due(10.2), group.due(11.0)
    assert group.lag(9.0) == 0.0 and group.planned(9.0) == 0  # nothing due yet
    assert group.lag(10.5) == 0.5 and group.planned(10.5) == 2  # the one due at 11 is not
    assert group.out(first) and not group.out(first)  # a request leaves once, however often it is written
    assert group.lag(10.5) == pytest.approx(0.3) and group.planned(10.5) == 2 and group.sent == 1
    group.out(second)
    assert group.lag(10.5) == 0.0  # on time: the one left waiting is not due
    group.drop(later)
    assert (group.sent, group.dropped, group.planned(12.0), group.lag(12.0)) == (2, 1, 3, 0.0)


def test_an_open_group_drops_a_request_still_waiting_its_clients_timeout_after_its_time(tmp_path):
    # constant(1/s): arrivals at 1, 2, 3, ... seconds after the start, exactly.
    (plan,) = plan_traffic(_open_scenario(tmp_path, 1), seed=1)

    def taken_at(now: float) -> GroupProgress:
        group = GroupProgress()
        schedule = OpenSchedule(group, plan.mix, plan.arrivals, random.Random(1), began=0.0, length=plan.length)
        assert schedule.take(now) is not None
        return group

    limit = 1.0 + REQUEST_TIMEOUT  # the arrival at 1 s has waited exactly REQUEST_TIMEOUT
    for now, dropped in ((limit - 1e-9, 0), (limit, 0), (limit + 1e-9, 1)):
        group = taken_at(now)
        assert group.dropped == dropped, now
        oldest = 1.0 + dropped  # the request taken is still waiting until it is written
        assert group.lag(now) == pytest.approx(now - oldest), now
        assert group.planned(now) == int(now), now  # dropped or waiting, every arrival due counts


def test_the_warning_comes_just_past_the_lag_limit_and_once_a_window(tmp_path):
    generator = LoadGenerator(_open_scenario(tmp_path, 10), "127.0.0.1", 9, seed=1)
    group = generator.groups["steady"]
    ticket = group.due(100.0)
    assert generator.warning(100.0 + LAG_WARNING - 1e-9) is None
    assert generator.warning(100.0 + LAG_WARNING) is None  # at the limit is not past it
    first = 100.0 + LAG_WARNING + 1e-9
    line = generator.warning(first)
    assert line is not None and "0.50s behind schedule (group steady: 0 of 1 requests due sent)" in line
    assert generator.warning(first + WARNING_WINDOW - 1e-6) is None  # one a window
    assert generator.warning(first + WARNING_WINDOW) is not None  # the next window
    group.out(ticket)
    assert generator.warning(first + 3 * WARNING_WINDOW) is None  # caught up: nothing to say


async def _against(loaded, handler, seconds: float, watch, warning_window: float = WARNING_WINDOW) -> tuple[LoadGenerator, str]:
    """The generator and an ingress with ``handler`` in one event loop, as in ``edge serve --traffic``,
    for ``seconds``; ``watch(generator, elapsed)`` is called every 0.05 s meanwhile. Returns the
    generator and its shutdown line, taken as ``edge serve`` takes it when it stops."""
    server = HttpServer(handler, Limits(queue_delay_target=0))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    generator = LoadGenerator(loaded, "127.0.0.1", listeners[0].socket.getsockname()[1], seed=1, warning_window=warning_window)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve, listeners)
        nursery.start_soon(generator.run)
        start = trio.current_time()
        while (elapsed := trio.current_time() - start) < seconds:
            watch(generator, elapsed)
            await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
        summary = generator.summary(trio.current_time())
    return generator, summary


def _warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "edge.live.loadgen" and "behind schedule" in r.getMessage()]


def test_a_generator_sharing_its_loop_with_a_server_that_blocks_it_falls_behind_and_says_so_once_a_window(tmp_path, caplog):
    """Each answer holds the event loop 20 ms (a CPU-bound worker): at most 50 a second for a
    200/s schedule. The lag grows, the requests sent fall short of those due, and the warning
    comes at most once a window (1 s here)."""

    async def blocking(request: Request) -> Response:
        time.sleep(0.02)
        return Response("ok")

    readings: list[tuple[float, float, int, int]] = []

    def watch(generator: LoadGenerator, elapsed: float) -> None:
        group, now = generator.groups["steady"], trio.current_time()
        readings.append((elapsed, group.lag(now), group.sent, group.planned(now)))

    caplog.set_level(logging.WARNING, logger="edge.live.loadgen")
    trio.run(_against, _open_scenario(tmp_path, 200), blocking, 3.0, watch, 1.0)
    early = next(r for r in readings if r[0] >= 1.0)
    late = readings[-1]
    assert LAG_WARNING < early[1] < late[1], (early, late)
    assert late[3] - late[2] > early[3] - early[2] > 0  # due but not sent: more and more
    warned = [r.created for r in _warnings(caplog)]
    assert 1 <= len(warned) <= int(late[0] / 1.0) + 1, warned
    assert all(b - a >= 1.0 - 1e-3 for a, b in zip(warned, warned[1:])), warned


def test_a_generator_that_keeps_up_stays_on_schedule_and_says_nothing(tmp_path, caplog):
    """A slow server that does not hold the loop (50 ms answers, 50/s): new connections carry the
    requests while others wait, so each goes out at its time."""

    async def slow(request: Request) -> Response:
        await trio.sleep(0.05)
        return Response("ok")

    lags: list[float] = []
    caplog.set_level(logging.WARNING, logger="edge.live.loadgen")
    generator, _ = trio.run(_against, _open_scenario(tmp_path, 50), slow, 2.0,
                         lambda generator, _: lags.append(generator.groups["steady"].lag(trio.current_time())))
    assert max(lags) < LAG_WARNING and not _warnings(caplog)
    assert generator.groups["steady"].sent >= 80  # 2 s at 50/s, less the first arrival's 20 ms


SUMMARY = re.compile(r"live traffic: (\d+) requests sent = (\d+) answered(?: \(([^)]*)\))? \+ (\d+) without an answer "
                     r"\+ (\d+) in flight when it stopped; (\d+) were due = (\d+) sent \+ (\d+) dropped \(30s late\) \+ (\d+) not sent yet")


def check_summary(line: str) -> dict[str, int]:
    """The shutdown line's numbers, once checked to add up."""
    match = SUMMARY.search(line)
    assert match, line
    sent, answered, classes, failed, in_flight, due, sent_again, dropped, waiting = match.groups()
    by_class = {name: int(n) for n, name in (part.split() for part in classes.split(", "))} if classes else {}
    numbers = {"sent": int(sent), "answered": int(answered), "failed": int(failed), "in_flight": int(in_flight), "due": int(due),
               "dropped": int(dropped), "waiting": int(waiting), **by_class}
    assert numbers["sent"] == numbers["answered"] + numbers["failed"] + numbers["in_flight"], line
    assert numbers["answered"] == sum(by_class.values()), line
    assert numbers["due"] == int(sent_again) + numbers["dropped"] + numbers["waiting"] and int(sent_again) == numbers["sent"], line
    return numbers


def test_the_shutdown_line_accounts_for_every_request_in_flight_included(tmp_path):
    """Answers take 1 s, so at the stop, after 1.5 s of 20/s, about 20 requests are in flight."""

    async def handler(request: Request) -> Response:
        await trio.sleep(1.0)
        return Response("gone", status=404) if request.path == "/missing" else Response("ok")

    _, summary = trio.run(_against, _open_scenario(tmp_path, 20), handler, 1.5, lambda *_: None)
    numbers = check_summary(summary)
    assert numbers["in_flight"] > 0 and numbers["2xx"] > 0 and numbers["4xx"] > 0, numbers
    assert numbers["failed"] == numbers["dropped"] == 0


def test_serve_traffic_exports_the_generators_progress_as_prometheus_and_promtool_read_it(tmp_path):
    """`edge serve --traffic` on a real socket, scraped by a real Prometheus every second: the share
    of the schedule sent, as the metrics' help says to compute it, is 1 for a generator that keeps
    up; the scrape passes `promtool check metrics`; the shutdown line adds up."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the `prometheus` binary is not on PATH: install it (apt-get install prometheus) to run this test")
    (tmp_path / "open.toml").write_text(open_toml(50))
    share = 'sum(rate(edge_loadgen_sent_total[5s])) / sum(rate(edge_loadgen_planned_total[5s]))'
    with serve(str(tmp_path / "open.toml"), "--traffic") as served:
        prometheus = Prometheus(binary, tmp_path, f"127.0.0.1:{served.port}")
        try:
            prometheus.wait_until("a share of the schedule sent", lambda: bool(prometheus.query(share)[0]), time.monotonic() + 30)
            (sent,), _ = prometheus.query(share)
            lag, _ = prometheus.query('edge_loadgen_lag_seconds{group="steady"}')
        finally:
            prometheus.stop()
        with urllib.request.urlopen(served.metrics, timeout=5) as answer:
            scrape = answer.read()
    assert 0.9 <= float(sent["value"][1]) <= 1.1, sent
    assert lag and 0 <= float(lag[0]["value"][1]) < LAG_WARNING, lag
    checked = subprocess.run([promtool(), "check", "metrics"], input=scrape, capture_output=True, timeout=30)
    assert checked.returncode == 0 and not checked.stdout and not checked.stderr, checked
    assert b'edge_loadgen_planned_total{group="steady"}' in scrape
    numbers = check_summary(served.stderr)
    assert numbers["sent"] > 50 and numbers["in_flight"] <= 5, numbers
