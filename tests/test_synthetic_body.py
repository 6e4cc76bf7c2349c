"""Synthetic answers are printable JSON naming who answered, exactly the drawn size in bytes."""

from __future__ import annotations

import json

import pytest

from conftest import send
from edge.platform.fetch import Request
from edge.platform.workers import SyntheticBody

LABEL = b'{"service": "app", "environment": "canary", "version": "42"}\n'


@pytest.mark.parametrize("size", [1, len(LABEL) - 1, len(LABEL), len(LABEL) + 1, 4096, 100_000])
def test_body_is_exactly_the_drawn_size(size: int) -> None:
    body = SyntheticBody("app", "canary", "42").of(size)
    assert len(body) == size
    assert body.isascii() and all(32 <= c < 127 or c == 10 for c in body)


def test_body_is_json_naming_the_answerer_once_it_fits() -> None:
    body = SyntheticBody("app", "canary", "42")
    assert body.of(len(LABEL)) == LABEL
    assert json.loads(body.of(len(LABEL) + 1)) == {"service": "app", "environment": "canary", "version": "42"}
    assert json.loads(body.of(5000)) == {"service": "app", "environment": "canary", "version": "42"}
    assert body.of(len(LABEL) - 1) == LABEL[:-1]  # shorter than the label: its first bytes (the size wins)
    assert body.of(1) == b"{"
    assert body.of(100) == body.of(100) and body.of(10_000)[:100] == body.of(100)  # growing keeps what was given


SCENARIO = """
[scenario]
name = "bodies"
duration = "20s"

[[services]]
name = "app"
routes = ["example.com/*"]
version = 7
model = { cpu = "0s", latency = "1ms", size = "exp(2KiB)" }

[[timeline]]
at = "10s"
action = "deploy"
target = "app@production"
"""


def test_synthetic_answers_in_a_run_name_service_environment_and_the_version_deployed(make_scenario) -> None:
    loaded = make_scenario(SCENARIO)
    requests = [(at, Request("https://example.com/")) for at in (1.0, 2.0, 3.0, 11.0, 12.0, 13.0)]
    responses, _ = send(loaded, requests)
    parsed = 0
    for response, version in zip(responses, ["7"] * 3 + ["8"] * 3):
        assert response.status == 200
        body = response._body
        assert body.isascii() and b"\x00" not in body
        if len(body) > len(b'{"service": "app", "environment": "production", "version": "7"}'):
            assert json.loads(body) == {"service": "app", "environment": "production", "version": version}
            assert response.headers.get("content-type") == "application/json"
            parsed += 1
    assert parsed >= 4  # exp(2KiB): a body under 64 bytes is a 3% draw
