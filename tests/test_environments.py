"""Seed 003's environments: each with its own routes and generated preview hostname, its own vars,
secrets, bindings, code or model (inherited from the service unless set), and an override header
that names an environment the service does not have refused with a 400, never served elsewhere."""

from __future__ import annotations

import pytest

from edge.platform.fetch import Request
from edge.scenario.errors import ConfigError
from conftest import send, text
from scenario_builder import compose, service, traffic
from live import serve

WHO = {
    "who.py": """
        from edge.platform.fetch import Response

        async def fetch(request, env, ctx):
            return Response(env.WHO)
    """,
}

def staging_app(*staging_routes: str) -> dict:
    """app's production and staging answer with their names; staging has ``staging_routes`` and
    weight 0, and the override header names either."""
    return service(worker="who.py", environments={
        "production": {"vars": {"WHO": "production"}}, "staging": {"vars": {"WHO": "staging"}, "routes": list(staging_routes)},
    }, split={"weights": {"production": 100, "staging": 0}, "override": "x-edge-environment"})


def split(make_scenario, **meta):
    return make_scenario(compose(staging_app("staging.app.test/*", "app.test/staging/*"), name="environments", **meta), WHO)


def who(loaded, urls: list[str], **headers: str) -> list[str]:
    responses, _ = send(loaded, [Request(url, headers=headers) for url in urls])
    return [text(r) for r in responses]


# --- routes: an environment's own, and its preview hostname ---


def test_an_environment_route_goes_to_that_environment_whatever_the_split(make_scenario):
    loaded = split(make_scenario)
    assert who(loaded, ["https://staging.app.test/"] * 20) == ["staging"] * 20  # weight 0, yet served
    assert who(loaded, ["https://app.test/staging/x"] * 5) == ["staging"] * 5  # the more specific path wins
    assert who(loaded, ["https://app.test/", "https://app.test/stagingx"]) == ["production"] * 2  # the split


def test_every_environment_of_a_public_service_has_a_preview_hostname(make_scenario):
    loaded = split(make_scenario)
    assert who(loaded, ["https://staging.app.edge.workers.dev/", "https://production.app.edge.workers.dev/a"]) == ["staging", "production"]
    responses, _ = send(loaded, [Request("https://canary.app.edge.workers.dev/"), Request("https://app.edge.workers.dev/")])
    assert [r.status for r in responses] == [404, 404]  # no such environment; the bare name is not generated


def test_the_workers_subdomain_is_configurable(make_scenario):
    loaded = split(make_scenario, workers_subdomain="acme")
    assert who(loaded, ["https://staging.app.acme.workers.dev/"]) == ["staging"]
    responses, _ = send(loaded, [Request("https://staging.app.edge.workers.dev/")])
    assert responses[0].status == 404


@pytest.mark.parametrize("subdomain", ["Acme", "-acme", "acme-", "a.b", "", "a" * 64])
def test_a_workers_subdomain_that_is_no_dns_label_is_refused(make_scenario, subdomain):
    with pytest.raises(ConfigError, match=r"scenario\.workers_subdomain: expected a DNS label"):
        split(make_scenario, workers_subdomain=subdomain)


def test_a_63_character_workers_subdomain_is_a_label(make_scenario):
    loaded = split(make_scenario, workers_subdomain="a" * 63)
    assert who(loaded, [f"https://staging.app.{'a' * 63}.workers.dev/"]) == ["staging"]


def test_private_services_get_no_preview_hostname(make_scenario):
    front = service("front", worker="who.py", vars={"WHO": "front"})
    loaded = make_scenario(compose(front, service("auth", routes=None, worker="who.py", vars={"WHO": "auth"})), WHO)
    responses, _ = send(loaded, [Request("https://production.auth.edge.workers.dev/"), Request("https://production.front.edge.workers.dev/")])
    assert responses[0].status == 404 and responses[0].headers.get("x-edge-error") == "not-found"
    assert text(responses[1]) == "front"  # a service without environments has its "production"


def test_a_service_with_only_environment_routes_is_public(make_scenario):
    app = service(routes=None, worker="who.py", environments={
        "production": {"vars": {"WHO": "production"}}, "preview": {"vars": {"WHO": "preview"}, "routes": ["preview.test/*"]},
    })
    loaded = make_scenario(compose(app, traffic=[traffic(None, "https://preview.test/")]), WHO)
    assert who(loaded, ["https://preview.test/", "https://production.app.edge.workers.dev/"]) == ["preview", "production"]
    responses, _ = send(loaded, [Request("https://app.test/")])
    assert responses[0].status == 404


# --- route conflicts are config errors with paths ---

TWO = """
[[services]]
name = "one"
worker = "who.py"
routes = {one}
[services.environments.production]
[services.environments.staging]
routes = {staging}

[[services]]
name = "two"
worker = "who.py"
routes = {two}
"""


def conflict(make_scenario, one: str = "[]", staging: str = "[]", two: str = "[]") -> str:
    with pytest.raises(ConfigError) as info:
        make_scenario(TWO.format(one=one, staging=staging, two=two), WHO)
    return str(info.value)


def test_two_services_claiming_one_route_is_a_config_error(make_scenario):
    message = conflict(make_scenario, one='["a.test/*"]', two='["https://a.test/*"]')  # the same pattern, spelt otherwise
    assert "scenario.toml: services[1].routes[0]: expected a route no other service or environment has" in message
    assert "'https://a.test/*' is already a route of one (services[0].routes[0])" in message


def test_an_environment_route_claimed_by_its_own_service_or_another_is_a_config_error(make_scenario):
    message = conflict(make_scenario, one='["a.test/*"]', staging='["a.test/*"]')
    assert "services[0].environments.staging.routes[0]: expected a route no other service or environment has" in message
    assert "already a route of one (services[0].routes[0])" in message
    message = conflict(make_scenario, staging='["b.test/x"]', two='["b.test/x"]')
    assert "services[1].routes[0]:" in message and "already a route of one@staging (services[0].environments.staging.routes[0])" in message


def test_a_route_on_a_preview_hostname_is_a_config_error(make_scenario):
    message = conflict(make_scenario, one='["a.test/*"]', two='["staging.one.edge.workers.dev/*"]')
    assert "services[1].routes[0]:" in message and "is already the preview hostname of one@staging" in message


def test_overlapping_routes_are_not_conflicts(make_scenario):
    loaded = make_scenario(TWO.format(one='["a.test/*"]', staging='["a.test/api/*", "a.test/api"]', two='["*.a.test/*"]'), WHO)
    assert len(loaded.spec.services) == 2


def test_environment_names_must_fit_a_hostname(make_scenario):
    with pytest.raises(ConfigError, match=r"services\[0\]\.environments\.st\.ag: expected an environment name of letters, digits"):
        make_scenario('[[services]]\nname = "one"\nworker = "who.py"\n[services.environments."st.ag"]\n', WHO)


def test_an_unknown_field_in_an_environment_is_still_refused(make_scenario):
    with pytest.raises(ConfigError, match=r"services\[0\]\.environments\.staging.*route"):
        make_scenario('[[services]]\nname = "one"\nworker = "who.py"\n[services.environments.staging]\nroute = "a.test/*"\n', WHO)


# --- what an environment inherits ---

ENV_WORKER = {
    "show.py": """
        from edge.platform.fetch import Response

        async def fetch(request, env, ctx):
            upstream = await env.UP.fetch("https://up/")
            return Response(f"{env.NAME} {env.SHARED} {env.TOKEN} {await upstream.text()}")
    """,
    "staging.py": """
        from edge.platform.fetch import Response

        async def fetch(request, env, ctx):
            upstream = await env.UP.fetch("https://up/")
            return Response(f"staging code: {env.NAME} {env.SHARED} {env.TOKEN} {await upstream.text()}")
    """,
    **WHO,
}


def test_an_environment_inherits_what_it_does_not_set(make_scenario):
    loaded = make_scenario(
        """
        [[services]]
        name = "app"
        routes = ["app.test/*"]
        worker = "show.py"
        vars = { NAME = "service", SHARED = "service" }
        secrets = { TOKEN = "service-token" }
        bindings = { UP = "up" }
        [services.environments.production]
        [services.environments.staging]
        worker = "staging.py"
        vars = { NAME = "staging" }
        secrets = { TOKEN = "staging-token" }
        bindings = { UP = "up@canary" }
        [services.environments.modelled]
        model = { latency = "1ms", errors = 1.0, error_status = 418 }

        [[services]]
        name = "up"
        worker = "who.py"
        [services.environments.production]
        vars = { WHO = "up production" }
        [services.environments.canary]
        vars = { WHO = "up canary" }
        """,
        ENV_WORKER,
    )
    responses, _ = send(loaded, [Request(f"https://{env}.app.edge.workers.dev/") for env in ("production", "staging", "modelled")])
    assert text(responses[0]) == "service service service-token up production"
    assert text(responses[1]) == "staging code: staging service staging-token up canary"
    assert responses[2].status == 418  # a model in place of the service's code


# --- the override header ---


def test_override_naming_a_known_environment_is_served_there(make_scenario):
    assert who(split(make_scenario), ["https://app.test/"] * 20, **{"x-edge-environment": "staging"}) == ["staging"] * 20


@pytest.mark.parametrize("name", ["canary", "Staging", "staging2", ""])
def test_override_naming_an_unknown_environment_is_a_400_never_production(make_scenario, name):
    responses, result = send(split(make_scenario), [Request("https://app.test/", headers={"x-edge-environment": name})] * 7)
    assert {r.status for r in responses} == {400}
    assert {r.headers.get("x-edge-error") for r in responses} == {"unknown-environment"}
    assert {text(r) for r in responses} == {"unknown environment"}
    assert result.metrics.clients.unknown_environment == 7
    assert result.metrics.environment("app", "production").answered == 0  # never production


def test_without_the_override_header_the_split_decides(make_scenario):
    _, result = send(split(make_scenario), [Request("https://app.test/")] * 10)
    assert result.metrics.environment("app", "production").answered == 10
    assert result.metrics.clients.unknown_environment == 0


def test_override_on_a_split_over_one_environment_still_refuses_unknown_names(make_scenario):
    app = service(worker="who.py", vars={"WHO": "production"}, split={"weights": {"production": 100}, "override": "x-edge-environment"})
    loaded = make_scenario(compose(app), WHO)
    responses, _ = send(loaded, [Request("https://app.test/", headers={"x-edge-environment": n}) for n in ("production", "canary")])
    assert text(responses[0]) == "production"
    assert responses[1].status == 400


# --- live: the same routes through a real edge serve ---

LIVE = compose(staging_app("staging.app.test/*"), name="environments-live")


def test_live_environment_routes_preview_hostnames_and_unknown_overrides(tmp_path):
    import http.client

    (tmp_path / "who.py").write_text(WHO["who.py"].replace("\n        ", "\n").strip() + "\n")
    (tmp_path / "envs.toml").write_text(LIVE)

    def get(port: int, host: str, **headers: str) -> tuple[int, bytes, str | None]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/", headers={"Host": host, **headers})
        response = conn.getresponse()
        answer = response.status, response.read(), response.getheader("x-edge-error")
        conn.close()
        return answer

    with serve(str(tmp_path / "envs.toml")) as served:
        assert get(served.port, "staging.app.test") == (200, b"staging", None)
        assert get(served.port, "staging.app.edge.workers.dev") == (200, b"staging", None)
        assert get(served.port, "app.test") == (200, b"production", None)
        assert get(served.port, "app.test", **{"x-edge-environment": "staging"}) == (200, b"staging", None)
        assert get(served.port, "app.test", **{"x-edge-environment": "canary"}) == (400, b"unknown environment", "unknown-environment")
        assert get(served.port, "canary.app.edge.workers.dev")[0] == 404


def test_edge_graph_lists_each_environment_with_its_routes(tmp_path):
    import subprocess
    import sys

    from live import ROOT

    (tmp_path / "who.py").write_text(WHO["who.py"].replace("\n        ", "\n").strip() + "\n")
    (tmp_path / "envs.toml").write_text(LIVE)
    graph = subprocess.run([sys.executable, "-m", "edge.cli", "graph", str(tmp_path / "envs.toml")],
                           capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert graph.splitlines()[:3] == [
        "app  [app.test/*]",
        "  production  [production.app.edge.workers.dev/*]",
        "  staging  [staging.app.edge.workers.dev/*, staging.app.test/*]",
    ]


def test_route_table_keeps_most_specific_first_and_equals_in_order_among_many_hosts():
    from edge.platform.routes import RoutePattern, RouteTable

    table: RouteTable[str] = RouteTable()
    for i in range(10_000):
        table.add(RoutePattern.parse(f"e{i}.app.edge.workers.dev/*"), f"e{i}")
    for pattern, target in (("*.workers.dev/*", "wild"), ("e7.app.edge.workers.dev/x", "exact path"),
                            ("a.test/*", "first"), ("https://a.test/*", "second")):
        table.add(RoutePattern.parse(pattern), target)
    assert table.match("E9999.app.edge.workers.dev", "/") == "e9999"
    assert table.match("e7.app.edge.workers.dev", "/x") == "exact path"
    assert table.match("e7.app.edge.workers.dev", "/y") == "e7"
    assert table.match("other.workers.dev", "/") == "wild"
    assert table.match("a.test", "/") == "first"  # equally specific: the one added first
