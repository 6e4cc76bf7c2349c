"""The seed topology (seeds 001-003) through the real actors: gateway -> auth -> app."""

from __future__ import annotations

from conftest import send, text

from edge.scenario.load import load
from edge.scenario.resolved import LoadedScenario
from edge.platform.fetch import Request
from edge.engine.simulate import default_scenario_path
from edge.scenario.values import EnvironmentKey

TOKEN = load(default_scenario_path()).resolved.secret(("auth", "SECRET_TOKEN"))


def default() -> LoadedScenario:
    return load(default_scenario_path())


def test_right_token_goes_through_all_three_services():
    [response], result = send(default(), [Request("https://example.com/", headers={"x-custom-token": TOKEN})])
    assert response.status == 200
    envs = result.metrics.environments
    assert envs[EnvironmentKey("gateway", "production")].requests["1"][1] == 1
    assert envs[EnvironmentKey("auth", "production")].requests["1"][1] == 1
    app_2xx = sum(counts[1] for env in ("production", "canary") for counts in envs[EnvironmentKey("app", env)].requests.values())
    assert app_2xx == 1
    bindings = {(labels[0], labels[1], labels[2]) for labels in result.metrics.bindings}
    assert bindings == {("gateway", "AUTH", "auth"), ("gateway", "APP", "app")}


def test_wrong_or_missing_token_gets_the_seeds_403_and_app_is_never_called():
    responses, result = send(
        default(),
        [
            Request("https://example.com/", headers={"x-custom-token": "nope"}),
            Request("https://example.com/"),
        ],
    )
    for response in responses:
        assert response.status == 403
        assert text(response) == "x-custom-token does not match, request not allowed"
    envs = result.metrics.environments
    assert envs[EnvironmentKey("app", "production")].answered == envs[EnvironmentKey("app", "canary")].answered == 0


def test_post_with_body_reaches_app_after_the_gateway_cloned_it_for_auth():
    request = Request(
        "https://example.com/api/orders", method="POST", headers={"x-custom-token": TOKEN}, body='{"qty": 1}'
    )
    [response], _ = send(default(), [request])
    assert response.status == 200


def test_private_services_are_not_entry_points():
    responses, result = send(
        default(),
        [
            Request("https://auth/", headers={"x-custom-token": TOKEN}),
            Request("https://app/"),
            Request("https://other.example.org/"),
        ],
    )
    assert [r.status for r in responses] == [404, 404, 404]
    assert result.metrics.clients.not_found == 3
    assert all(s.answered == 0 for s in result.metrics.environments.values())


def test_cpu_of_the_whole_chain_is_charged_to_the_top_level_request():
    [response], result = send(default(), [Request("https://example.com/", headers={"x-custom-token": TOKEN})])
    envs = result.metrics.environments
    chain = sum(s.cpu_seconds for s in envs.values())
    assert envs[EnvironmentKey("gateway", "production")].cpu_seconds == 300e-6
    assert envs[EnvironmentKey("auth", "production")].cpu_seconds == 150e-6
    cpu = result.metrics.request_cpu["gateway"]
    assert cpu.count == 1
    assert abs(cpu.total - chain) < 1e-12
    assert chain > 450e-6  # app spent some CPU too
