"""Replayed traffic (``[[traffic]] replay = FILE``): each format read into times, methods, paths and
headers; speed and loop on the schedule both drivers send; a bad line named by file and number
(exit 2); the report's description of the file; the same bytes for the same file and seed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from edge.engine.simulate import simulate
from edge.engine.behaviour import change_behaviour
from edge.engine.traffic import ReplaySchedule, plan_traffic
from edge.report.build import build_report
from edge.scenario import load as scenario_load, logformat, replay
from edge.scenario.errors import ConfigError
from edge.scenario.load import load
from edge.scenario.resolved import LoadedScenario
from edge.scenario.schema import Behaviour
from edge.scenario.values import ScaledDistribution
from edge.tune.budget import Budget
from edge.tune.tuner import tune
from scenario_builder import canary_service, compose, service, traffic, write
from edge.scenario.values import EnvironmentKey

ROOT = Path(__file__).resolve().parent.parent

APP = service("app", routes=["example.com/*"], model={"latency": "1ms"})


def replay_toml(file: str = "access.log", *, duration: str = "20s", app: dict = APP, timeline: tuple = (), **group) -> str:
    """The scenario the replays here are read in: ``group`` adds fields to its replayed traffic group,
    or (None) takes them out."""
    group = {"name": "log", "replay": file, "base_url": "https://example.com"} | group
    return compose(app, traffic=[traffic(**{"arrivals": None, "url": None, **group})], timeline=timeline, name="replay-test", duration=duration)

CLF = """\
127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326
10.0.0.2 - - [10/Oct/2000:13:55:36 -0700] "POST /orders?id=7 HTTP/1.1" 201 -
10.0.0.3 - - [10/Oct/2000:13:55:38 -0700] "DELETE /orders/7 HTTP/1.1" 204 0
"""
COMBINED = """\
127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 12 "https://ref.test/start" "Mozilla/5.0 (X11; \\"quoted\\")"
127.0.0.1 - - [10/Oct/2000:13:55:37 -0700] "GET /b HTTP/1.1" 200 12 "-" "curl/8.0"
"""
JSONL = """\
{"time": 100.25, "method": "PUT", "path": "/items/1", "headers": {"x-tenant": "a"}, "status": 200}

{"time": "1970-01-01T00:01:40Z", "path": "/items?page=2"}
{"time": 103, "path": "/"}
"""
HAR = {"log": {"version": "1.2", "entries": [
    {"startedDateTime": "2024-05-01T12:00:01.500Z", "request": {
        "method": "GET", "url": "https://www.site.test/api/x?q=1#frag", "headers": [
            {"name": ":authority", "value": "www.site.test"}, {"name": "Host", "value": "www.site.test"},
            {"name": "accept", "value": "application/json"}, {"name": "cookie", "value": "s=1"}]}},
    {"startedDateTime": "2024-05-01T12:00:00Z", "request": {"method": "POST", "url": "http://www.site.test/", "headers": []}},
]}}


def scenario(tmp_path: Path, log: str, *, file: str = "access.log", duration: str = "20s", **group) -> Path:
    (tmp_path / file).write_text(log)
    return write(tmp_path, replay_toml(file, duration=duration, **group), file="s.toml")


def entries(loaded: LoadedScenario) -> list[tuple[float, str, str, list[tuple[str, str]]]]:
    return [(e.at, e.method, e.target, e.headers) for e in loaded.replays[0].entries]


def edge(*args, hash_seed: str = "0", cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hash_seed}
    return subprocess.run([sys.executable, "-m", "edge.cli", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_common_log_format_gives_times_methods_and_paths_and_spreads_a_second(tmp_path):
    loaded = load(scenario(tmp_path, CLF))
    # Two requests logged in one second are spread over it, not sent as a burst.
    assert entries(loaded) == [(0.0, "GET", "/apache_pb.gif", []), (0.5, "POST", "/orders?id=7", []), (2.0, "DELETE", "/orders/7", [])]
    assert loaded.replays[0].format == "clf" and loaded.replays[0].file == "access.log"


def test_combined_log_format_adds_referer_and_user_agent(tmp_path):
    loaded = load(scenario(tmp_path, COMBINED))
    assert entries(loaded) == [
        (0.0, "GET", "/a", [("referer", "https://ref.test/start"), ("user-agent", 'Mozilla/5.0 (X11; "quoted")')]),  # \" as it came
        (1.0, "GET", "/b", [("user-agent", "curl/8.0")]),  # "-": no referer
    ]


def test_json_lines_take_numbers_or_iso_times_sorted_and_ignore_other_fields(tmp_path):
    loaded = load(scenario(tmp_path, JSONL, file="requests.jsonl"))
    assert loaded.replays[0].format == "jsonl"
    assert entries(loaded) == [
        (0.0, "GET", "/items?page=2", []), (0.25, "PUT", "/items/1", [("x-tenant", "a")]), (3.0, "GET", "/", []),
    ]


def test_har_keeps_every_request_header_but_the_connections_own(tmp_path):
    loaded = load(scenario(tmp_path, json.dumps(HAR), file="session.har"))
    assert entries(loaded) == [
        (0.0, "POST", "/", []),
        (1.5, "GET", "/api/x?q=1", [("accept", "application/json"), ("cookie", "s=1")]),
    ]


def test_the_format_given_overrides_the_extension(tmp_path):
    loaded = load(scenario(tmp_path, JSONL, file="requests.txt", replay_format="jsonl"))
    assert len(loaded.replays[0].entries) == 3


def _times(plan_arrivals, until=math.inf) -> list[float]:
    times, at = [], 0.0
    while (at := plan_arrivals.after(at, until)) != math.inf:
        times.append(at)
        if len(times) > 100:
            break
    return times


def test_the_schedule_both_drivers_send_speed_halves_the_span_and_builds_the_logged_requests(tmp_path):
    (plan,) = plan_traffic(load(scenario(tmp_path, CLF)), seed=1)
    assert isinstance(plan.arrivals, ReplaySchedule) and plan.mix is plan.arrivals
    assert _times(plan.arrivals) == [0.0, 0.5, 2.0]  # without loop the file ends the group
    (fast,) = plan_traffic(load(scenario(tmp_path, CLF, speed=2)), seed=1)
    sent = []
    at = 0.0
    while (at := fast.arrivals.after(at, math.inf)) != math.inf:
        request = fast.mix.draw(fast.rng)
        sent.append((at, request.method, request.url))
    assert sent == [(0.0, "GET", "https://example.com/apache_pb.gif"), (0.25, "POST", "https://example.com/orders?id=7"),
                    (1.0, "DELETE", "https://example.com/orders/7")]


def test_loop_repeats_the_file_one_mean_gap_apart_until_the_run_ends(tmp_path):
    path = scenario(tmp_path, CLF, duration="10s", loop=True)
    (plan,) = plan_traffic(load(path), seed=1)
    # span 2s over 3 requests: a pass every 3s (2s + the mean gap of 1s).
    assert _times(plan.arrivals, until=10.0) == [0.0, 0.5, 2.0, 3.0, 3.5, 5.0, 6.0, 6.5, 8.0, 9.0, 9.5]
    report = build_report(simulate(load(path)))
    assert report.groups["log"].requests == report.clients.requests == 11
    assert build_report(simulate(load(scenario(tmp_path, CLF, duration="10s")))).clients.requests == 3


def test_the_report_describes_the_replayed_file(tmp_path):
    path = scenario(tmp_path, CLF, speed=2, loop=True)
    done = edge("run", path, "--json", tmp_path / "r.json", "--duration", "5s")
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["replays"] == {"log": {"file": "access.log", "format": "clf", "requests": 3, "span_s": 2.0, "rate_per_s": 1.5,
                                          "speed": 2.0, "loop": True}}
    assert "replay log: access.log (clf), 3 requests over 2s recorded (1.5/s), sent at x2, looped" in done.stdout
    # A run without a replayed group has no such section (the golden reports stay as they were).
    (tmp_path / "plain").mkdir()
    plain = load(scenario(tmp_path / "plain", CLF))
    plain.replays, plain.spec.traffic = {}, []
    assert "replays" not in msgspec.to_builtins(build_report(simulate(plain, duration=1.0)))


def test_same_file_and_seed_give_byte_identical_reports(tmp_path):
    path = scenario(tmp_path, json.dumps(HAR), file="session.har", loop=True)
    first, second = (edge("run", path, "--seed", "3", "--quiet", "--json", tmp_path / name, hash_seed=h) for name, h in (("a.json", "1"), ("b.json", "2")))
    assert first.returncode == second.returncode == 0, first.stderr
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


@pytest.mark.parametrize(
    ("file", "log", "where", "expected"),
    [
        ("access.log", CLF.replace('"DELETE /orders/7 HTTP/1.1"', '"DELETE"'), "access.log:3", 'expected a request line "METHOD PATH PROTOCOL"'),
        ("access.log", CLF + "garbage\n", "access.log:4", "expected a Common or Combined Log Format line"),  # the last line
        ("access.log", "garbage\n" + CLF, "access.log:1", "expected a Common or Combined Log Format line"),
        ("access.log", CLF.replace("13:55:38 -0700", "25:55:38 -0700"), "access.log:3", "expected a time like"),
        ("access.log", CLF.replace("/orders/7", "orders/7"), "access.log:3", 'expected a path starting with "/"'),
        ("access.log", "", "access.log:1", "expected at least one request, the file has none"),
        ("access.log", "\n  \n", "access.log:1", "expected at least one request, the file has none"),
        ("r.jsonl", JSONL + '{"time": 1, "path": "/"\n', "r.jsonl:5", "not JSON"),
        ("r.jsonl", '{"path": "/"}\n', "r.jsonl:1", "time: expected seconds"),
        ("r.jsonl", '{"time": 1, "path": "/", "headers": {"bad name": "x"}}\n', "r.jsonl:1", "expected what a fetch Request accepts"),
        ("r.jsonl", '[1, 2]\n', "r.jsonl:1", "expected a JSON object"),
        ("s.har", '{"log": {"entries": [\n{"startedDateTime": "x",\n}]}}', "s.har:3", "not JSON"),
        ("s.har", '{"log": {"entries": [{"startedDateTime": "yesterday", "request": {"method": "GET", "url": "https://h/"}}]}}',
         "s.har:log.entries[0]", "startedDateTime: expected an ISO 8601 time"),
        ("s.har", '{"log": {}}', "s.har:log.entries", "expected a HAR file"),
        ("s.har", '{"log": []}', "s.har:log.entries", "expected a HAR file"),
        ("r.jsonl", '{"time": NaN, "path": "/"}\n', "r.jsonl:1", "time: expected seconds"),
    ],
)
def test_a_line_that_cannot_be_read_is_named_by_file_and_number_and_check_exits_2(tmp_path, file, log, where, expected):
    path = scenario(tmp_path, log, file=file)
    with pytest.raises(ConfigError) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: traffic[0].replay: {tmp_path / where}: ") and expected in message, message
    done = edge("check", path)
    assert done.returncode == 2 and f"{tmp_path / where}: " in done.stderr, done.stderr


def test_the_replay_path_is_relative_to_the_scenario_and_run_exits_2_on_a_bad_file(tmp_path):
    (tmp_path / "logs").mkdir()
    path = scenario(tmp_path, CLF, file="logs/access.log")
    elsewhere = tmp_path / "logs"
    assert edge("check", path, cwd=elsewhere).returncode == 0
    (tmp_path / "logs" / "access.log").write_text(CLF + "nope\n")
    for command in ("run", "tune"):
        done = edge(command, path, cwd=elsewhere)
        assert done.returncode == 2 and "logs/access.log:4: expected a Common" in done.stderr, (command, done.stderr)
    (tmp_path / "logs" / "access.log").unlink()
    done = edge("check", path)
    assert done.returncode == 2 and "traffic[0].replay" in done.stderr and "cannot read file" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("extra", "path", "expected"),
    [
        ({"requests": [{"url": "https://example.com/"}]}, "traffic[0].requests", "drop requests or replay"),
        ({"arrivals": "poisson(5/s)"}, "traffic[0].arrivals", "drop arrivals or replay"),
        ({"users": 2}, "traffic[0].users", "drop users or replay"),
        ({"speed": 0}, "traffic[0].speed", "expected a positive factor"),
        ({"replay_format": "csv"}, "traffic[0].replay_format", "expected one of"),
    ],
)
def test_bad_replay_groups_name_the_field(tmp_path, extra, path, expected):
    with pytest.raises(ConfigError) as raised:
        load(scenario(tmp_path, CLF, **extra))
    assert f": {path}: " in str(raised.value) and expected in str(raised.value), str(raised.value)


def test_base_url_is_required_and_replay_fields_need_a_replay(tmp_path):
    (tmp_path / "access.log").write_text(CLF)
    path = tmp_path / "s.toml"
    path.write_text(replay_toml(duration="5s", base_url=None))
    with pytest.raises(ConfigError, match=r"traffic\[0\]\.base_url: expected the scheme and host"):
        load(path)
    path.write_text(replay_toml(duration="5s", base_url="https://example.com/x"))
    with pytest.raises(ConfigError, match=r"traffic\[0\]\.base_url"):
        load(path)
    path.write_text(replay_toml(duration="5s", replay=None, base_url=None, loop=True, requests=[{"url": "https://example.com/"}]))
    with pytest.raises(ConfigError, match=r"traffic\[0\]\.loop: only for a replayed group"):
        load(path)


def test_a_loop_needs_more_than_one_instant(tmp_path):
    one = '{"time": 5, "path": "/"}\n{"time": 5, "path": "/b"}\n'
    with pytest.raises(ConfigError, match=r"traffic\[0\]\.loop: .*r\.jsonl: a loop needs requests at more than one time"):
        load(scenario(tmp_path, one, file="r.jsonl", loop=True))
    assert len(load(scenario(tmp_path, one, file="r.jsonl")).replays[0].entries) == 2


def test_request_and_size_limits_at_the_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(replay, "MAX_REPLAY_REQUESTS", 3)
    assert len(load(scenario(tmp_path, CLF)).replays[0].entries) == 3  # exactly at
    with pytest.raises(ConfigError, match=r"access\.log:4: expected at most 3 requests"):
        load(scenario(tmp_path, CLF + CLF.splitlines(keepends=True)[0]))
    size = len(CLF.encode())
    monkeypatch.setattr(replay, "MAX_REPLAY_BYTES", size)
    monkeypatch.setattr(scenario_load, "MAX_REPLAY_BYTES", size)  # the loader reads the limit it imported
    assert len(load(scenario(tmp_path, CLF)).replays[0].entries) == 3  # exactly at
    assert len(load(scenario(tmp_path, CLF[:-1])).replays[0].entries) == 3  # just under
    with pytest.raises(ConfigError, match=rf"access\.log:size: expected a replay file of at most {size:,} bytes"):
        load(scenario(tmp_path, CLF + "\n"))  # just over


TUNED = compose(
    canary_service(
        production={"model": {"latency": "2ms", "errors": 0.002}}, canary={"model": {"latency": "2ms", "errors": 0.002}},
        rollout={"steps": [10, 50, 100], "interval": "30s", "gates": ["error ratio < 3%"], "min_requests": 20, "no_data": "hold"},
    ),
    traffic=[traffic(None, None, replay="r.jsonl", base_url="https://app.test", loop=True)],
    tune={"bad": {"errors": 0.5}, "replications": 2, "candidates": [{"steps": [10, 50, 100], "interval": "30s"}]},
    name="tune-replay", duration="2m",
)


def test_tune_accepts_a_replayed_group(tmp_path):
    (tmp_path / "r.jsonl").write_text("".join(json.dumps({"time": i / 20, "path": f"/p{i % 3}"}) + "\n" for i in range(40)))
    (tmp_path / "t.toml").write_text(TUNED)
    result = tune(load(tmp_path / "t.toml"), budget=Budget(fixed=2), executor=None)
    (candidate,) = result.candidates
    assert candidate.caught.value == 1.0  # half the canary's answers are errors: every replication catches it
    assert candidate.canary_requests_to_rollback.value > 0


def test_a_replayed_log_reproduces_its_rate_profile():
    # The shipped minute of a shop's log ramps from 2/s to 10/s: the run's clients, read every 10 s,
    # see the file's own count in each of those 10 s, and the second (looped) pass sends it all again.
    loaded = load(ROOT / "scenarios" / "replay.toml")
    log = (ROOT / "scenarios" / "replay" / "access.log").read_text().splitlines()
    per_window = [sum(1 for line in log if int(line.split(":", 3)[3][:2]) // 10 == w) for w in range(6)]
    assert per_window[0] < per_window[-1]  # a ramp, so the comparison says something
    report = build_report(simulate(loaded, interval=10.0))
    assert report.series.clients.requests[:6] == per_window
    assert report.clients.requests == 2 * len(log)


# -- hostile and degenerate replay files (issue 27: items 1, 8, 9, 10) ----------------------------


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_file_of_one_request_plays_it_once(tmp_path, command):
    path = scenario(tmp_path, '{"time": 1, "path": "/"}\n', file="one.jsonl", duration="2s")
    done = edge(command, path, "--quiet") if command == "run" else edge(command, path)
    assert done.returncode == 0, done.stderr
    result = simulate(load(path), duration=2.0)
    assert result.metrics.clients.requests == 1


@pytest.mark.parametrize(
    ("log", "where", "expected"),
    [
        ('{"time": -1e308, "path": "/"}\n{"time": 1e308, "path": "/b"}\n', "r.jsonl:2", "within 366 days (a year) of the first"),
        ('{"time": 0, "path": "/"}\n{"time": 31622400.001, "path": "/b"}\n', "r.jsonl:2", "within 366 days"),  # a year and a millisecond
        ('{"time": 1, "path": "/a\\r\\nX-Evil: 1"}\n', "r.jsonl:1", "without control characters"),
        ('{"time": 1, "path": "/a\\tb"}\n', "r.jsonl:1", "without control characters"),
        ('{"time": 1, "path": "/' + "p" * 16384 + '"}\n', "r.jsonl:1", "at most 16,384 bytes"),  # 16,385 with the "/"
        ("[" * 50_000 + "]" * 50_000 + "\n", "r.jsonl:1", "expected JSON nested less deeply"),
        ('{"time": 1, "path": "/", "n": ' + "9" * 5001 + "}\n", "r.jsonl:1", "expected JSON that can be read"),
        ('{"time": 1, "path": "/", "pad": "' + "x" * (128 * 1024) + '"}\n', "r.jsonl:1", "expected a line of at most 131,072 characters"),
    ],
)
def test_a_hostile_line_is_refused_with_its_place_and_exit_2(tmp_path, log, where, expected):
    path = scenario(tmp_path, log, file="r.jsonl")
    with pytest.raises(ConfigError) as raised:
        load(path)
    assert f"{tmp_path / where}: " in str(raised.value) and expected in str(raised.value), str(raised.value)[:300]
    done = edge("check", path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-500:]


def test_a_path_exactly_at_the_url_limit_and_a_year_exactly_are_read(tmp_path):
    log = '{"time": 0, "path": "/' + "p" * 16383 + '"}\n{"time": 31622400, "path": "/b"}\n'
    loaded = load(scenario(tmp_path, log, file="r.jsonl"))
    assert [len(e.target) for e in loaded.replays[0].entries] == [16384, 2]
    assert loaded.replays[0].span == 366 * 86400


def test_a_deep_har_is_refused_not_a_traceback(tmp_path):
    path = scenario(tmp_path, '{"log": ' + "[" * 100_000 + "]" * 100_000 + "}", file="s.har")
    done = edge("check", path)
    assert done.returncode == 2 and "nested less deeply" in done.stderr and "Traceback" not in done.stderr


def test_the_connections_own_headers_are_dropped_from_json_lines(tmp_path):
    log = '{"time": 1, "path": "/", "headers": {"Host": "evil.test", "content-length": "5", "transfer-encoding": "chunked", "x-kept": "1"}}\n'
    assert entries(load(scenario(tmp_path, log, file="r.jsonl"))) == [(0.0, "GET", "/", [("x-kept", "1")])]


def test_an_unterminated_quote_on_a_long_line_fails_fast_and_small(tmp_path):
    import time
    import tracemalloc

    import delays

    line = '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /' + "a" * 120_000 + "\n"
    tracemalloc.start()
    with delays.measured() as waited:
        began = time.perf_counter()
        with pytest.raises(replay.ReplayError, match="line 1: expected a Common or Combined Log Format line"):
            replay.parse(line.encode(), file="a.log", format="clf")
        took = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * len(line)  # the possessive pattern keeps no backtracking state per character
    assert took < 5.0 + waited.seconds  # the old pattern took seconds per MB


# -- rates no run could simulate (issue 27 item 2) --------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "log", "field", "refused"),
    [
        ({"loop": True}, '{"time": 0, "path": "/"}\n{"time": 1e-9, "path": "/"}\n', "traffic[0].speed", True),  # 1e9/s
        ({"loop": True, "speed": 1e300}, CLF, "traffic[0].speed", True),
        ({"loop": True, "speed": 500000}, '{"time": 0, "path": "/"}\n{"time": 1, "path": "/"}\n', "traffic[0].speed", False),  # 500,000/s
        ({"loop": True, "speed": 1000000}, '{"time": 0, "path": "/"}\n{"time": 1, "path": "/"}\n', "traffic[0].speed", False),  # exactly at
        ({"loop": True, "speed": 1000001}, '{"time": 0, "path": "/"}\n{"time": 1, "path": "/"}\n', "traffic[0].speed", True),  # one over
        ({}, '{"time": 0, "path": "/"}\n{"time": 1e-9, "path": "/"}\n', "", False),  # not looped: two requests, however close
    ],
)
def test_a_replay_rate_over_the_limit_is_refused_with_the_limit_named(tmp_path, extra, log, field, refused):
    path = scenario(tmp_path, log, file="r.jsonl" if log.startswith("{") else "access.log", **extra)
    if not refused:
        load(path)
        return
    with pytest.raises(ConfigError) as raised:
        load(path)
    assert f": {field}: expected at most 1e+06 requests per second at the peak (`max_rate` under [scenario] raises the limit)" in str(raised.value)


@pytest.mark.parametrize(
    ("group", "meta", "refused"),
    [
        ({"arrivals": "constant(1000000000/s)"}, {}, True),
        ({"arrivals": "constant(1000000/s)"}, {}, False),  # exactly at the limit
        ({"arrivals": "poisson(1000001/s)"}, {}, True),
        ({"arrivals": "poisson(600000/s)", "bursts": [{"at": "1s", "duration": "1s", "factor": 2}]}, {}, True),  # 1.2M at the burst
        ({"arrivals": "constant(1000000000/s)"}, {"max_rate": 2e9}, False),  # raised
        ({"users": 100000000}, {}, False),  # closed: each user waits for its answer
    ],
)
def test_an_arrival_rate_over_the_limit_is_refused_and_max_rate_raises_it(tmp_path, group, meta, refused):
    path = write(tmp_path, compose(APP, traffic=[traffic(**{"arrivals": None, "url": "https://example.com/", **group})], **meta), file="s.toml")
    if not refused:
        load(path)
        return
    with pytest.raises(ConfigError, match=r"traffic\[0\]\.arrivals: expected at most 1e\+06 requests per second at the peak"):
        load(path)
    done = edge("run", path, "--duration", "1s")
    assert done.returncode == 2 and "max_rate" in done.stderr


# -- logs from real servers (issue 28 item 6): their formats, their noise, their request times ------

NGINX_MAIN = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for"'
NGINX_TIMED = NGINX_MAIN + " $request_time $upstream_response_time"
STAMP = "[02/Mar/2026:09:00:10 +0100]"
EPOCH = 1772438410.0  # the stamp above
TLS_PROBE = r'45.148.10.81 - - [02/Mar/2026:09:00:11 +0100] "\x16\x03\x01\x00\xEE\x01\x00\x00\xEA\x03\x03" 400 157 "-" "-" "-" 0.041 -'
CLOSED = '203.0.113.7 - - [02/Mar/2026:09:00:11 +0100] "-" 400 0 "-" "-" "-" 0.000 -'


def _one(line: str, format: str) -> tuple[float, str, str, list[tuple[str, str]], float | None]:
    """What ``line`` records: its arrival (seconds after ``EPOCH``), method, target, headers, request time."""
    read = logformat.read_line(logformat.compile_format(format), line)
    return round(read.at - read.elapsed - EPOCH, 6), read.method, read.target, read.headers, read.time


@pytest.mark.parametrize(
    ("format", "line", "at", "headers", "time"),
    [
        # nginx main, as the stock nginx.conf has it: the X-Forwarded-For the request carried is replayed
        (NGINX_MAIN, f'203.0.113.9 - - {STAMP} "GET /a?x=1 HTTP/1.1" 200 512 "https://r.test/" "curl/8.5.0" "198.51.100.7, 10.0.0.1"',
         0.0, [("referer", "https://r.test/"), ("user-agent", "curl/8.5.0"), ("x-forwarded-for", "198.51.100.7, 10.0.0.1")], None),
        (NGINX_MAIN, f'203.0.113.9 - - {STAMP} "GET /a?x=1 HTTP/1.1" 200 512 "-" "curl/8.5.0" "-"', 0.0, [("user-agent", "curl/8.5.0")], None),
        # nginx combined (its predefined format), and with $request_time: a line is stamped when its request ends
        ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"',
         f'203.0.113.9 - alice {STAMP} "GET /a?x=1 HTTP/1.1" 200 512 "-" "curl/8.5.0"', 0.0, [("user-agent", "curl/8.5.0")], None),
        (NGINX_TIMED, f'203.0.113.9 - - {STAMP} "GET /a?x=1 HTTP/1.1" 200 512 "-" "-" "-" 0.532 -', -0.532, [], 0.532),  # nginx served it
        (NGINX_TIMED, f'203.0.113.9 - - {STAMP} "GET /a?x=1 HTTP/1.1" 200 512 "-" "-" "-" 0.040 0.038', -0.040, [], 0.038),  # the upstream's
        (NGINX_TIMED, f'203.0.113.9 - - {STAMP} "GET /a?x=1 HTTP/1.1" 502 512 "-" "-" "-" 0.531 0.500, 0.012', -0.531, [], 0.512),  # retried
        (NGINX_TIMED, f'203.0.113.9 - - {STAMP} "GET /a?x=1 HTTP/1.1" 200 512 "-" "-" "-" 0.1 0.1 : 0.2', -0.1, [], 0.3),  # internal redirect
        ('$msec "$request" $upstream_response_time', '1772438410.250 "GET /a?x=1 HTTP/1.1" 0.125', 0.125, [], 0.125),  # stamp less upstream
        ('$time_iso8601 $request_method $request_uri rt=$request_time', '2026-03-02T09:00:10+01:00 GET /a?x=1 rt=0.005', -0.005, [], 0.005),
        # Apache common and combined (httpd.conf's \" read as "), alone and with %D (µs), %T (s), %{ms}T: %t is the arrival
        ('%h %l %u %t "%r" %>s %b', f'127.0.0.1 - frank {STAMP} "GET /a?x=1 HTTP/1.0" 200 2326', 0.0, [], None),
        (r'%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"',
         f'127.0.0.1 - - {STAMP} "GET /a?x=1 HTTP/1.0" 200 2326 "http://r.test/" "Mozilla/4.08"', 0.0,
         [("referer", "http://r.test/"), ("user-agent", "Mozilla/4.08")], None),
        ('%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D', f'127.0.0.1 - - {STAMP} "GET /a?x=1 HTTP/1.0" 200 2326 "-" "-" 1234',
         0.0, [], 0.001234),
        ('%h %l %u %t "%r" %>s %b %T', f'127.0.0.1 - - {STAMP} "GET /a?x=1 HTTP/1.0" 200 - 2', 0.0, [], 2.0),
        ('%h %l %u %t "%r" %>s %b %{ms}T', f'127.0.0.1 - - {STAMP} "GET /a?x=1 HTTP/1.0" 200 - 25', 0.0, [], 0.025),
        ('%h %l %u %t "%r" %>s %b %{X-Forwarded-For}i %{us}T', f'127.0.0.1 - - {STAMP} "GET /a?x=1 HTTP/1.0" 200 - 10.0.0.1 250', 0.0,
         [("x-forwarded-for", "10.0.0.1")], 0.00025),
    ],
)
def test_each_log_format_gives_the_time_request_headers_and_request_time_in_seconds(format, line, at, headers, time):
    assert _one(line, format) == (at, "GET", "/a?x=1", headers, time)
    read = replay.parse(f"{line}\n{line}\n".encode(), file="a.log", format=format)  # the same through the file reader
    assert [(e.method, e.target, e.headers, e.time) for e in read.entries] == [("GET", "/a?x=1", headers, time)] * 2
    assert read.format == ("nginx log_format" if format.startswith("$") else "Apache LogFormat")


@pytest.mark.parametrize(
    ("format", "logged", "agent"),
    [
        # nginx (escape=default): ", \\ and bytes outside 0x20-0x7E as \\xHH; a UTF-8 path's bytes too
        (NGINX_MAIN, r"GET /caf\xC3\xA9/q?s=\x22a\x22&b=\x5C HTTP/1.1", r"Mozilla \x22x\x22 caf\xC3\xA9"),
        # Apache: \" and \\ and \xhh
        (r'%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"',
         r'GET /caf\xc3\xa9/q?s=\"a\"&b=\\ HTTP/1.1', r'Mozilla \"x\" caf\xc3\xa9'),
        # nginx escape=json: \" and \\, \u00HH for control characters, other characters as they are
        (NGINX_MAIN, r'GET /café/q?s=\"a\"&b=\\ HTTP/1.1', r'Mozilla \"x\" caf\u00c3\u00a9'),
    ],
)
def test_escaped_requests_and_headers_are_replayed_as_they_came(format, logged, agent):
    """A logged escape is read back as the byte it stands for: left as it is, a quote logged as
    ``\\x22`` would be replayed as a backslash that a URL parser makes a slash (``/x22``)."""
    line = f'203.0.113.9 - - {STAMP} "{logged}" 200 512 "-" "{agent}"' + (' "-"' if format == NGINX_MAIN else "")
    _, method, target, headers, _ = _one(line, format)
    assert method == "GET"
    assert target.endswith('/q?s="a"&b=\\')
    assert headers == [("user-agent", 'Mozilla "x" caf\xc3\xa9')]  # a header's bytes, one character each, as fetch's Headers hold them
    from edge.platform.fetch import Request

    # What the worker is given: the URL the request's target makes, as Cloudflare's URL parser makes it.
    assert Request("https://example.com" + target).url == "https://example.com/caf%C3%A9/q?s=%22a%22&b=\\"


@pytest.mark.parametrize(("escaped", "expected"), [
    (r"/a\x0Ab", "expected a path without control characters"),  # a logged newline is a newline: refused, as a Request would
    (r"/a\x00", "expected a path without control characters"),
])
def test_an_escaped_control_character_in_a_path_is_refused_by_name(escaped, expected):
    line = f'203.0.113.9 - - {STAMP} "GET {escaped} HTTP/1.1" 200 512 "-" "-" "-"\n'
    with pytest.raises(replay.ReplayError, match=expected):
        replay.parse(line.encode(), file="a.log", format=NGINX_MAIN)


def test_a_backslash_before_anything_else_is_kept():
    assert logformat.unescape(r"a\qb\x4") == r"a\qb\x4"
    assert logformat.unescape(r"\\x41") == r"\x41"  # an escaped backslash, then "x41": not A
    assert logformat.unescape(r"a\uD800b\uDFFF\u00e9\uE000") == "a\\uD800b\\uDFFF\u00e9\ue000"  # half a UTF-16 pair: as written


def test_clf_reads_nginx_main_and_the_fields_any_server_adds_after_combined(tmp_path):
    # nginx's stock main format failed at line 1 before: the default reader reads it, the trailing fields unread
    log = (f'203.0.113.9 - - {STAMP} "GET /a HTTP/1.1" 200 512 "-" "curl/8.5.0" "198.51.100.7, 10.0.0.1"\n'
           f'203.0.113.9 - - {STAMP} "GET /b HTTP/1.1" 200 512 "-" "curl/8.5.0" "-" rt=0.012 urt="0.010, 0.002"\n'
           f'203.0.113.9 - - {STAMP} "GET /c HTTP/1.1" 200 512 1234\n')
    read = load(scenario(tmp_path, log)).replays[0]
    assert [(e.method, e.target, e.headers) for e in read.entries] == [
        ("GET", "/a", [("user-agent", "curl/8.5.0")]), ("GET", "/b", [("user-agent", "curl/8.5.0")]), ("GET", "/c", []),
    ]
    assert [e.at for e in read.entries] == pytest.approx([0, 1 / 3, 2 / 3])  # one second, three requests
    assert all(e.time is None for e in read.entries)  # a bare number's unit is unknown: not read as a request time


def test_nginx_lines_are_spread_over_their_second_then_moved_back_by_their_request_time():
    line = '1.2.3.4 - - [02/Mar/2026:09:00:{s} +0100] "GET /{p} HTTP/1.1" 200 1 "-" "-" "-" {rt} -'
    log = "\n".join(line.format(s=s, p=p, rt=rt) for s, p, rt in (("00", "a", "0.000"), ("01", "b", "0.000"), ("01", "c", "0.750")))
    read = replay.parse(log.encode(), file="a.log", format=NGINX_TIMED)
    # b and c share the second 01 (at 1.0 and 1.5); c took 0.75 s, so it arrived at 0.75, before b
    assert [(e.target, e.at) for e in read.entries] == [("/a", 0.0), ("/c", 0.75), ("/b", 1.0)]


@pytest.mark.parametrize(
    ("format", "expected"),
    [
        ('$remote_addr "$request" $status', "this one has no time"),
        ("[$time_local] $status", "this one has no request"),
        ('[$time_local] "$request_method"', "this one has no request"),  # a method alone is not a request
        ("[$time_local] $request", "expected $request in double quotes"),
        ('%h %t %>s', "this one has no request"),
        ("%t %r", "expected %r in double quotes"),
        ("nginx", "expected one of clf, jsonl, har, or a log format"),
    ],
)
def test_a_format_without_what_replay_needs_is_a_config_error_exit_2_naming_the_field(tmp_path, format, expected):
    path = scenario(tmp_path, CLF, replay_format=format)
    with pytest.raises(ConfigError) as raised:
        load(path)
    assert str(raised.value).startswith(f"{path}: traffic[0].replay_format: ") and expected in str(raised.value), str(raised.value)
    done = edge("check", path)
    assert done.returncode == 2 and "traffic[0].replay_format: " in done.stderr and expected in done.stderr, done.stderr


def _noisy(noise: int) -> str:
    """A log of three requests and ``noise`` unreadable lines after the first."""
    good = f'203.0.113.9 - - {STAMP} "GET /{{}} HTTP/1.1" 200 512 "-" "-" "-" 0.010 0.008'
    lines = [good.format("a"), *([TLS_PROBE, CLOSED] * noise)[:noise], good.format("b"), good.format("c")]
    return "\n".join(lines) + "\n"


def test_on_error_abort_is_the_default_and_names_the_file_line_and_what_was_expected(tmp_path):
    path = scenario(tmp_path, _noisy(2), replay_format=NGINX_TIMED)
    with pytest.raises(ConfigError) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: traffic[0].replay: {tmp_path / 'access.log'}:2: expected a request line "), message
    assert r'got "\x16\x03\x01' in message and 'on_error = "skip" skips unreadable lines' in message
    done = edge("check", path)
    assert done.returncode == 2 and "access.log:2: expected a request line" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("noise", "listed", "more"),
    [(0, [], False), (4, [2, 3, 4, 5], False), (5, [2, 3, 4, 5, 6], False), (6, [2, 3, 4, 5, 6], True)],  # under, at and over five
)
def test_on_error_skip_counts_the_unreadable_lines_and_lists_the_first_five(tmp_path, noise, listed, more):
    path = scenario(tmp_path, _noisy(noise), replay_format=NGINX_TIMED, on_error="skip")
    loaded = load(path)
    assert [e.target for e in loaded.replays[0].entries] == ["/a", "/b", "/c"]
    assert (loaded.replays[0].skipped, loaded.replays[0].skipped_lines) == (noise, listed)
    done = edge("run", path, "--json", tmp_path / "r.json")
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "r.json").read_text())["replays"]["log"]
    assert (written.get("skipped", 0), written.get("skipped_lines", []), written["logged_times"]) == (noise, listed, 3)
    summary = f"{noise:,} unreadable lines skipped ({', '.join(map(str, listed))}{', ...' if more else ''})"
    assert (summary in done.stdout) == (noise > 0), done.stdout


def test_skip_covers_every_problem_of_a_line_but_not_the_files(tmp_path):
    long_path = '1.2.3.4 - - [02/Mar/2026:09:00:10 +0100] "GET /' + "p" * 16384 + ' HTTP/1.1" 200 1'  # a path of 16,385 bytes
    data = (b'1.2.3.4 - - [02/Mar/2026:09:00:10 +0100] "GET /ok HTTP/1.1" 200 1\n'
            b'1.2.3.4 - - [02/Mar/2026:09:00:10 +0100] "GET /\xff HTTP/1.1" 200 1\n'  # not UTF-8
            b'1.2.3.4 - - [31/Feb/2026:09:00:10 +0100] "GET /t HTTP/1.1" 200 1\n'  # no such day
            b'1.2.3.4 - - [02/Mar/2026:09:00:10 +0100] "GET http://h/ HTTP/1.1" 200 1\n'
            + long_path.encode() + b"\n" + b"x" * (128 * 1024 + 1) + b"\n")
    read = replay.parse(data, file="a.log", format="clf", on_error="skip")
    assert [e.target for e in read.entries] == ["/ok"] and (read.skipped, read.skipped_lines) == (5, [2, 3, 4, 5, 6])
    with pytest.raises(replay.ReplayError, match="line 2: not UTF-8 text"):
        replay.parse(data, file="a.log", format="clf")
    # A log of nothing readable is refused, not replayed as nothing
    with pytest.raises(replay.ReplayError, match=r"all 2 lines were unreadable \(lines 1, 2\); is replay_format the log's format\?"):
        replay.parse((TLS_PROBE + "\n" + CLOSED + "\n").encode(), file="a.log", format=NGINX_TIMED, on_error="skip")
    # JSON lines skip too
    read = replay.parse(b'{"time": 1, "path": "/"}\n{"time": 1,\n[1]\n', file="r.jsonl", format="jsonl", on_error="skip")
    assert (len(read.entries), read.skipped_lines) == (1, [2, 3])


@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        ({"on_error": "ignore"}, "traffic[0].on_error", 'expected "abort" or "skip", got "ignore"'),
        ({"service_time": "recorded"}, "traffic[0].service_time", 'expected "logged" or "model", got "recorded"'),
    ],
)
def test_bad_on_error_and_service_time_values_name_the_field(tmp_path, extra, field, expected):
    with pytest.raises(ConfigError) as raised:
        load(scenario(tmp_path, CLF, **extra))
    assert f": {field}: " in str(raised.value) and expected in str(raised.value), str(raised.value)


def test_on_error_and_service_time_need_a_replay_and_skip_is_not_for_a_har(tmp_path):
    plain = {"replay": None, "base_url": None, "requests": [{"url": "https://example.com/"}]}
    for extra, field in (({"on_error": "skip"}, "on_error"), ({"service_time": "model"}, "service_time")):
        (tmp_path / "s.toml").write_text(replay_toml("x", duration="5s", **plain, **extra))
        with pytest.raises(ConfigError, match=rf"traffic\[0\]\.{field}: only for a replayed group"):
            load(tmp_path / "s.toml")
    with pytest.raises(ConfigError, match=r'traffic\[0\]\.on_error: a HAR file is one JSON document, read whole or refused'):
        load(scenario(tmp_path, json.dumps(HAR), file="s.har", on_error="skip"))


@pytest.mark.parametrize(("rt", "refused"), [("31622399.999", False), ("31622400", False), ("31622400.001", True), ("9" * 400, True)])
def test_a_request_time_of_a_year_is_read_and_a_longer_one_refused(rt, refused):
    line = f'1.2.3.4 - - {STAMP} "GET / HTTP/1.1" 200 1 "-" "-" "-" {rt} -'
    if not refused:
        assert _one(line, NGINX_TIMED)[4] == float(rt)
        return
    with pytest.raises(replay.ReplayError, match=r"line 1: expected a request time of at most 31622400 s \(a year\), got (31,622,400.001|inf) s"):
        replay.parse(line.encode(), file="a.log", format=NGINX_TIMED)


TIMED_SCENARIO_LOG = "\n".join(
    f'1.2.3.4 - - [02/Mar/2026:09:00:0{2 * i} +0100] "GET /{i} HTTP/1.1" 200 1 "-" "-" "-" {rt} {up}'
    for i, (rt, up) in enumerate((("0.201", "0.200"), ("0.501", "0.500"), ("0.003", "0.002"), ("0.050", "-")))
) + "\n"


def _latencies(tmp_path: Path, *, model: dict | None = None, timeline: tuple = (), setup=None, **group) -> list[float]:
    app = service("app", routes=["example.com/*"], model=model or {"latency": "1ms"})
    text = replay_toml(duration="10s", app=app, timeline=timeline, replay_format=NGINX_TIMED, **group)
    (tmp_path / "access.log").write_text(TIMED_SCENARIO_LOG)
    (tmp_path / "s.toml").write_text(text)
    report = build_report(simulate(load(tmp_path / "s.toml"), interval=1.0, setup=setup))
    # A request every other second: each second's p50 is that of the one request answered in it
    return [p for p, n in zip(report.series.clients.latency_p50_s, report.series.clients.requests) if n]


def test_a_synthetic_model_serves_a_logged_request_in_its_logged_time(tmp_path):
    # The upstream's time when nginx logs one, else the request's own ("-": nginx served it)
    assert _latencies(tmp_path) == pytest.approx([0.200, 0.500, 0.002, 0.050], rel=0.02)
    # The model's CPU is spent within the logged time; a request faster than the CPU takes the CPU's time
    assert _latencies(tmp_path, model={"latency": "1ms", "cpu": "10ms"}) == pytest.approx([0.200, 0.500, 0.010, 0.050], rel=0.02)
    # service_time = "model": the model's latency, as for any request
    assert _latencies(tmp_path, service_time="model") == pytest.approx([0.001] * 4, rel=0.02)


@pytest.mark.parametrize(
    ("how", "latency", "expected"),
    [("tune", "x3", [0.600, 1.500, 0.006, 0.150]), ("tune", "5ms", [0.005] * 4),
     ("timeline", "5ms", [0.200, 0.005, 0.005, 0.005])],  # at 0.5 s: the first request began on the model before
)
def test_a_latency_a_hypothesis_or_the_timeline_sets_scales_or_replaces_the_logged_times(tmp_path, how, latency, expected):
    # A tuning hypothesis "x3" is a latency bug of the model's shape: logged times slow with it; a
    # latency written out is the new model, for logged requests too
    if how == "tune":
        behaviour = Behaviour(latency=ScaledDistribution(latency))
        got = _latencies(tmp_path, setup=lambda topology, *_: change_behaviour(topology.environments[EnvironmentKey("app", "production")], behaviour))
    else:
        got = _latencies(tmp_path, timeline=[{"at": "0.5s", "action": "set", "target": "app@production", "latency": latency}])
    assert got == pytest.approx(expected, rel=0.02)


def test_a_retry_keeps_the_logged_time():
    request = replay.LoggedRequest("https://example.com/a", method="GET", headers=[("x-a", "1")], service_time=0.25)
    copy = request.clone()
    assert type(copy) is replay.LoggedRequest and copy.service_time == 0.25 and copy.url == request.url and copy.headers.get("x-a") == "1"


def test_the_nginx_scenario_gives_byte_identical_reports_for_the_same_seed(tmp_path):
    path = ROOT / "scenarios" / "replay-nginx.toml"
    runs = [edge("run", path, "--seed", "5", "--quiet", "--json", tmp_path / f"{h}.json", hash_seed=h) for h in ("1", "2")]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert (tmp_path / "1.json").read_bytes() == (tmp_path / "2.json").read_bytes()
