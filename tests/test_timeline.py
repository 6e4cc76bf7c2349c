"""The scenario timeline: faults, crashes, cold-start storms, weight changes, deploys, promotions."""

from __future__ import annotations

import pytest

from edge.scenario.errors import ConfigError
from edge.report.build import build_report
from edge.engine.simulate import simulate
from edge.scenario.values import EnvironmentKey

BASE = """
[scenario]
name = "timeline"

[[services]]
name = "api"
routes = ["api.test/*"]
{api}

[[traffic]]
arrivals = "constant(10/s)"
requests = [{{ url = "https://api.test/" }}]

{timeline}
"""

SPLIT = """
[services.environments.production]
version = 1
model = { latency = "1ms" }
[services.environments.canary]
version = 7
tags = { git = "abc123" }
model = { latency = "1ms" }
[services.split]
weights = { production = 100, canary = 0 }
"""

CODE = '''
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    return Response("ok")
'''


def run(make_scenario, timeline: str, api: str = 'model = { latency = "1ms" }', duration: float = 20, workers=None):
    loaded = make_scenario(BASE.format(api=api, timeline=timeline), workers)
    result = simulate(loaded, seed=1, duration=duration)
    return result, build_report(result)


def counts(report, key: str) -> dict[str, int]:
    return report.environments[key].status


def test_set_changes_a_models_behaviour_from_its_time(make_scenario):
    _, report = run(make_scenario, '[[timeline]]\nat = "10s"\naction = "set"\ntarget = "api@production"\nerrors = 1.0\nlatency = "50ms"')
    status = counts(report, "api@production")
    assert status["5xx"] in (99, 100) and status["2xx"] + status["5xx"] == 199  # 10/s from 0.1 s to 19.9 s
    assert report.environments["api@production"].latency_s.max == pytest.approx(0.05, rel=0.01)
    assert [(e.at_s, e.action, e.target) for e in report.timeline] == [(10.0, "set", "api@production")]
    assert "errors 1.0" in report.timeline[0].detail


def test_set_injects_faults_into_code_workers(make_scenario):
    _, report = run(
        make_scenario, '[[timeline]]\nat = "10s"\naction = "set"\ntarget = "api@production"\nerrors = "100%"',
        api='worker = "api.py"', workers={"api.py": CODE},
    )
    status = counts(report, "api@production")
    assert status["5xx"] in (99, 100) and status["2xx"] + status["5xx"] == 199
    assert report.clients.errors == status["5xx"]


def test_crash_refuses_calls_then_restarts_cold(make_scenario):
    api = 'model = { latency = "1ms" }\ncold_start = "50ms"\nkeep_warm = "1h"'
    _, report = run(make_scenario, '[[timeline]]\nat = "5s"\naction = "crash"\ntarget = "api@production"\nduration = "5s"', api=api)
    env = report.environments["api@production"]
    assert env.status["5xx"] in (49, 50, 51)  # 10/s for the 5 s it was down
    assert env.cold_starts == 2  # the first call, and the first after the restart (one slot suffices at 10/s)
    assert "restarts cold" in report.timeline[0].detail


def test_cold_start_storm(make_scenario):
    api = 'model = { latency = "1ms" }\ncold_start = "10ms"\nkeep_warm = "1h"'
    _, calm = run(make_scenario, "", api=api)
    # at 10.05 s no call is in flight: one that were would finish and leave its slot warm
    _, storm = run(make_scenario, '[[timeline]]\nat = "10050ms"\naction = "cold"\ntarget = "api@production"', api=api)
    assert storm.environments["api@production"].cold_starts == calm.environments["api@production"].cold_starts + 1


def test_weights_move_traffic_at_their_time(make_scenario):
    _, report = run(make_scenario, '[[timeline]]\nat = "10s"\naction = "weights"\ntarget = "api"\nweights = { production = 0, canary = 100 }', api=SPLIT)
    assert report.environments["api@canary"].requests in (99, 100)
    assert report.routers["api"].weights == {"production": 0.0, "canary": 100.0}


def test_deploy_bumps_the_version_and_records_tags(make_scenario):
    timeline = '[[timeline]]\nat = "10s"\naction = "deploy"\ntarget = "api@canary"\ntags = { git = "def456" }\nlatency = "5ms"'
    result, report = run(make_scenario, timeline + '\n[[timeline]]\nat = "10s"\naction = "weights"\ntarget = "api"\nweights = { production = 0, canary = 100 }', api=SPLIT)
    canary = result.metrics.environments[EnvironmentKey("api", "canary")]
    assert sum(canary.requests.get("8", [0])) in (99, 100)  # version 7 + 1
    assert result.topology.environments[EnvironmentKey("api", "canary")].tags == {"git": "def456"}
    assert report.timeline[0].detail == "version 8; git=def456; latency 5ms"


def test_promote_gives_production_the_canarys_code_as_its_next_version_and_all_traffic(make_scenario):
    timeline = '[[timeline]]\nat = "10s"\naction = "promote"\ntarget = "api@canary"'
    result, report = run(make_scenario, '[[timeline]]\nat = "0s"\naction = "weights"\ntarget = "api"\nweights = { production = 50, canary = 50 }\n' + timeline, api=SPLIT)
    production = result.metrics.environments[EnvironmentKey("api", "production")]
    assert sum(production.requests.get("2", [0])) in (99, 100)  # after the promotion, all of it, as production's version 2
    assert "7" not in production.requests  # the canary's number is the canary's
    assert report.timeline[1].detail == "production now runs version 2 (from api@canary v7) and takes all traffic"
    assert report.routers["api"].weights == {"production": 100.0, "canary": 0.0}
    assert result.topology.environments[EnvironmentKey("api", "production")].tags == {"git": "abc123"}


@pytest.mark.parametrize(
    "event, path, expected",
    [
        ('at = "1s"\naction = "explode"\ntarget = "api@production"', "timeline[0].action", "one of set, crash"),
        ('at = "1s"\naction = "set"\ntarget = "api"', "timeline[0].target", "SERVICE@ENVIRONMENT"),
        ('at = "1s"\naction = "set"\ntarget = "web@production"', "timeline[0].target", "expected a service"),
        ('at = "1s"\naction = "set"\ntarget = "api@blue"', "timeline[0].target", "environment of 'api'"),
        ('at = "1s"\naction = "crash"\ntarget = "api@production"', "timeline[0].duration", "how long"),
        ('at = "1s"\naction = "weights"\ntarget = "api"\nweights = { production = 50, canary = 20 }', "timeline[0].weights", "summing to 100"),
        ('at = "soon"\naction = "cold"\ntarget = "api@production"', "timeline[0].at", "duration"),
        ('at = "1s"\naction = "set"\ntarget = "api@production"\nerrors = 3', "timeline[0].errors", "ratio"),
    ],
)
def test_timeline_errors_name_the_path(make_scenario, event, path, expected):
    with pytest.raises(ConfigError) as error:
        make_scenario(BASE.format(api=SPLIT, timeline="[[timeline]]\n" + event))
    message = str(error.value)
    assert f": {path}: " in message and expected in message, message
