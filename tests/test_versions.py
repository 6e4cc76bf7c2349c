"""Version history: numbers only grow across set, deploy, promote; a rollback serves an earlier
version again (Workers' rollback: a new deployment of that version); reports and metrics count each
call under the version that served it; the admin API and ``edge versions`` / ``edge rollback``
against a real ``edge serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from rich.console import Console

from edge.engine.simulate import simulate
from edge.metrics.exposition import registry_for
from edge.platform.versions import ROLLBACK_LIMIT, UnknownVersion, Version, VersionError, VersionHistory
from edge.report.build import build_report, print_summary
from live import ADMIN_TOKEN, ROOT, serve
from scenario_builder import compose, service, traffic, write


def issue(timeline: list[dict], staging_errors: float = 0.0) -> str:
    """The issue's bug: staging at v4, production at v12; `promote api@staging` made production v4."""
    api = service("api", environments={
        "production": {"version": 12, "tags": {"git": "prod12"}, "model": {"latency": "1ms"}},
        "staging": {"version": 4, "tags": {"git": "stage4"}, "model": {"latency": "1ms", "errors": staging_errors}},
    }, split={"weights": {"production": 100, "staging": 0}})
    return compose(api, traffic=[traffic("constant(10/s)", "https://api.test/")], timeline=timeline, name="versions")


def event(at: str, action: str, target: str, **fields: object) -> list[dict]:
    """A ``[[timeline]]`` event, as a list: events add up to a timeline."""
    return [{"at": at, "action": action, "target": target, **fields}]


def run(make_scenario, timeline: list[dict], *, staging_errors: float = 0.0, duration: float = 30.0):
    loaded = make_scenario(issue(timeline, staging_errors))
    result = simulate(loaded, seed=3, duration=duration)
    return result, build_report(result)


def test_promoting_staging_v4_into_production_v12_makes_production_v13_from_staging_v4(make_scenario):
    result, report = run(make_scenario, event("10s", "promote", "api@staging"))
    production = report.environments["api@production"]
    assert production.version == "13"
    assert [(v.number, v.message, v.source, v.tags) for v in production.versions] == [
        (12, "initial", None, {"git": "prod12"}),
        (13, "promoted from api@staging v4", "from api@staging v4", {"git": "stage4"}),
    ]
    assert report.timeline[0].detail == "production now runs version 13 (from api@staging v4) and takes all traffic"
    # Two rows, each the calls that version served: before the promotion and after it.
    served = {v.number: v.requests for v in production.versions}
    assert served[12] in (99, 100) and served[13] in (199, 200)
    assert sum(served.values()) == production.requests
    assert report.environments["api@staging"].version == "4"  # the source keeps its own number
    assert {b.version for b in report.bindings} <= {"12", "13"}


def test_numbers_only_grow_across_deploy_promote_and_rollback_and_rollback_reuses_the_old_number(make_scenario):
    timeline = (event("5s", "deploy", "api@production", message="hotfix")  # 13
                + event("10s", "promote", "api@staging")  # 14, from staging v4
                + event("15s", "rollback", "api@production", version=12)  # 12 again, no new number
                + event("20s", "deploy", "api@production"))  # 15: above every earlier version, not 13
    _, report = run(make_scenario, timeline)
    production = report.environments["api@production"]
    assert [v.number for v in production.versions] == [12, 13, 14, 15]
    assert [(d.at_s, d.version) for d in production.deployments] == [(0.0, 12), (5.0, 13), (10.0, 14), (15.0, 12), (20.0, 15)]
    assert production.deployments[3].message == "rollback from v14"
    assert report.timeline[2].detail == "version 12 serves again (rollback from v14)"
    served = {v.number: v.requests for v in production.versions}
    assert served[12] in (99, 100)  # 0-5 s and 15-20 s, 10/s
    assert sum(served.values()) == production.requests


def test_a_rollback_restores_the_earlier_versions_behaviour(make_scenario):
    """A bad promotion (staging answers 500) is rolled back: production's errors stop."""
    timeline = event("10s", "promote", "api@staging") + event("20s", "rollback", "api@production")
    result, report = run(make_scenario, timeline, staging_errors=1.0)
    production = {v.number: v for v in report.environments["api@production"].versions}
    assert production[13].status == {"5xx": production[13].requests} and production[13].requests in (99, 100, 101)
    assert production[12].status == {"2xx": production[12].requests}  # before and after: all fine
    assert report.environments["api@production"].version == "12"
    # Prometheus sees the same split: edge_requests_total by version.
    samples = {
        (s.labels["version"], s.labels["status_class"]): s.value
        for family in registry_for(result.metrics).collect() if family.name == "edge_requests"
        for s in family.samples if s.name == "edge_requests_total" and s.labels["environment"] == "production"
    }
    assert samples[("13", "5xx")] == production[13].requests and samples[("12", "2xx")] == production[12].requests


def test_a_set_is_a_new_version_and_a_rollback_undoes_it(make_scenario):
    timeline = event("10s", "set", "api@production", errors=1.0) + event("20s", "rollback", "api@production")
    _, report = run(make_scenario, timeline)
    production = report.environments["api@production"]
    assert report.timeline[0].detail == "version 13; errors 1.0"
    by_number = {v.number: v for v in production.versions}
    assert by_number[13].message == "set errors 1.0" and by_number[13].status == {"5xx": by_number[13].requests}
    assert by_number[12].status == {"2xx": by_number[12].requests} and by_number[12].requests in (199, 200)


CODE = '''
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    if env.MODE == "broken":
        raise RuntimeError("broken mode")
    return Response(env.MODE)
'''

def code_scenario(timeline: list[dict]) -> str:
    api = service("api", worker="api.py", vars={"MODE": "fine"}, concurrency=4)
    return compose(api, traffic=[traffic("constant(10/s)", "https://api.test/")], timeline=timeline, name="vars")


def test_a_deploy_of_new_vars_reaches_running_slots_and_a_rollback_brings_the_old_ones_back(make_scenario):
    timeline = event("10s", "deploy", "api@production", vars={"MODE": "broken"}) + event("20s", "rollback", "api@production")
    loaded = make_scenario(code_scenario(timeline), {"api.py": CODE})
    report = build_report(simulate(loaded, seed=1, duration=30))
    by_number = {v.number: v for v in report.environments["api@production"].versions}
    assert report.timeline[0].detail == "version 2; vars MODE"
    assert by_number[2].status == {"5xx": by_number[2].requests} and by_number[2].requests in (99, 100, 101)
    assert by_number[1].status == {"2xx": by_number[1].requests}


def test_the_summary_shows_a_row_per_version_when_the_version_changed(make_scenario):
    _, report = run(make_scenario, event("10s", "promote", "api@staging"))
    console = Console(width=200, record=True, file=open(os.devnull, "w"))
    print_summary(report, console)
    text = console.export_text()
    rows = [line for line in text.splitlines() if "api@production" in line and "│" in line]
    assert len(rows) == 3  # the environment, then v12 and v13
    assert "api@production v12" in rows[1] and "api@production v13" in rows[2]
    unchanged = [line for line in text.splitlines() if "api@staging v" in line and "│" in line]
    assert unchanged == []  # one version all run long: one row


def edge_check(tmp_path, timeline: list[dict]) -> subprocess.CompletedProcess:
    path = write(tmp_path, issue(timeline, staging_errors=0), file="s.toml")
    return subprocess.run([sys.executable, "-m", "edge.cli", "check", str(path)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)


@pytest.mark.parametrize("timeline, path, message", [
    (event("5s", "rollback", "api@production", version=7), "timeline[0].version", "api@production has no version 7 (versions: 12)"),
    (event("5s", "rollback", "api@production"), "timeline[0]", "nothing to roll back to, only version 12 was ever deployed"),
    (event("5s", "deploy", "api@production", version=12), "timeline[0].version", "version 12 is not above every earlier one (the latest is 12)"),
    # In time order, not file order: the promotion at 5s took 13 before the deploy at 9s asks for it.
    (event("9s", "deploy", "api@production", version=13) + event("5s", "promote", "api@staging"), "timeline[0].version",
     "version 13 is not above every earlier one (the latest is 13)"),
    (event("5s", "deploy", "api@production") + event("6s", "rollback", "api@production", version=13), "timeline[1].version",
     "api@production already runs version 13"),
    (event("5s", "promote", "api@staging", version=3), "timeline[0].version", "only a deploy (its number) or a rollback"),
    (event("5s", "set", "api@production", vars={"A": "b"}), "timeline[0].vars", "only a deploy changes vars"),
])
def test_edge_check_refuses_version_changes_that_cannot_happen(tmp_path, timeline, path, message):
    done = edge_check(tmp_path, timeline)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"s.toml: {path}" in done.stderr and message in done.stderr, done.stderr


def test_edge_check_takes_a_number_just_above_the_latest_and_a_rollback_to_any_earlier_version(tmp_path):
    timeline = (event("5s", "deploy", "api@production", version=13) + event("6s", "deploy", "api@production", version=20)
                + event("7s", "rollback", "api@production", version=12) + event("8s", "rollback", "api@production"))
    done = edge_check(tmp_path, timeline)
    assert done.returncode == 0, done.stderr


def history_of(n: int) -> VersionHistory[str]:
    history: VersionHistory[str] = VersionHistory("api@production", Version(1, 0.0, "initial", {}), "v1")
    for number in range(2, n + 1):
        history.create(f"v{number}", at_s=float(number), message="deploy", tags={})
    return history


def test_rollback_reaches_the_ten_most_recent_versions_and_no_further():
    history = history_of(ROLLBACK_LIMIT + 1)  # versions 1..11: 2..11 are the ten most recent
    assert history.rollback_target(2) == 2  # exactly the tenth most recent
    with pytest.raises(VersionError, match="older than the 10 most recent versions"):
        history.rollback_target(1)  # the eleventh
    assert history_of(ROLLBACK_LIMIT).rollback_target(1) == 1  # ten versions: all within reach


def test_the_default_rollback_is_the_version_deployed_before_the_current_one():
    history = history_of(3)
    assert history.rollback(None, at_s=4.0) == (2, "v2")
    assert history.rollback(None, at_s=5.0) == (3, "v3")  # rolling back a rollback: the version it replaced
    with pytest.raises(UnknownVersion, match="has no version 0"):
        history.rollback(0, at_s=6.0)
    assert [d.version for d in history.deployments] == [1, 2, 3, 2, 3]
    assert [v.number for v in history.versions] == [1, 2, 3]


# -- live: the admin API and the commands against a real `edge serve` ---------------------------

LIVE = compose(service("api", worker="api.py", vars={"MODE": "fine"}, secrets={"TOKEN": "live-secret-0123"},
                      environments={"production": {"version": 12}}), name="live-versions")


@pytest.fixture
def live_server(tmp_path):
    with serve(str(write(tmp_path, LIVE, {"api.py": CODE}, file="live.toml"))) as running:
        yield running


def admin(served, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(served.admin + path, data=data, method=method,
                                     headers={"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(served) -> int:
    request = urllib.request.Request(served.ingress + "/", headers={"host": "api.test"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def edge(served, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args, "--admin", served.admin], capture_output=True, text=True, cwd=ROOT,
                          timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT), "EDGE_ADMIN_TOKEN": ADMIN_TOKEN})


def test_admin_deploy_then_edge_rollback_restores_a_live_environment(live_server):
    assert get(live_server) == 200
    status, history = admin(live_server, "POST", "/versions/api@production", {"vars": {"MODE": "broken"}, "secrets": {"TOKEN": "new-secret-4567"},
                                                                              "message": "try broken mode"})
    assert status == 200 and history["active"] == 13
    assert "new-secret-4567" not in json.dumps(history)
    assert [get(live_server) for _ in range(3)] == [500, 500, 500]  # the running slots saw the new vars

    listed = edge(live_server, "versions", "api@production")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == "api@production: version 13 serving"
    assert "* v13" in listed.stdout and "try broken mode" in listed.stdout

    back = edge(live_server, "rollback", "api@production", "-m", "broken mode fails")
    assert (back.returncode, back.stdout) == (0, "api@production: version 12 serves again (rollback from v13: broken mode fails)\n")
    assert [get(live_server) for _ in range(3)] == [200, 200, 200]

    _, history = admin(live_server, "GET", "/versions/api@production")
    assert [v["number"] for v in history["versions"]] == [12, 13] and [d["version"] for d in history["deployments"]] == [12, 13, 12]
    _, everything = admin(live_server, "GET", "/versions")
    assert list(everything) == ["api@production"]
    metrics = urllib.request.urlopen(live_server.metrics, timeout=10).read().decode()
    assert 'environment="production",service="api",status_class="5xx",version="13"} 3.0' in metrics
    assert 'environment="production",service="api",status_class="2xx",version="12"} 4.0' in metrics
    live_server.stop()
    assert "new-secret-4567" not in live_server.stderr + live_server.stdout
    assert "api@production: version 13 deployed (var MODE, secret TOKEN)" in live_server.stderr


def test_admin_and_edge_rollback_refuse_what_cannot_be_done(live_server):
    status, answer = admin(live_server, "POST", "/versions/api@production/rollback")
    assert (status, answer["error"]) == (409, "api@production: nothing to roll back to, only version 12 was ever deployed")
    assert admin(live_server, "POST", "/versions/api@production", {"version": 12})[0] == 409  # numbers only grow
    assert admin(live_server, "POST", "/versions/api@production", {"version": 13})[0] == 200  # just above: fine
    status, answer = admin(live_server, "POST", "/versions/api@production/rollback", {"to": 99})
    assert (status, answer["error"]) == (404, "api@production has no version 99 (versions: 12, 13)")
    assert admin(live_server, "POST", "/versions/api@staging/rollback")[0] == 404
    assert admin(live_server, "POST", "/versions/api@production", {"colour": "blue"})[0] == 400
    assert admin(live_server, "GET", "/versions/api@production/rollback")[0] == 405

    missing = edge(live_server, "rollback", "api@production", "--to", "99")
    assert missing.returncode == 2 and "404 api@production has no version 99 (versions: 12, 13)" in missing.stderr
    bare = edge(live_server, "versions", "api")
    assert bare.returncode == 2 and "expected SERVICE@ENVIRONMENT" in bare.stderr
    assert edge(live_server, "rollback", "api@production", "--to", "12").returncode == 0
    assert admin(live_server, "GET", "/versions/api@production")[1]["active"] == 12
