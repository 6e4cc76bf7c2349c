"""The live load generator (``edge serve --traffic``), against a real ingress on a real socket."""

from __future__ import annotations

import trio
from ingress_server import RunningServer

from edge.live.ingress import Limits
from edge.live.loadgen import LoadGenerator
from edge.scenario import config

ONE_USER = """
[scenario]
duration = "{duration}"

[[services]]
name = "app"
routes = ["example.com/*"]
model = {{ latency = "1ms" }}

[[traffic]]
users = 1
think = "{think}"
requests = [{{ method = "GET", url = "https://example.com/" }}]
"""


def _run(tmp_path, *, think: str, idle_timeout: float, seconds: float = 2.0):
    path = tmp_path / "scenario.toml"
    path.write_text(ONE_USER.format(duration=f"{seconds}s", think=think))
    loaded = config.load(path)

    async def main() -> None:
        with trio.move_on_after(seconds):  # a live group runs until the server stops
            await generator.run()

    with RunningServer(Limits(idle_timeout=idle_timeout)) as server:
        generator = LoadGenerator(loaded, "127.0.0.1", server.port, seed=1)
        trio.run(main)
    return generator.stats


def test_a_kept_alive_connection_the_server_closed_while_idle_is_replaced_not_failed(tmp_path):
    """The server closes a connection idle for 0.2 s; the user thinks 0.5 s between requests, so
    every request after the first finds its pooled connection closed. Each is sent again on a
    new connection, as HTTP clients do: none fails."""
    stats = _run(tmp_path, think="0.5s", idle_timeout=0.2)
    assert stats.sent >= 3 and stats.failed == 0 and stats.answered == stats.sent


def test_a_connection_still_open_is_reused(tmp_path):
    """Thinking less than the idle timeout, the user keeps one connection: the server sees one."""
    opened = []
    original = trio.open_tcp_stream

    async def counting(*args, **kwargs):
        opened.append(args)
        return await original(*args, **kwargs)

    trio.open_tcp_stream = counting
    try:
        stats = _run(tmp_path, think="0.05s", idle_timeout=5.0, seconds=1.0)
    finally:
        trio.open_tcp_stream = original
    assert stats.sent >= 5 and stats.failed == 0 and len(opened) == 1
