"""Each cross-table rule is a named check; ``edge check`` rejects whatever ``edge run`` would."""

from __future__ import annotations

import textwrap
import tomllib

import pytest

from edge import cli
from edge.scenario import checks
from edge.scenario.errors import ConfigError
from edge.scenario.load import convert
from edge.scenario.resolved import LoadedScenario
from edge.scenario.schema import Scenario
from test_config import GOOD, GW

ROLLOUT = '\n[services.rollout]\nsteps = [1, 50]\n'
SECRET = 'secrets = { TOKEN = "t" }\n'


def decoded(tmp_path, toml: str) -> LoadedScenario:
    """Decoded (typed, each table valid) but not checked across tables."""
    (tmp_path / "gw.py").write_text(GW)
    raw = tomllib.loads(textwrap.dedent(toml))
    return LoadedScenario(spec=convert(raw, Scenario, "s.toml"), file="s.toml", base_dir=str(tmp_path))


CASES = [
    ("check_service_names", GOOD.replace('name = "app"', 'name = "gateway"'), "services[1].name", "unique service name"),
    ("check_binding_targets", GOOD.replace('APP = "app"', 'APP = "apq"'), "services[0].bindings.APP", "name of a service"),
    ("check_binding_targets", GOOD.replace('APP = "app"', 'APP = "app@preview"'), "services[0].bindings.APP", "environment of 'app'"),
    ("check_worker_modules", GOOD.replace('worker = "gw.py"', 'worker = "nope.py"'), "services[0].worker", "does not exist"),
    ("check_worker_modules", GOOD.replace('model = { cpu = "1ms" }\n[services.split]', 'vars = {}\n[services.split]'),
     "services[1].environments.canary", "expected `worker`"),
    ("check_isolates", GOOD.replace('[services.environments.canary]\nmodel = { cpu = "1ms" }', '[services.environments.canary]\nmodel = { cpu = "1ms" }\nmax_isolates = 4'),
     "services[1].environments.canary.max_isolates", "expected a cold_start for app@canary"),
    ("check_isolates", GOOD.replace('name = "app"\n', 'name = "app"\nmax_isolates = 4\n'), "services[1].max_isolates", "expected a cold_start for app@production"),
    ("check_split_environments", GOOD.replace("canary = 1 }", "canery = 1 }"), "services[1].split.weights.canery", "environment of 'app'"),
    ("check_split_environments", GOOD.replace("canary = 1 }", 'canary = 1 }\nretry = { to = "prod" }'), "services[1].split.retry.to", "environment of 'app'"),
    ("check_rollout_environments", GOOD + ROLLOUT + 'canary = "preview"\n', "services[1].rollout.canary", "environment of 'app'"),
    ("check_rollout_environments", GOOD + ROLLOUT + 'stable = "canary"\n', "services[1].rollout.stable", "other than the canary"),
    ("check_rollout_environments", GOOD + ROLLOUT + 'gates = ["error ratio < 1%", "p99 latency of app@production < 50ms"]\n',
     "services[1].rollout.gates[1]", "expected a gate on the canary (app@canary"),
    ("check_traffic_groups", GOOD + '\n[[traffic]]\nname = "group0"\nrequests = [{ url = "https://example.com/" }]\n', "traffic[1].name", "no other traffic group"),
    ("check_traffic_groups", GOOD.replace('routes = ["example.com/*"]\n', ""), "traffic[0]", "at least one public service"),
    ("check_secret_refs", GOOD.replace('url = "https://example.com/"', 'url = "https://example.com/", headers = { t = "secret:nope.X" }'),
     "traffic[0].requests[0].headers.t", "naming a service"),
    ("check_secret_refs", GOOD.replace('url = "https://example.com/"', 'url = "https://example.com/", headers = { t = "secret:app.X" }'),
     "traffic[0].requests[0].headers.t", "no secret 'X'"),
    ("check_timeline_targets", GOOD + '\n[[timeline]]\nat = "1s"\naction = "cold"\ntarget = "app@blue"\n', "timeline[0].target", "environment of 'app'"),
    ("check_timeline_targets", GOOD + '\n[[timeline]]\nat = "1s"\naction = "approve"\ntarget = "app"\n', "timeline[0].target", "with a rollout"),
    ("check_timeline_targets", GOOD + '\n[[timeline]]\nat = "1s"\naction = "weights"\ntarget = "gateway"\nweights = { production = 100 }\n',
     "timeline[0].target", "with a split"),
    ("check_timeline_weights", GOOD + '\n[[timeline]]\nat = "1s"\naction = "weights"\ntarget = "app"\nweights = { production = 90, canary = 5 }\n',
     "timeline[0].weights", "summing to 100"),
    ("check_timeline_weights", GOOD + '\n[[timeline]]\nat = "1s"\naction = "weights"\ntarget = "app"\nweights = { production = 90, blue = 10 }\n',
     "timeline[0].weights.blue", "environment of 'app'"),
    ("check_timeline_promotions", GOOD + '\n[[timeline]]\nat = "1s"\naction = "promote"\ntarget = "app@canary"\nto = "blue"\n', "timeline[0].to", "environment of 'app'"),
    ("check_tuned_service", GOOD + '\n[tune]\nbad = { errors = "5%" }\n', "tune", "with a `rollout`"),
    ("check_tuned_service", GOOD + ROLLOUT + '\n[tune]\nservice = "gateway"\nbad = { errors = "5%" }\n', "tune.service", "with a rollout (app)"),
    ("check_threshold_subjects", 'thresholds = ["errors of app@blue == 0"]\n' + GOOD, "thresholds[0]", "service environment"),
]


@pytest.mark.parametrize("name, toml, path, expected", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_each_check_names_the_path_and_what_was_expected(tmp_path, name, toml, path, expected):
    check = getattr(checks, name)
    assert check in checks.CHECKS
    loaded = decoded(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        check(loaded)
    assert info.value.path == path and expected in info.value.expected, str(info.value)
    for other in checks.CHECKS[: checks.CHECKS.index(check)]:
        other(loaded)  # an earlier check does not claim this error first


@pytest.mark.parametrize("gates", ['gates = ["error ratio < 1%"]\n', 'gates = ["p99 latency of app@canary < 50ms"]\n'])
def test_every_check_passes_the_good_scenario(tmp_path, gates):
    loaded = decoded(tmp_path, GOOD + ROLLOUT + gates)
    for check in checks.CHECKS:
        check(loaded)


def test_timeline_weights_need_a_router_of_two_environments(tmp_path):
    toml = GOOD.replace('[services.environments.canary]\nmodel = { cpu = "1ms" }\n', "").replace("production = 99, canary = 1", "production = 100")
    toml += '\n[[timeline]]\nat = "1s"\naction = "weights"\ntarget = "app"\nweights = { production = 100 }\n'
    with pytest.raises(ConfigError) as info:
        checks.check_timeline_targets(decoded(tmp_path, toml))
    assert info.value.path == "timeline[0].target" and "two or more environments" in info.value.expected


@pytest.mark.parametrize(
    "old, new, path",
    [
        ('routes = ["example.com/*"]', 'routes = ["example.com/*/x*"]', "services[0].routes[0]"),
        ('model = { cpu = "1ms" }', 'model = { cpu = "1ms", error_status = 150 }', "services[1].environments.production.model.error_status"),
        ('url = "https://example.com/"', 'url = "https://example.com/", headers = { "bad name" = "1" }', "traffic[0].requests[0].headers.bad name"),
        ('url = "https://example.com/"', 'url = "https://example.com/", method = "G/T"', "traffic[0].requests[0].method"),
    ],
)
def test_edge_check_exits_2_on_what_edge_run_used_to_die_on(tmp_path, capsys, old, new, path):
    (tmp_path / "gw.py").write_text(GW)
    scenario = tmp_path / "s.toml"
    assert old in GOOD
    scenario.write_text(GOOD.replace(old, new, 1))
    assert cli.main(["check", str(scenario)]) == 2
    assert f"edge: error: {scenario}: {path}: expected" in capsys.readouterr().err
