"""Following and steering a live rollout (issue 28, item 2), through a real ``edge serve`` and
the ``edge`` command an operator types: ``edge rollout status|pause|resume|abort|approve``, and
``edge weight`` refusing a split that a rollout owns unless told to pause it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from live import ADMIN_TOKEN, ROOT, admin_headers, serve
from scenario_builder import canary_service, compose, write

APP = canary_service(routes=["example.com/*"], production={"model": {"latency": "1ms"}}, rollout={
    "steps": [10, {"weight": 50, "manual": True}, {"weight": 100, "manual": True}], "interval": "300ms", "no_data": "pass",
})
SCENARIO = compose(APP, name="live-rollout")  # the browser test serves it too


def edge(served, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGE_ADMIN_TOKEN": ADMIN_TOKEN}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args, "--admin", served.admin], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env=env)


def rollout(served) -> dict:
    request = urllib.request.Request(served.admin + "/rollouts/app", headers=admin_headers())
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def wait_for(served, phase: str) -> dict:
    deadline = time.monotonic() + 30
    while (now := rollout(served))["phase"] != phase:
        assert time.monotonic() < deadline, now
        time.sleep(0.05)
    return now


@pytest.fixture
def served(tmp_path):
    path = write(tmp_path, SCENARIO, file="rollout.toml")
    with serve(str(path)) as running:
        yield running


def test_an_operator_follows_pauses_resumes_and_aborts_a_live_rollout(served):
    waiting = wait_for(served, "waiting")  # at 10%, for the approval before 50%
    # Every step after the first waits for an approval: however slow the machine, the rollout is
    # where the test left it when its next command arrives.
    assert (waiting["step"], waiting["steps"], waiting["weight"]) == (1, 3, 10.0)
    # Times are seconds since the server started, as /versions' are, not trio's clock (~1e5 s).
    assert all(0 <= e["at_s"] < 60 for e in waiting["events"]), waiting["events"]

    status = edge(served, "rollout", "status")
    assert status.returncode == 0, status.stderr
    assert "app: waiting, step 1 of 3, canary at 10%, against production;" in status.stdout
    assert "pass (10%): 0 canary answers" in status.stdout or "pass (10%): no data" in status.stdout

    refused = edge(served, "weight", "app", "canary", "30")
    assert refused.returncode == 2 and "owns its split (waiting, step 1 of 3)" in refused.stderr and "?pause_rollout=1" in refused.stderr
    assert rollout(served)["weight"] == 10.0  # nothing changed

    taken = edge(served, "weight", "app", "canary", "30", "--pause-rollout")
    assert (taken.returncode, taken.stdout) == (0, "app: production 70%, canary 30%\n"), taken.stderr
    paused = rollout(served)
    assert (paused["phase"], paused["weight"], paused["events"][-1]["event"]) == ("paused", 30.0, "paused")
    assert edge(served, "rollout", "approve", "app").returncode == 0  # kept for the resume, not acted on while paused
    time.sleep(1.0)  # three intervals: a paused rollout analyses nothing and takes no step
    assert (rollout(served)["phase"], rollout(served)["weight"]) == ("paused", 30.0)
    assert edge(served, "weight", "app", "canary", "20").returncode == 0  # the split is the operator's while paused

    resumed = edge(served, "rollout", "resume", "app")
    assert resumed.returncode == 0 and resumed.stdout.startswith("app: resumed: progressing, the canary at 50%"), resumed.stdout
    again = edge(served, "rollout", "pause", "app")
    assert again.returncode == 0 and "paused at" in again.stdout

    aborted = edge(served, "rollout", "abort", "app")
    assert aborted.returncode == 0 and "app: aborted: rolled back, the canary at 0%" in aborted.stdout
    final = rollout(served)
    assert (final["phase"], final["weight"]) == ("rolled back", 0.0) and final["events"][-1]["detail"] == "aborted by the operator"
    late = edge(served, "rollout", "pause", "app")
    assert late.returncode == 0 and "nothing to pause: the rollout is rolled back" in late.stdout
    assert edge(served, "weight", "app", "canary", "5").returncode == 0  # an ended rollout owns nothing


def test_rollout_commands_say_what_is_missing_or_unknown(served):
    no_service = edge(served, "rollout", "pause")
    assert no_service.returncode == 2 and "needs the SERVICE" in no_service.stderr
    unknown = edge(served, "rollout", "abort", "db")
    assert unknown.returncode == 2 and "no rollout of 'db' (rollouts: app)" in unknown.stderr
    as_json = edge(served, "rollout", "status", "--json")
    assert as_json.returncode == 0 and set(json.loads(as_json.stdout)) == {"app"}


def status_of_call(served, method: str, path: str) -> int:
    request = urllib.request.Request(served.admin + path, method=method, data=b"" if method == "POST" else None, headers=admin_headers())
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_a_live_rollout_waits_for_its_approval_then_promotes(served):
    assert wait_for(served, "waiting")["weight"] == 10.0
    assert status_of_call(served, "POST", "/rollouts/db/approve") == 404
    assert status_of_call(served, "GET", "/rollouts/app/approve") == 405
    approved = edge(served, "rollout", "approve", "app")
    assert approved.returncode == 0 and approved.stdout.startswith("app: approved: the rollout goes on"), approved.stdout
    assert wait_for(served, "waiting")["weight"] == 50.0
    assert edge(served, "rollout", "approve", "app").returncode == 0
    promoted = wait_for(served, "promoted")
    assert [e["event"] for e in promoted["events"]][-2:] == ["pass", "promote"]
    with urllib.request.urlopen(served.ingress + "/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    assert 'edge_rollout_phase{phase="promoted",service="app"} 1.0' in metrics
    assert 'edge_canary_weight{environment="production",service="app"} 100.0' in metrics
