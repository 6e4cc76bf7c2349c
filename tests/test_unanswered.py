"""Nothing unanswered goes unseen: a request still waiting when the run ends is an error of its
group, in the summary, the thresholds and the exit code; and a scenario may cut requests itself
at a wall-time ``request_limit`` (off by default, as on the platform)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import send, text
from edge.engine.simulate import simulate
from edge.platform.fetch import Request
from edge.report.build import build_report, failed_thresholds
from edge.scenario.errors import ConfigError

SLEEPER = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    await ctx.sleep(request.url.rsplit("/", 1)[1] + "ms")
    return Response("done")
"""

SCENARIO = """
thresholds = ["errors == 0", "unanswered == 0"]

[scenario]
duration = "1s"
drain = "1s"
{extra}

[[services]]
name = "app"
routes = ["example.com/*"]
worker = "app.py"
"""


def run(make_scenario, sleeps_ms: list[int], extra: str = ""):
    """One request per sleep, each sent at 0.5 s; the run ends at 2 s at the latest (1 s + 1 s drain)."""
    loaded = make_scenario(SCENARIO.format(extra=extra), {"app.py": SLEEPER})
    answered = []

    def setup(topology, front, clock):
        for ms in sleeps_ms:
            clock.call_later(0.5, lambda ms=ms: front.submit(Request(f"https://example.com/{ms}"), 0.5, answered.append))

    result = simulate(loaded, seed=1, setup=setup)
    return result, build_report(result), answered


def test_a_request_answered_just_before_the_drain_ends_is_not_unanswered(make_scenario):
    result, report, answered = run(make_scenario, [1499])  # answered at 1.999 s
    assert (result.unanswered, report.clients.unanswered, report.clients.errors) == (0, 0, 0)
    assert [r.status for r in answered] == [200]
    assert failed_thresholds(report) == []


def test_a_request_still_waiting_after_the_drain_is_an_error_of_its_group(make_scenario):
    result, report, answered = run(make_scenario, [1501, 10, 3_600_000])  # 2.001 s, 0.51 s, an hour
    assert [r.status for r in answered] == [200]
    c = report.clients
    assert (result.unanswered, c.unanswered, c.requests, c.errors) == (2, 2, 3, 2)
    assert c.error_ratio == pytest.approx(2 / 3)
    assert report.groups["http"].unanswered == 2
    assert sum(report.series.clients.errors) == 2  # in the last interval
    assert sorted(t.threshold for t in failed_thresholds(report)) == ["errors == 0", "unanswered == 0"]


def test_edge_run_says_so_and_exits_1(tmp_path):
    (tmp_path / "app.py").write_text(SLEEPER)
    (tmp_path / "s.toml").write_text(SCENARIO.format(extra="") + """
[[traffic]]
arrivals = "constant(4/s)"  # at 0.25, 0.5 and 0.75 s
requests = [{ url = "https://example.com/5000" }]
""")
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "run", str(tmp_path / "s.toml"), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "edge: 3 request(s) never answered: still waiting when the run ended, after its 1s drain" in proc.stderr
    assert "never answered 3" in proc.stdout


LIMITED = 'request_limit = "100ms"'


@pytest.mark.parametrize(("sleep_ms", "status"), [(99, 200), (100, 504), (101, 504)])
def test_request_limit_cuts_at_the_limit(make_scenario, sleep_ms, status):
    loaded = make_scenario(SCENARIO.format(extra=LIMITED), {"app.py": SLEEPER})
    (response,), result = send(loaded, [Request(f"https://example.com/{sleep_ms}")])
    assert response.status == status
    if status == 504:
        assert response.headers.get("x-edge-error") == "wall-limit" and text(response) == "wall limit"
    clients = build_report(result).clients
    assert (clients.requests, clients.errors, clients.unanswered) == (1, 0 if status == 200 else 1, 0)


def test_request_limit_must_be_positive(make_scenario):
    with pytest.raises(ConfigError, match=r"scenario\.request_limit: expected a positive duration"):
        make_scenario(SCENARIO.format(extra='request_limit = "0s"'), {"app.py": SLEEPER})


@pytest.mark.parametrize("concurrency", [1, 2])  # 1: a slot task runs it; 2: the ingress's task does (inline)
def test_request_limit_holds_live(tmp_path, concurrency):
    """Live, the platform answers 504 at the limit and the request's work stops (its slot is free:
    the next request is served at once)."""
    import http.client
    import time

    import delays
    from live import serve

    (tmp_path / "app.py").write_text(SLEEPER)
    (tmp_path / "s.toml").write_text(SCENARIO.format(extra='request_limit = "200ms"').replace('worker = "app.py"', f'worker = "app.py"\nconcurrency = {concurrency}'))
    with serve(str(tmp_path / "s.toml")) as served:
        for path, status in (("/5000", 504), ("/1", 200)):
            conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
            with delays.measured(served.process) as waited:
                started = time.monotonic()
                conn.request("GET", path, headers={"Host": "example.com"})
                response = conn.getresponse()
                elapsed = time.monotonic() - started
            assert (response.status, response.read()) == (status, b"wall limit" if status == 504 else b"done")
            assert elapsed < 1.0 + waited.seconds  # the limit, not the 5 s the request would have taken
            conn.close()
