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
from edge.engine.traffic import ReplaySchedule, plan_traffic
from edge.report.build import build_report
from edge.scenario import config, replay
from edge.tune.budget import Budget
from edge.tune.tuner import tune

ROOT = Path(__file__).resolve().parent.parent

SCENARIO = """
[scenario]
name = "replay-test"
duration = "{duration}"
[[services]]
name = "app"
routes = ["example.com/*"]
model = {{ latency = "1ms" }}
[[traffic]]
name = "log"
replay = "{file}"
base_url = "https://example.com"
{extra}
"""

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


def scenario(tmp_path: Path, log: str, *, file: str = "access.log", duration: str = "20s", extra: str = "") -> Path:
    (tmp_path / file).write_text(log)
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(file=file, duration=duration, extra=extra))
    return path


def entries(loaded: config.LoadedScenario) -> list[tuple[float, str, str, list[tuple[str, str]]]]:
    return [(e.at, e.method, e.target, e.headers) for e in loaded.replays[0].entries]


def edge(*args, hash_seed: str = "0", cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hash_seed}
    return subprocess.run([sys.executable, "-m", "edge.cli", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_common_log_format_gives_times_methods_and_paths_and_spreads_a_second(tmp_path):
    loaded = config.load(scenario(tmp_path, CLF))
    # Two requests logged in one second are spread over it, not sent as a burst.
    assert entries(loaded) == [(0.0, "GET", "/apache_pb.gif", []), (0.5, "POST", "/orders?id=7", []), (2.0, "DELETE", "/orders/7", [])]
    assert loaded.replays[0].format == "clf" and loaded.replays[0].file == "access.log"


def test_combined_log_format_adds_referer_and_user_agent(tmp_path):
    loaded = config.load(scenario(tmp_path, COMBINED))
    assert entries(loaded) == [
        (0.0, "GET", "/a", [("referer", "https://ref.test/start"), ("user-agent", 'Mozilla/5.0 (X11; \\"quoted\\")')]),
        (1.0, "GET", "/b", [("user-agent", "curl/8.0")]),  # "-": no referer
    ]


def test_json_lines_take_numbers_or_iso_times_sorted_and_ignore_other_fields(tmp_path):
    loaded = config.load(scenario(tmp_path, JSONL, file="requests.jsonl"))
    assert loaded.replays[0].format == "jsonl"
    assert entries(loaded) == [
        (0.0, "GET", "/items?page=2", []), (0.25, "PUT", "/items/1", [("x-tenant", "a")]), (3.0, "GET", "/", []),
    ]


def test_har_keeps_every_request_header_but_the_connections_own(tmp_path):
    loaded = config.load(scenario(tmp_path, json.dumps(HAR), file="session.har"))
    assert entries(loaded) == [
        (0.0, "POST", "/", []),
        (1.5, "GET", "/api/x?q=1", [("accept", "application/json"), ("cookie", "s=1")]),
    ]


def test_the_format_given_overrides_the_extension(tmp_path):
    loaded = config.load(scenario(tmp_path, JSONL, file="requests.txt", extra='replay_format = "jsonl"'))
    assert len(loaded.replays[0].entries) == 3


def _times(plan_arrivals, until=math.inf) -> list[float]:
    times, at = [], 0.0
    while (at := plan_arrivals.after(at, until)) != math.inf:
        times.append(at)
        if len(times) > 100:
            break
    return times


def test_the_schedule_both_drivers_send_speed_halves_the_span_and_builds_the_logged_requests(tmp_path):
    (plan,) = plan_traffic(config.load(scenario(tmp_path, CLF)), seed=1)
    assert isinstance(plan.arrivals, ReplaySchedule) and plan.mix is plan.arrivals
    assert _times(plan.arrivals) == [0.0, 0.5, 2.0]  # without loop the file ends the group
    (fast,) = plan_traffic(config.load(scenario(tmp_path, CLF, extra="speed = 2")), seed=1)
    sent = []
    at = 0.0
    while (at := fast.arrivals.after(at, math.inf)) != math.inf:
        request = fast.mix.draw(fast.rng)
        sent.append((at, request.method, request.url))
    assert sent == [(0.0, "GET", "https://example.com/apache_pb.gif"), (0.25, "POST", "https://example.com/orders?id=7"),
                    (1.0, "DELETE", "https://example.com/orders/7")]


def test_loop_repeats_the_file_one_mean_gap_apart_until_the_run_ends(tmp_path):
    path = scenario(tmp_path, CLF, duration="10s", extra="loop = true")
    (plan,) = plan_traffic(config.load(path), seed=1)
    # span 2s over 3 requests: a pass every 3s (2s + the mean gap of 1s).
    assert _times(plan.arrivals, until=10.0) == [0.0, 0.5, 2.0, 3.0, 3.5, 5.0, 6.0, 6.5, 8.0, 9.0, 9.5]
    report = build_report(simulate(config.load(path)))
    assert report.groups["log"].requests == report.clients.requests == 11
    assert build_report(simulate(config.load(scenario(tmp_path, CLF, duration="10s")))).clients.requests == 3


def test_the_report_describes_the_replayed_file(tmp_path):
    path = scenario(tmp_path, CLF, extra="speed = 2\nloop = true")
    done = edge("run", path, "--json", tmp_path / "r.json", "--duration", "5s")
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["replays"] == {"log": {"file": "access.log", "format": "clf", "requests": 3, "span_s": 2.0, "rate_per_s": 1.5,
                                          "speed": 2.0, "loop": True}}
    assert "replay log: access.log (clf), 3 requests over 2s recorded (1.5/s), sent at x2, looped" in done.stdout
    # A run without a replayed group has no such section (the golden reports stay as they were).
    (tmp_path / "plain").mkdir()
    plain = config.load(scenario(tmp_path / "plain", CLF))
    plain.replays, plain.spec.traffic = {}, []
    assert "replays" not in msgspec.to_builtins(build_report(simulate(plain, duration=1.0)))


def test_same_file_and_seed_give_byte_identical_reports(tmp_path):
    path = scenario(tmp_path, json.dumps(HAR), file="session.har", extra="loop = true")
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
    with pytest.raises(config.ConfigError) as raised:
        config.load(path)
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
        ('requests = [{ url = "https://example.com/" }]', "traffic[0].requests", "drop requests or replay"),
        ('arrivals = "poisson(5/s)"', "traffic[0].arrivals", "drop arrivals or replay"),
        ("users = 2", "traffic[0].users", "drop users or replay"),
        ("speed = 0", "traffic[0].speed", "expected a positive factor"),
        ('replay_format = "csv"', "traffic[0].replay_format", "expected one of"),
    ],
)
def test_bad_replay_groups_name_the_field(tmp_path, extra, path, expected):
    with pytest.raises(config.ConfigError) as raised:
        config.load(scenario(tmp_path, CLF, extra=extra))
    assert f": {path}: " in str(raised.value) and expected in str(raised.value), str(raised.value)


def test_base_url_is_required_and_replay_fields_need_a_replay(tmp_path):
    (tmp_path / "access.log").write_text(CLF)
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(file="access.log", duration="5s", extra="").replace('base_url = "https://example.com"', ""))
    with pytest.raises(config.ConfigError, match=r"traffic\[0\]\.base_url: expected the scheme and host"):
        config.load(path)
    path.write_text(SCENARIO.format(file="access.log", duration="5s", extra="").replace('base_url = "https://example.com"', 'base_url = "https://example.com/x"'))
    with pytest.raises(config.ConfigError, match=r"traffic\[0\]\.base_url"):
        config.load(path)
    path.write_text(SCENARIO.format(file="x", duration="5s", extra="").replace('replay = "x"\nbase_url = "https://example.com"', 'loop = true\nrequests = [{ url = "https://example.com/" }]'))
    with pytest.raises(config.ConfigError, match=r"traffic\[0\]\.loop: only for a replayed group"):
        config.load(path)


def test_a_loop_needs_more_than_one_instant(tmp_path):
    one = '{"time": 5, "path": "/"}\n{"time": 5, "path": "/b"}\n'
    with pytest.raises(config.ConfigError, match=r"traffic\[0\]\.loop: .*r\.jsonl: a loop needs requests at more than one time"):
        config.load(scenario(tmp_path, one, file="r.jsonl", extra="loop = true"))
    assert len(config.load(scenario(tmp_path, one, file="r.jsonl")).replays[0].entries) == 2


def test_request_and_size_limits_at_the_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(replay, "MAX_REPLAY_REQUESTS", 3)
    assert len(config.load(scenario(tmp_path, CLF)).replays[0].entries) == 3  # exactly at
    with pytest.raises(config.ConfigError, match=r"access\.log:4: expected at most 3 requests"):
        config.load(scenario(tmp_path, CLF + CLF.splitlines(keepends=True)[0]))
    size = len(CLF.encode())
    monkeypatch.setattr(replay, "MAX_REPLAY_BYTES", size)
    monkeypatch.setattr(config, "MAX_REPLAY_BYTES", size)
    assert len(config.load(scenario(tmp_path, CLF)).replays[0].entries) == 3  # exactly at
    assert len(config.load(scenario(tmp_path, CLF[:-1])).replays[0].entries) == 3  # just under
    with pytest.raises(config.ConfigError, match=rf"access\.log:size: expected a replay file of at most {size:,} bytes"):
        config.load(scenario(tmp_path, CLF + "\n"))  # just over


TUNED = """
[scenario]
name = "tune-replay"
duration = "2m"
[[services]]
name = "app"
routes = ["app.test/*"]
[services.environments.production]
model = { latency = "2ms", errors = 0.002 }
[services.environments.canary]
model = { latency = "2ms", errors = 0.002 }
[services.split]
weights = { production = 100, canary = 0 }
[services.rollout]
steps = [10, 50, 100]
interval = "30s"
gates = ["error ratio < 3%"]
min_requests = 20
no_data = "hold"
[[traffic]]
replay = "r.jsonl"
base_url = "https://app.test"
loop = true
[tune]
bad = { errors = 0.5 }
replications = 2
candidates = [{ steps = [10, 50, 100], interval = "30s" }]
"""


def test_tune_accepts_a_replayed_group(tmp_path):
    (tmp_path / "r.jsonl").write_text("".join(json.dumps({"time": i / 20, "path": f"/p{i % 3}"}) + "\n" for i in range(40)))
    (tmp_path / "t.toml").write_text(TUNED)
    result = tune(config.load(tmp_path / "t.toml"), budget=Budget(fixed=2), executor=None)
    (candidate,) = result.candidates
    assert candidate.caught.value == 1.0  # half the canary's answers are errors: every replication catches it
    assert candidate.canary_requests_to_rollback.value > 0


def test_a_replayed_log_reproduces_its_rate_profile():
    # The shipped minute of a shop's log ramps from 2/s to 10/s: the run's clients, read every 10 s,
    # see the file's own count in each of those 10 s, and the second (looped) pass sends it all again.
    loaded = config.load(ROOT / "scenarios" / "replay.toml")
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
    result = simulate(config.load(path), duration=2.0)
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
    with pytest.raises(config.ConfigError) as raised:
        config.load(path)
    assert f"{tmp_path / where}: " in str(raised.value) and expected in str(raised.value), str(raised.value)[:300]
    done = edge("check", path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-500:]


def test_a_path_exactly_at_the_url_limit_and_a_year_exactly_are_read(tmp_path):
    log = '{"time": 0, "path": "/' + "p" * 16383 + '"}\n{"time": 31622400, "path": "/b"}\n'
    loaded = config.load(scenario(tmp_path, log, file="r.jsonl"))
    assert [len(e.target) for e in loaded.replays[0].entries] == [16384, 2]
    assert loaded.replays[0].span == 366 * 86400


def test_a_deep_har_is_refused_not_a_traceback(tmp_path):
    path = scenario(tmp_path, '{"log": ' + "[" * 100_000 + "]" * 100_000 + "}", file="s.har")
    done = edge("check", path)
    assert done.returncode == 2 and "nested less deeply" in done.stderr and "Traceback" not in done.stderr


def test_the_connections_own_headers_are_dropped_from_json_lines(tmp_path):
    log = '{"time": 1, "path": "/", "headers": {"Host": "evil.test", "content-length": "5", "transfer-encoding": "chunked", "x-kept": "1"}}\n'
    assert entries(config.load(scenario(tmp_path, log, file="r.jsonl"))) == [(0.0, "GET", "/", [("x-kept", "1")])]


def test_an_unterminated_quote_on_a_long_line_fails_fast_and_small(tmp_path):
    import time
    import tracemalloc

    line = '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /' + "a" * 120_000 + "\n"
    tracemalloc.start()
    began = time.perf_counter()
    with pytest.raises(replay.ReplayError, match="line 1: expected a Common or Combined Log Format line"):
        replay.parse(line.encode(), file="a.log", format="clf")
    took = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * len(line)  # the possessive pattern keeps no backtracking state per character
    assert took < 5.0  # a bound an idle or busy machine meets by far: the old pattern took seconds per MB


# -- rates no run could simulate (issue 27 item 2) --------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "log", "field", "refused"),
    [
        ("loop = true", '{"time": 0, "path": "/"}\n{"time": 1e-9, "path": "/"}\n', "traffic[0].speed", True),  # 1e9/s
        ("loop = true\nspeed = 1e300", CLF, "traffic[0].speed", True),
        ("loop = true\nspeed = 500000", '{"time": 0, "path": "/"}\n{"time": 1, "path": "/"}\n', "traffic[0].speed", False),  # 500,000/s
        ("loop = true\nspeed = 1000000", '{"time": 0, "path": "/"}\n{"time": 1, "path": "/"}\n', "traffic[0].speed", False),  # exactly at
        ("loop = true\nspeed = 1000001", '{"time": 0, "path": "/"}\n{"time": 1, "path": "/"}\n', "traffic[0].speed", True),  # one over
        ("", '{"time": 0, "path": "/"}\n{"time": 1e-9, "path": "/"}\n', "", False),  # not looped: two requests, however close
    ],
)
def test_a_replay_rate_over_the_limit_is_refused_with_the_limit_named(tmp_path, extra, log, field, refused):
    path = scenario(tmp_path, log, file="r.jsonl" if log.startswith("{") else "access.log", extra=extra)
    if not refused:
        config.load(path)
        return
    with pytest.raises(config.ConfigError) as raised:
        config.load(path)
    assert f": {field}: expected at most 1e+06 requests per second at the peak (`max_rate` under [scenario] raises the limit)" in str(raised.value)


@pytest.mark.parametrize(
    ("traffic", "meta", "refused"),
    [
        ('arrivals = "constant(1000000000/s)"', "", True),
        ('arrivals = "constant(1000000/s)"', "", False),  # exactly at the limit
        ('arrivals = "poisson(1000001/s)"', "", True),
        ('arrivals = "poisson(600000/s)"\nbursts = [{ at = "1s", duration = "1s", factor = 2 }]', "", True),  # 1.2M at the burst
        ('arrivals = "constant(1000000000/s)"', "max_rate = 2e9", False),  # raised
        ("users = 100000000", "", False),  # closed: each user waits for its answer
    ],
)
def test_an_arrival_rate_over_the_limit_is_refused_and_max_rate_raises_it(tmp_path, traffic, meta, refused):
    path = tmp_path / "s.toml"
    path.write_text(f"""
[scenario]
{meta}
[[services]]
name = "app"
routes = ["example.com/*"]
model = {{ latency = "1ms" }}
[[traffic]]
{traffic}
requests = [{{ url = "https://example.com/" }}]
""")
    if not refused:
        config.load(path)
        return
    with pytest.raises(config.ConfigError, match=r"traffic\[0\]\.arrivals: expected at most 1e\+06 requests per second at the peak"):
        config.load(path)
    done = edge("run", path, "--duration", "1s")
    assert done.returncode == 2 and "max_rate" in done.stderr
