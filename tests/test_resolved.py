"""The resolved scenario: what each environment inherits from its service, worked out once.

Every reader (engine, checks, tune, graph, reports) takes these answers, so a rule changed here
changes all of them; each rule is pinned at its boundary (0 is a setting, None is not).
"""

from __future__ import annotations

import msgspec
import pytest

from edge.scenario.errors import ConfigError
from edge.scenario.resolved import DEFAULT_CONCURRENCY, DEFAULT_KEEP_WARM, DEFAULT_MAILBOX, LoadedScenario
from edge.scenario.values import EnvironmentKey, Target
from scenario_builder import canary_service, compose, load, service, traffic

MODEL = {"latency": "1ms"}


def resolved(tmp_path, *services: dict, timeline: tuple = ()) -> LoadedScenario:
    return load(tmp_path, compose(*services, traffic=[traffic("poisson(1/s)", "https://app.test/")], timeline=timeline, duration="1s"),
                {"w.py": "async def fetch(request, env, ctx):\n    return None\n"})


def env(loaded: LoadedScenario, key: str):
    return loaded.resolved.environment(EnvironmentKey.parse(key))


def _set(fields: dict | None) -> dict:
    """The fields given a value: None leaves a field out, as a file that does not set it."""
    return {key: value for key, value in (fields or {}).items() if value is not None}


def split(tmp_path, service: dict | None = None, production: dict | None = None, canary: dict | None = None,
          weights: tuple[float, float] = (90, 10)) -> LoadedScenario:
    """app: a model, production and canary environments (each with only what it is given), a split."""
    app = canary_service(production=_set(production), canary=_set(canary), model=MODEL, **_set(service))
    app["split"]["weights"] = {"production": weights[0], "canary": weights[1]}
    return resolved(tmp_path, app)


def test_a_service_without_environments_has_one_production_with_the_services_settings(tmp_path):
    loaded = resolved(tmp_path, service(model=MODEL, mailbox=7))
    [only] = loaded.resolved.environments()
    assert only.key == EnvironmentKey("app", "production") and str(only.key) == "app@production"
    assert (only.mailbox, only.concurrency, only.version, only.keep_warm_s) == (7, DEFAULT_CONCURRENCY, 1, DEFAULT_KEEP_WARM)
    assert only.runs == "model" and loaded.resolved.services["app"].serving == ["production"]


@pytest.mark.parametrize(("service_mailbox", "production_mailbox", "expected"), [
    (None, None, DEFAULT_MAILBOX),
    (5, None, 5),
    (5, 0, 0),  # 0 is a setting: it sheds every call that must wait
    (0, None, 0),
    (0, 1, 1),
])
def test_an_environment_inherits_the_mailbox_unless_it_sets_one_and_zero_is_a_setting(tmp_path, service_mailbox, production_mailbox, expected):
    loaded = split(tmp_path, service={"mailbox": service_mailbox}, production={"mailbox": production_mailbox})
    assert env(loaded, "app@production").mailbox == expected


@pytest.mark.parametrize(("service_version", "canary_version", "expected"), [(None, None, 1), (3, None, 3), (3, 4, 4), (None, 2, 2)])
def test_a_version_is_the_environments_else_the_services_else_1(tmp_path, service_version, canary_version, expected):
    loaded = split(tmp_path, service={"version": service_version}, canary={"version": canary_version})
    assert env(loaded, "app@canary").version == expected


def test_tables_merge_key_by_key_and_the_environment_wins(tmp_path):
    loaded = split(tmp_path, service={"vars": {"A": "s", "B": "s"}, "tags": {"git": "abc"}},
                   canary={"vars": {"B": "c", "C": "c"}, "tags": {"date": "today"}})
    canary, production = env(loaded, "app@canary"), env(loaded, "app@production")
    assert canary.vars == {"A": "s", "B": "c", "C": "c"} and production.vars == {"A": "s", "B": "s"}
    assert canary.tags == {"git": "abc", "date": "today"}


def test_what_runs_an_environment_its_own_code_or_model_then_the_services(tmp_path):
    loaded = split(tmp_path, canary={"worker": "w.py"})  # the service's model, the canary's own code
    assert (env(loaded, "app@production").runs, env(loaded, "app@canary").runs) == ("model", "code")
    canary = env(loaded, "app@canary")
    assert canary.worker == "w.py" and canary.model is None and canary.worker_field == "environments.canary.worker"


def test_a_service_running_code_gives_each_environment_the_module_named_where_the_service_names_it(tmp_path):
    only = env(resolved(tmp_path, service(worker="w.py")), "app@production")
    assert (only.runs, only.worker, only.worker_field) == ("code", "w.py", "worker")


@pytest.mark.parametrize(("weights", "serving"), [
    ((90, 10), ["production", "canary"]),
    ((100, 0), ["production"]),
    ((0, 100), ["canary"]),
])
def test_the_serving_environments_are_those_with_a_weight(tmp_path, weights, serving):
    assert split(tmp_path, weights=weights).resolved.services["app"].serving == serving


def test_a_split_over_several_environments_is_routed_and_a_service_alone_is_not(tmp_path):
    assert split(tmp_path).resolved.services["app"].routed
    assert not resolved(tmp_path, service(model=MODEL)).resolved.services["app"].routed


def test_only_a_public_service_has_preview_hostnames(tmp_path):
    app = canary_service(model=MODEL, weight=10)
    loaded = resolved(tmp_path, app, service("auth", routes=None, model=MODEL))
    canary, auth = env(loaded, "app@canary"), env(loaded, "auth@production")
    assert str(canary.preview) == "canary.app.edge.workers.dev/*" and canary.routes == [canary.preview]
    assert auth.preview is None and auth.routes == [] and not loaded.resolved.services["auth"].public


def test_a_secret_reference_takes_productions_value_then_the_first_environments_then_the_services(tmp_path):
    loaded = split(tmp_path, service={"secrets": {"A": "service", "B": "service", "C": "service"}},
                   production={"secrets": {"A": "production"}}, canary={"secrets": {"A": "canary", "B": "canary"}})
    assert [loaded.resolved.secret(("app", name)) for name in "ABC"] == ["production", "canary", "service"]


def test_replacing_the_spec_resolves_it_again(tmp_path):
    loaded = split(tmp_path, service={"mailbox": 5})
    app = msgspec.structs.replace(loaded.spec.services[0], mailbox=9)
    again = msgspec.structs.replace(loaded, spec=msgspec.structs.replace(loaded.spec, services=[app]))
    assert env(again, "app@production").mailbox == 9 and env(loaded, "app@production").mailbox == 5


def test_environment_keys_print_and_parse_as_users_write_them():
    key = EnvironmentKey("app", "canary")
    assert str(key) == "app@canary" and EnvironmentKey.parse("app@canary") == key
    assert key != "app@canary"  # a key is not its text: a lookup by text fails loudly, not silently
    for text in ("app", "app@", "@canary", ""):
        with pytest.raises(ValueError):
            EnvironmentKey.parse(text)


@pytest.mark.parametrize("raw", ["app@", "@canary", ""])
def test_a_target_names_a_service_and_an_environment_when_pinned(raw):
    with pytest.raises(ValueError):
        Target(raw)
    assert Target("app@canary").key == EnvironmentKey("app", "canary") and Target("app").environment is None


def test_a_timeline_target_with_an_empty_environment_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        resolved(tmp_path, canary_service(model=MODEL, weight=10), timeline=[{"at": "1s", "action": "cold", "target": "app@"}])
    assert caught.value.path == "timeline[0].target"


def test_a_change_laid_over_one_environment_leaves_the_rest_and_the_original_as_they_were(tmp_path):
    loaded = split(tmp_path, canary={"model": {"latency": "5ms"}})
    production, canary = EnvironmentKey("app", "production"), EnvironmentKey("app", "canary")
    over = loaded.resolved.with_environment(canary, model=loaded.resolved.environment(production).model)
    assert over.environment(canary).model == over.environment(production).model == loaded.resolved.environment(production).model
    assert loaded.resolved.environment(canary).model != loaded.resolved.environment(production).model
    assert over.environment(production) is loaded.resolved.environment(production)
    assert [env.key for env in over.environments()] == [production, canary]
