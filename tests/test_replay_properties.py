"""Replay files of any content, in all three formats (issue 27): read or refused with a
``ReplayError`` naming a place, never another exception, in bounded time and memory; and through
the command line, exit 0, 1 or 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.scenario import logformat, replay

ROOT = Path(__file__).resolve().parent.parent
BUDGET = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_json_records = st.fixed_dictionaries(
    {}, optional={"time": st.one_of(st.floats(allow_nan=True), st.integers(), _text, st.just("2024-05-01T12:00:00Z")),
                  "path": st.one_of(_text, st.just("/"), _text.map(lambda t: "/" + t)),
                  "method": st.one_of(_text, st.sampled_from(["GET", "POST", "get", ""])),
                  "headers": st.one_of(_json_values, st.dictionaries(_text, _text, max_size=3))},
)
_clf_lines = st.builds(
    lambda host, when, method, path, status, extra: f'{host} - - [{when}] "{method} {path} HTTP/1.1" {status} 0{extra}',
    _text, st.one_of(st.just("10/Oct/2000:13:55:36 -0700"), _text), _text, _text,
    st.one_of(st.just("200"), _text), st.one_of(st.just(""), _text.map(lambda t: f' "{t}" "{t}"')),
)


def _parsed_or_refused(data: bytes, format: str, on_error: str = "abort") -> None:
    tracemalloc.start()
    try:
        result = replay.parse(data, file="f", format=format, on_error=on_error)
        assert result.entries and all(e.target.startswith("/") for e in result.entries)
        assert 0 <= result.span <= replay.MAX_REPLAY_SPAN
    except replay.ReplayError as exc:
        assert exc.where and exc.expected
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 2_000_000 + 200 * len(data)  # no per-character blow-up


@BUDGET
@given(st.lists(st.one_of(_json_records.map(json.dumps), _json_values.map(json.dumps), _text), min_size=0, max_size=8))
def test_json_lines_of_any_content_are_read_or_refused_with_a_place(lines):
    _parsed_or_refused("\n".join(lines).encode(), "jsonl")


@BUDGET
@given(st.lists(st.one_of(_clf_lines, _text), min_size=0, max_size=8))
def test_log_lines_of_any_content_are_read_or_refused_with_a_place(lines):
    _parsed_or_refused("\n".join(lines).encode(), "clf")


NGINX = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" $request_time $upstream_response_time'
_nginx_lines = st.builds(
    lambda request, xff, rt, upstream: f'1.2.3.4 - - [02/Mar/2026:09:00:00 +0100] "{request}" 400 157 "-" "-" "{xff}" {rt} {upstream}',
    st.one_of(_text, st.just("GET / HTTP/1.1"), st.just("-"), st.just(r"\x16\x03\x01\x00")), _text,
    st.one_of(st.just("0.010"), st.just("-"), _text), st.one_of(st.just("0.010, 0.020"), st.just("-"), _text),
)


@BUDGET
@given(st.lists(st.one_of(_nginx_lines, _text), min_size=0, max_size=8), st.sampled_from(replay.ON_ERROR))
def test_nginx_lines_of_any_content_are_read_skipped_or_refused_with_a_place(lines, on_error):
    _parsed_or_refused("\n".join(lines).encode(), NGINX, on_error)


_format_text = st.lists(st.one_of(
    _text, st.sampled_from(["$time_local", "$request", "$msec", "$http_x_a", "$status", "${request_time}", "$upstream_response_time",
                            "%t", "%r", "%D", "%{ms}T", "%{X-A}i", "%>s", "%%", '"', '\\"', "[", "]", " ", "$", "%"]),
), max_size=10).map("".join)


@BUDGET
@given(_format_text, st.lists(_text, max_size=3))
def test_any_format_compiles_or_is_refused_and_reads_any_line_or_says_what_it_expected(text, lines):
    try:
        fmt = logformat.compile_format(text)
    except ValueError as exc:
        assert str(exc).startswith("expected"), str(exc)
        return
    for line in lines:
        try:
            logformat.read_line(fmt, line)
        except logformat.Unreadable as exc:
            assert str(exc).startswith("expected")


_har_entries = st.lists(
    st.one_of(
        _json_values,
        st.fixed_dictionaries({"startedDateTime": st.one_of(_text, st.just("2024-05-01T12:00:00Z")),
                               "request": st.one_of(_json_values, st.fixed_dictionaries(
                                   {"method": st.one_of(_text, st.just("GET")), "url": st.one_of(_text, st.just("https://h.test/a")),
                                    "headers": st.one_of(_json_values, st.lists(st.fixed_dictionaries({"name": _text, "value": _text}), max_size=2))}))}),
    ),
    max_size=5,
)


@BUDGET
@given(st.one_of(_har_entries.map(lambda entries: {"log": {"entries": entries}}), _json_values))
def test_har_files_of_any_content_are_read_or_refused_with_a_place(archive):
    _parsed_or_refused(json.dumps(archive).encode(), "har")


@BUDGET
@given(st.binary(max_size=300), st.sampled_from(replay.FORMATS))
def test_any_bytes_in_any_format_are_read_or_refused_with_a_place(data, format):
    _parsed_or_refused(data, format)


SCENARIO = """
[scenario]
duration = "1s"
[[services]]
name = "app"
routes = ["example.com/*"]
model = {{ latency = "1ms" }}
[[traffic]]
replay = "{file}"
base_url = "https://example.com"
"""


def test_the_command_line_exits_0_1_or_2_and_never_prints_a_traceback(tmp_path):
    cases = {
        "a.jsonl": '{"time": 1, "path": "/"}\n{"time": 1e308, "path": "/"}\n',
        "b.jsonl": '{"time": 1, "path": "/a b?c=\\u00e9"}\n',
        "c.log": '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /\x16\x03\x01 HTTP/1.1" 400 157\n',
        "d.har": '{"log": {"entries": [{"startedDateTime": "2024-05-01T12:00:00Z", "request": {"method": "GET", "url": "https://h/\\r\\nX-Evil: 1"}}]}}',
        "e.jsonl": "\x00\xff" * 100,
    }
    for name, content in cases.items():
        (tmp_path / name).write_text(content)
        (tmp_path / f"{name}.toml").write_text(SCENARIO.format(file=name))
        for command in ("check", "run"):
            args = [sys.executable, "-m", "edge.cli", command, str(tmp_path / f"{name}.toml"), *(["--quiet"] if command == "run" else [])]
            done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
            assert done.returncode in (0, 1, 2), (name, command, done.stderr)
            assert "Traceback" not in done.stderr, (name, command, done.stderr)
