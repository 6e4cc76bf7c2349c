"""Fault isolation in virtual time: whatever a worker does costs its own request, and the run goes on.

Live mode (a real ``edge serve``) is in ``test_live_faults.py``; random faults in
``test_fault_properties.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import delays
from conftest import send, text
from scenario_builder import compose, service, traffic

from edge.platform.fetch import Request
from edge.scenario.values import EnvironmentKey

SECRET = "hunter2-very-secret"

APP = service(routes=["example.com/*"], worker="app.py", secrets={"KEY": SECRET})


def faulty(step_limit: str) -> str:
    """app, one call at a time, its worker faulting as the path says."""
    return compose(APP | {"concurrency": 1}, step_limit=step_limit)

WORKER = """
import os, sys, time
from edge.platform.fetch import Headers, Response

class Custom(BaseException):
    pass

class Sneaky(Response):
    @property
    def status(self):
        raise RuntimeError("platform code must not run a worker's property")

async def fetch(request, env, ctx):
    fault = request.path.strip("/")
    await ctx.cpu("1ms")
    if fault == "exit":
        sys.exit("bye " + env.KEY)
    if fault == "keyboard":
        raise KeyboardInterrupt(env.KEY)
    if fault == "generator-exit":
        raise GeneratorExit
    if fault == "custom":
        raise Custom(env.KEY)
    if fault == "group":
        raise BaseExceptionGroup("many", [ValueError("a"), Custom("b")])
    if fault == "runtime":
        raise RuntimeError(env.KEY)
    if fault == "none":
        return None
    if fault == "int":
        return 42
    if fault == "dict-headers":
        response = Response("x")
        response.headers = {"a": "b"}
        return response
    if fault == "status-700":
        return Response("x", status=700)
    if fault == "status-str":
        return Response("x", status="200")
    if fault == "body-int":
        return Response(42)
    if fault == "spin":
        if "SPINNING" in os.environ:  # a file to create, telling a test the spinning has begun
            open(os.environ["SPINNING"], "w").close()
        while True:
            pass
    if fault == "sleep":
        time.sleep(30)
    if fault == "swallow":
        while True:
            try:
                while True:
                    time.sleep(1)
            except BaseException:
                break  # caught the interruption once, then answers as if nothing happened
        return Response("swallowed")
    if fault == "subclass":
        return Sneaky("sub", headers={"x-kept": "yes"})
    return Response("fine")
"""

RAISED = ["exit", "keyboard", "generator-exit", "custom", "group", "runtime"]
GARBAGE = ["none", "int", "dict-headers", "status-700", "status-str", "body-int"]


def scenario(make_scenario, step_limit: str = "10s"):
    return make_scenario(faulty(step_limit), {"app.py": WORKER})


@pytest.mark.parametrize("fault", RAISED + GARBAGE)
def test_a_worker_fault_is_a_1101_for_its_request_only_and_the_run_goes_on(make_scenario, caplog, fault):
    paths = ["/", f"/{fault}", "/", f"/{fault}", "/"]
    responses, result = send(scenario(make_scenario), [Request(f"https://example.com{p}") for p in paths])
    assert [r.status for r in responses] == [200, 500, 200, 500, 200]
    assert text(responses[1]) == "error code: 1101" and responses[1].headers.get("x-edge-error") == "exception"
    assert text(responses[4]) == "fine"
    stats = result.metrics.environments[EnvironmentKey("app", "production")]
    assert stats.exceptions == 2
    assert SECRET not in caplog.text


def test_a_response_subclass_is_answered_as_a_plain_response(make_scenario):
    [response], _ = send(scenario(make_scenario), [Request("https://example.com/subclass")])
    assert type(response).__name__ == "Response" and response.status == 200
    assert text(response) == "sub" and response.headers.get("x-kept") == "yes"


@pytest.mark.parametrize("fault", ["spin", "sleep"])
def test_a_worker_step_that_holds_the_loop_is_stopped_at_the_step_limit(make_scenario, fault):
    with delays.measured() as waited:
        started = time.monotonic()
        paths = ["/", f"/{fault}", "/"]
        responses, result = send(scenario(make_scenario, step_limit="200ms"), [Request(f"https://example.com{p}") for p in paths])
        elapsed = time.monotonic() - started
    assert [r.status for r in responses] == [200, 503, 200]
    assert text(responses[1]) == "error code: 1102" and responses[1].headers.get("x-edge-error") == "stalled"
    assert result.metrics.environments[EnvironmentKey("app", "production")].stalls == 1
    assert 0.2 <= elapsed < 5 + waited.seconds  # the limit, not the 30 s sleep nor for ever


def test_a_worker_that_swallows_the_interruption_keeps_its_answer_and_no_stall_is_counted(make_scenario):
    responses, result = send(scenario(make_scenario, step_limit="200ms"), [Request("https://example.com/swallow")])
    assert [(r.status, text(r)) for r in responses] == [(200, "swallowed")]
    assert result.metrics.environments[EnvironmentKey("app", "production")].stalls == 0  # nothing reached the platform


def test_steps_under_the_step_limit_are_left_alone(make_scenario):
    worker = """
    import time
    from edge.platform.fetch import Response
    async def fetch(request, env, ctx):
        time.sleep(0.15)  # real time, under the 400 ms limit
        await ctx.sleep("1ms")
        time.sleep(0.15)  # a second step: the limit is per step, not per request
        return Response("slow but fine")
    """
    loaded = make_scenario(faulty("400ms"), {"app.py": worker})
    responses, result = send(loaded, [Request("https://example.com/")])
    assert [r.status for r in responses] == [200]
    assert result.metrics.environments[EnvironmentKey("app", "production")].stalls == 0


def run_scenario(fault: str, step_limit: str) -> str:
    """Two seconds of 5/s to the path ``/FAULT``."""
    return compose(APP, traffic=[traffic("constant(5/s)", f"https://example.com/{fault}", name="users")], duration="2s", step_limit=step_limit)


def edge_run(tmp_path, fault: str, step_limit: str = "10s", env: dict[str, str] | None = None, **kwargs):
    (tmp_path / "app.py").write_text(textwrap.dedent(WORKER))
    (tmp_path / "run.toml").write_text(run_scenario(fault, step_limit))
    env = {**os.environ, "PYTHONPATH": os.getcwd(), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", str(tmp_path / "run.toml"), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs,
    )


def test_edge_run_survives_sys_exit_in_a_worker_and_prints_no_secret(tmp_path):
    out, err = edge_run(tmp_path, "exit").communicate(timeout=60)
    assert "10 errors" in out, out
    assert "SystemExit: bye ***" in err and SECRET not in out + err


def test_edge_run_with_a_spinning_worker_ends(tmp_path):
    process = edge_run(tmp_path, "spin", step_limit="100ms")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "10 errors" in out and "step wall-time limit (100ms)" in err


def test_ctrl_c_stops_edge_run_while_a_worker_spins_and_is_not_taken_for_a_worker_fault(tmp_path):
    spinning = tmp_path / "spinning"
    process = edge_run(tmp_path, "spin", step_limit="60s", env={"SPINNING": str(spinning)})  # the watchdog would take a minute
    try:
        deadline = time.monotonic() + 60
        while not spinning.exists():  # started, and spinning
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        with delays.measured(process) as waited:
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
            stopped = time.monotonic() - sent
    finally:
        process.kill()
        process.wait()
    assert stopped < 5 + waited.seconds
    assert process.returncode == 130  # interrupted, not a finished run with one more error
    assert err == "edge: interrupted by SIGINT\n"


def test_every_log_record_and_uncaught_traceback_is_redacted():
    program = f"""
import logging
from edge.platform import redact
logging.basicConfig()
redact.register(["{SECRET}"])
try:
    raise RuntimeError("key {SECRET}")
except RuntimeError:
    logging.getLogger("any").exception("failed with %s", "{SECRET}")
raise ValueError("{SECRET}") from RuntimeError("{SECRET}")
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert "failed with ***" in done.stderr and "RuntimeError: key ***" in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_a_worker_that_keeps_stalling_is_stopped_after_its_second_stall_and_the_report_says_so(tmp_path):
    # Before: each of its calls cost the step limit in wall time (10 s by default): 40 s for a
    # half-second run at 10 req/s. One stall leaves the worker running (an unlucky input); the
    # second stops it for the rest of the run, its later calls answered 1102 at once.
    import json

    (tmp_path / "app.py").write_text(textwrap.dedent(WORKER))
    (tmp_path / "run.toml").write_text(run_scenario("spin", "300ms"))
    with delays.measured() as waited:  # this process and the run's
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "edge.cli", "run", str(tmp_path / "run.toml"), "--no-progress", "--json", str(tmp_path / "r.json")],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    app = json.loads((tmp_path / "r.json").read_text())["environments"]["app@production"]
    assert (app["requests"], app["stalls"], app["answered_without_running"]) == (10, 2, 8)
    assert 0.4 <= app["stopped_at_s"] < 0.6  # the second call (constant 5/s: at 0.2 s, 0.4 s, ...)
    assert "its 8 later calls were answered 503 (error 1102) without running it" in " ".join(done.stdout.split())
    assert elapsed < 0.3 * 10 + waited.seconds  # two step limits, not ten


def test_one_stall_leaves_the_worker_running(make_scenario):
    from actors.environment import STOP_AFTER_STALLS

    assert STOP_AFTER_STALLS == 2
    responses, result = send(scenario(make_scenario, step_limit="200ms"),
                             [Request("https://example.com/spin"), (1.0, Request("https://example.com/"))])
    assert [r.status for r in responses] == [503, 200]
    stats = result.metrics.environments[EnvironmentKey("app", "production")]
    assert (stats.stalls, stats.stopped_at, stats.unrun) == (1, None, 0)
