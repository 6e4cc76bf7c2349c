"""Seed 004's API gateway as configuration: matching, the JSON envelope and its error mapping,
every problem of a gateway table at once, virtual and live (a real ``edge serve``)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys

import pytest
from conftest import send, text
from live import ROOT, serve

from edge.platform.fetch import Request
from edge.platform.routes import PathTemplate
from edge.scenario import config

KEY = "k-7d41c0e2"  # scenarios/api-gateway.toml's API key
AUTH = {"authorization": f"Bearer {KEY}"}

HOOKS = '''
class Unauthorized(Exception):
    status = 401
    code = "unauthorized"

async def fetch(request, env, ctx):
    raise RuntimeError("RPC only")

async def before(env, ctx, request, context):
    if request.headers.get("authorization") != "Bearer good":
        raise Unauthorized("missing or wrong API key")
    return {"caller": "key-1", "body_seen": await request.text()}

async def after(env, ctx, request, context):
    if context["params"].get("id") == "keep":
        return None
    return {"wrapped": context["result"], "pre": context["pre_process"]}
'''

TARGET = '''
class Gone(Exception):
    status = 410
    code = "gone"

async def fetch(request, env, ctx):
    raise RuntimeError("RPC only")

async def get(env, ctx, request, context):
    return {"params": context["params"], "query": context["query"], "method": context["method"],
            "path": context["path"], "pre": context.get("pre_process"), "body": await request.text()}

async def which(env, ctx, request, context):
    return context["tag"] if "tag" in context else request.url

async def broken(env, ctx, request, context):
    raise KeyError("no such row")

async def gone(env, ctx, request, context):
    raise Gone("order 7 was deleted")

async def not_json(env, ctx, request, context):
    return {"when": object()}

async def spin(env, ctx, request, context):
    await ctx.cpu("80ms")
    return "done"
'''


def gateway_scenario(make_scenario, paths: str, extra: str = "", meta: str = ""):
    return make_scenario(
        f"""
        [scenario]
        cpu_limit = "50ms"
        {meta}

        [[services]]
        name = "api"
        routes = ["api.example.com/*"]
        bindings = {{ HOOKS = "hooks", TARGET = "target" }}

        [services.gateway]
        serviceBindings = [{{ alias = "hooks", binding = "HOOKS" }}, {{ alias = "target", binding = "TARGET" }}]
        {paths}

        [[services]]
        name = "hooks"
        worker = "hooks.py"

        [[services]]
        name = "target"
        worker = "target.py"
        {extra}
        """,
        {"hooks.py": HOOKS, "target.py": TARGET},
    )


def path(method: str, template: str, function: str, pre: bool = False, post: bool = False) -> str:
    hooks = ""
    if pre:
        hooks += 'pre_process = { binding = "hooks", function = "before" }\n'
    if post:
        hooks += 'post_process = { binding = "hooks", function = "after" }\n'
    return f"""
        [[services.gateway.paths]]
        method = "{method}"
        path = "{template}"
        integration = {{ type = "service_binding", binding = "target", function = "{function}" }}
        {hooks}"""


def envelope(response) -> dict:
    assert response.headers.get("content-type") == "application/json"
    return json.loads(text(response))


# -- path templates ------------------------------------------------------------------------


@pytest.mark.parametrize("template, path, params", [
    ("/users/{id}", "/users/42", {"id": "42"}),
    ("/users/{id}", "/users/", None),  # a parameter is one non-empty segment
    ("/users/{id}", "/users/42/orders", None),
    ("/users/{id}", "/users", None),
    ("/users/{id}/orders/{order}", "/users/a/orders/b", {"id": "a", "order": "b"}),
    ("/files/{.+}", "/files/a", {}),  # the wildcard: one segment or more...
    ("/files/{.+}", "/files/a/b/c", {}),
    ("/files/{.+}", "/files", None),  # ...never none
    ("/files/{.+}", "/files/", None),
    ("/orders", "/orders", {}),
    ("/orders", "/orders/", None),
])
def test_path_templates_match_whole_segments(template, path, params):
    assert PathTemplate(template).match(path) == params


@pytest.mark.parametrize("template, message", [
    ("users/{id}", 'starting with "/"'),
    ("/files/{.+}/x", "only as the last segment"),
    ("/users/x{id}", "as a whole segment"),
    ("/users/{1d}", "as a whole segment"),
    ("/a/{id}/{id}", "{id} appears twice"),
])
def test_malformed_path_templates_are_refused(template, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        PathTemplate(template)


# -- the envelope and the error mapping (virtual time) -------------------------------------


def test_success_is_the_seeds_envelope_with_path_parameters_query_and_the_pre_process_result(make_scenario):
    loaded = gateway_scenario(make_scenario, path("POST", "/users/{id}", "get", pre=True))
    request = Request("https://api.example.com/users/42?page=2&sort=name", method="POST", headers={"authorization": "Bearer good"}, body="hello")
    [response], result = send(loaded, [request])
    assert response.status == 200
    assert envelope(response) == {
        "status": "success", "message": "Operation completed successfully.",
        "data": {"params": {"id": "42"}, "query": {"page": "2", "sort": "name"}, "method": "POST", "path": "/users/42",
                 "pre": {"caller": "key-1", "body_seen": "hello"}, "body": "hello"},
    }
    bindings = {(labels[0], labels[1], labels[2]) for labels in result.metrics.bindings}
    assert bindings == {("api", "HOOKS", "hooks"), ("api", "TARGET", "target")}


def test_post_process_gets_the_result_and_what_it_returns_replaces_it_unless_none(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/users/{id}", "get", pre=True, post=True))
    responses, _ = send(loaded, [Request("https://api.example.com/users/7", headers={"authorization": "Bearer good"}),
                                 Request("https://api.example.com/users/keep", headers={"authorization": "Bearer good"})])
    wrapped, kept = (envelope(r)["data"] for r in responses)
    assert wrapped["pre"] == {"caller": "key-1", "body_seen": ""}
    assert wrapped["wrapped"]["params"] == {"id": "7"}
    assert kept["params"] == {"id": "keep"} and "wrapped" not in kept


def test_no_matching_path_is_a_404_envelope(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/users/{id}", "get"))
    [response], result = send(loaded, [Request("https://api.example.com/customers")])
    assert response.status == 404
    assert envelope(response) == {"status": "error", "message": "No match found.", "error": "not_found"}
    assert result.metrics.environments["target@production"].answered == 0


def test_a_path_without_the_requests_method_is_a_405_with_allow(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/users/{id}", "get") + path("PUT", "/users/{id}", "get"))
    [response], _ = send(loaded, [Request("https://api.example.com/users/1", method="DELETE")])
    assert response.status == 405
    assert response.headers.get("allow") == "GET, PUT"
    assert envelope(response) == {"status": "error", "message": "DELETE is not allowed on /users/1", "error": "method_not_allowed"}


def test_the_most_specific_path_wins_then_the_exact_method_over_any(make_scenario):
    paths = (path("GET", "/files/{.+}", "which") + path("GET", "/files/{name}", "get") + path("GET", "/files/readme", "which")
             + path("ANY", "/files/readme", "get"))
    loaded = gateway_scenario(make_scenario, paths)
    readme, named, deep, posted = (envelope(r)["data"] for r in send(loaded, [
        Request("https://api.example.com/files/readme"),
        Request("https://api.example.com/files/a"),
        Request("https://api.example.com/files/a/b"),
        Request("https://api.example.com/files/readme", method="POST", body="x"),
    ])[0])
    assert readme == "https://api.example.com/files/readme"  # exact path, exact method: `which`
    assert named["params"] == {"name": "a"}  # a parameter beats the wildcard
    assert deep == "https://api.example.com/files/a/b"  # only the wildcard takes two segments
    assert posted["method"] == "POST" and posted["body"] == "x"  # ANY


def test_a_pre_process_hook_refuses_with_its_status_and_code_and_the_integration_is_not_called(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/users/{id}", "get", pre=True))
    [response], result = send(loaded, [Request("https://api.example.com/users/1")])
    assert response.status == 401
    assert envelope(response) == {"status": "error", "message": "missing or wrong API key", "error": "unauthorized"}
    envs = result.metrics.environments
    assert envs["target@production"].answered == 0
    # A deliberate 4xx is the caller's error: not an exception of hooks, counted as its 4xx.
    assert envs["hooks@production"].exceptions == 0
    assert envs["hooks@production"].requests["1"][3] == 1


def test_an_integration_error_with_a_status_keeps_it(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/orders/{id}", "gone"))
    [response], _ = send(loaded, [Request("https://api.example.com/orders/7")])
    assert response.status == 410
    assert envelope(response) == {"status": "error", "message": "order 7 was deleted", "error": "gone"}


def test_an_integration_that_raises_is_a_500_envelope_and_counts_as_its_exception(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/orders/{id}", "broken"))
    [response], result = send(loaded, [Request("https://api.example.com/orders/7")])
    assert response.status == 500
    assert envelope(response) == {"status": "error", "message": "'no such row'", "error": "internal_server_error"}
    assert result.metrics.environments["target@production"].exceptions == 1


def test_a_result_json_cannot_carry_is_a_500_invalid_result(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/x", "not_json"))
    [response], _ = send(loaded, [Request("https://api.example.com/x")])
    assert response.status == 500
    body = envelope(response)
    assert (body["status"], body["error"]) == ("error", "invalid_result")
    assert body["message"].startswith("the result of not_json is not JSON")


def test_a_bound_service_that_is_down_is_its_503_in_the_envelope(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/x", "get"))

    def crash(topology, front, clock):
        topology.environments["target@production"].down = True

    [response], _ = send(loaded, [Request("https://api.example.com/x")], setup=crash)
    assert response.status == 503
    assert envelope(response) == {"status": "error", "message": "unavailable", "error": "service_unavailable"}


def test_a_chain_over_its_cpu_budget_is_the_platforms_1102_not_an_envelope(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/x", "spin"))
    [response], result = send(loaded, [Request("https://api.example.com/x")])
    assert response.status == 503
    assert text(response) == "error code: 1102"
    assert result.metrics.clients.cpu_limit_exceeded == 1


def test_each_environment_may_have_its_own_gateway_table(make_scenario):
    loaded = make_scenario(
        """
        [[services]]
        name = "api"
        routes = ["api.example.com/*"]
        bindings = { TARGET = "target" }
        [services.environments.production.gateway]
        serviceBindings = [{ alias = "t", binding = "TARGET" }]
        paths = [{ method = "GET", path = "/v1/{id}", integration = { binding = "t", function = "get" } }]
        [services.environments.canary]
        routes = ["canary.example.com/*"]
        [services.environments.canary.gateway]
        serviceBindings = [{ alias = "t", binding = "TARGET" }]
        paths = [{ method = "GET", path = "/v2/{id}", integration = { binding = "t", function = "which" } }]
        [[services]]
        name = "target"
        worker = "target.py"
        """,
        {"target.py": TARGET},
    )
    responses, _ = send(loaded, [Request("https://api.example.com/v1/1"), Request("https://api.example.com/v2/1"),
                                 Request("https://canary.example.com/v2/1")])
    assert [r.status for r in responses] == [200, 404, 200]


# -- validation: every problem at once ---------------------------------------------------------

BAD = """
[[services]]
name = "api"
routes = ["api.example.com/*"]
bindings = { HOOKS = "hooks", TARGET = "target", MODEL = "model" }
[services.gateway]
serviceBindings = [
  { alias = "hooks", binding = "HOOKS" },
  { alias = "target", binding = "TARGT" },
  { alias = "hooks", binding = "HOOKS" },
  { alias = "model", binding = "MODEL" },
  { alias = "t2", binding = "TARGET" },
]
[[services.gateway.paths]]
method = "FETCH"
path = "orders"
integration = { type = "http_proxy", binding = "target", function = "run" }
[[services.gateway.paths]]
method = "GET"
path = "/orders/{id}/{id}"
pre_process = { binding = "hookz", function = "before" }
integration = { binding = "t2", function = "get" }
colour = "red"
[[services.gateway.paths]]
method = "GET"
path = "/x"
integration = { binding = "t2", function = "gett" }
post_process = { binding = "model", function = "after" }
[[services.gateway.paths]]
method = "get"
path = "/x"
integration = { binding = "t2", function = "get" }
[[services.gateway.paths]]
path = "/y"
[[services]]
name = "hooks"
worker = "hooks.py"
[[services]]
name = "target"
worker = "target.py"
[[services]]
name = "model"
model = { cpu = "1ms" }
"""

BAD_PROBLEMS = {
    "services[0].gateway.serviceBindings[2].alias": "expected a unique alias, 'hooks' is defined twice",
    "services[0].gateway.paths[0].method": "expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, ANY, got 'FETCH'",
    "services[0].gateway.paths[0].path": 'expected a path starting with "/", like "/users/{id}", got \'orders\'',
    "services[0].gateway.paths[0].integration.type": "expected \"service_binding\" (a bound Worker's method; the platform runs no other kind), got 'http_proxy'",
    "services[0].gateway.paths[1].colour": "unknown field (expected method, path, pre_process, integration, post_process)",
    "services[0].gateway.paths[1].path": "expected each path parameter once, {id} appears twice in '/orders/{id}/{id}'",
    "services[0].gateway.paths[1].pre_process.binding": "expected an alias of serviceBindings (hooks, target, model, t2), got 'hookz'",
    "services[0].gateway.paths[3]": "expected one entry per method and path, GET /x is paths[2] already",
    "services[0].gateway.paths[4].method": "expected a non-empty string, missing",
    "services[0].gateway.paths[4].integration": 'expected { type = "service_binding", binding = ALIAS, function = NAME }, missing',
    "services[0].gateway.serviceBindings[1].binding": "expected a binding of api@production (HOOKS, TARGET, MODEL), got 'TARGT'",
    "services[0].gateway.paths[2].integration.function": "expected an RPC method of target@production (broken, get, gone, not_json, spin, which), got 'gett'",
    "services[0].gateway.paths[2].post_process.function": "expected a code worker with RPC methods behind 'model', model@production runs none (a synthetic model or a gateway)",
}


def test_every_problem_of_a_gateway_table_is_reported_at_once_with_its_path(make_scenario):
    with pytest.raises(config.ConfigErrors) as caught:
        make_scenario(BAD, {"hooks.py": HOOKS, "target.py": TARGET})
    assert dict(caught.value.problems) == BAD_PROBLEMS
    assert len(caught.value.problems) == len(BAD_PROBLEMS)  # each once
    assert caught.value.path == "services[0].gateway.serviceBindings[2].alias"


def test_edge_check_lists_every_gateway_problem_and_exits_2(tmp_path):
    (tmp_path / "hooks.py").write_text(HOOKS)
    (tmp_path / "target.py").write_text(TARGET)
    (tmp_path / "bad.toml").write_text(BAD)
    for command in ("check", "run"):
        proc = subprocess.run([sys.executable, "-m", "edge.cli", command, str(tmp_path / "bad.toml")], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 2, proc.stderr
        assert f"bad.toml: {len(BAD_PROBLEMS)} problems:" in proc.stderr
        for where, expected in BAD_PROBLEMS.items():
            assert f"  {where}: {expected}\n" in proc.stderr


def test_one_gateway_problem_reads_as_any_config_error(make_scenario):
    with pytest.raises(config.ConfigError, match=r"scenario.toml: services\[0\].gateway.paths\[0\].integration.function: "
                       r"expected an RPC method of target@production \(.*\), got 'nope'$"):
        gateway_scenario(make_scenario, path("GET", "/x", "nope"))


def test_a_gateway_service_runs_no_code_or_model_and_all_its_environments_are_gateways(make_scenario):
    with pytest.raises(config.ConfigErrors) as caught:
        make_scenario(
            """
            [[services]]
            name = "api"
            routes = ["api.example.com/*"]
            bindings = { TARGET = "target" }
            [services.environments.production.gateway]
            serviceBindings = [{ alias = "t", binding = "TARGET" }]
            paths = [{ method = "GET", path = "/", integration = { binding = "t", function = "get" } }]
            [services.environments.canary]
            worker = "target.py"
            [services.environments.staging]
            model = { cpu = "1ms" }
            [[services]]
            name = "target"
            worker = "target.py"
            """,
            {"target.py": TARGET},
        )
    assert [p for p, _ in caught.value.problems] == [
        "services[0].environments.canary.worker", "services[0].environments.staging.model",
        "services[0].environments.canary", "services[0].environments.staging",
    ]


def test_gateway_and_worker_in_one_table_is_refused(make_scenario):
    with pytest.raises(config.ConfigError, match=r"services\[0\].gateway: expected either `gateway`"):
        make_scenario(
            """
            [[services]]
            name = "api"
            worker = "target.py"
            gateway = { serviceBindings = [], paths = [] }
            """,
            {"target.py": TARGET},
        )


def test_a_gateway_that_is_not_a_table_is_refused_with_its_path(make_scenario):
    with pytest.raises(config.ConfigError, match=r"services\[0\].gateway: expected a table with `serviceBindings` and `paths`, got str"):
        make_scenario('[[services]]\nname = "api"\ngateway = "yes"\n')


# -- the library scenario, virtual and live ---------------------------------------------------------


def library() -> config.LoadedScenario:
    return config.load(ROOT / "scenarios" / "api-gateway.toml")


def test_the_library_scenario_answers_as_its_comments_say_in_virtual_time():
    responses, _ = send(library(), [
        Request("https://api.example.com/orders/42", headers=AUTH),
        Request("https://api.example.com/orders", method="POST", headers={**AUTH, "content-type": "application/json"}, body='{"sku": "A-1", "qty": 2}'),
        Request("https://api.example.com/orders/latest", headers=AUTH),
        Request("https://api.example.com/orders/42"),
        Request("https://api.example.com/orders/42", method="DELETE", headers=AUTH),
        Request("https://api.example.com/customers", headers=AUTH),
    ])
    got, created, unknown, refused, wrong_method, no_path = (envelope(r) | {"_status": r.status} for r in responses)
    assert got == {"status": "success", "message": "Operation completed successfully.", "data": {"id": 42, "caller": "key-1"}, "_status": 200}
    assert created["_status"] == 200 and created["data"]["sku"] == "A-1" and created["data"]["audited"] is True
    assert (unknown["_status"], unknown["error"]) == (404, "order_not_found")
    assert (refused["_status"], refused["error"]) == (401, "unauthorized")
    assert (wrong_method["_status"], wrong_method["error"]) == (405, "method_not_allowed")
    assert (no_path["_status"], no_path["error"]) == (404, "not_found")


def live_request(port: int, method: str, target: str, headers: dict[str, str] | None = None, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, target, body=body, headers={"Host": "api.example.com", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data), response


def test_the_library_scenario_answers_the_same_live_over_real_sockets():
    with serve(str(ROOT / "scenarios" / "api-gateway.toml")) as served:
        status, body, response = live_request(served.port, "GET", "/orders/42", AUTH)
        assert (status, body) == (200, {"status": "success", "message": "Operation completed successfully.", "data": {"id": 42, "caller": "key-1"}})
        assert response.getheader("content-type") == "application/json"
        status, body, _ = live_request(served.port, "POST", "/orders", {**AUTH, "content-type": "application/json"}, b'{"sku": "B-2", "qty": 3}')
        assert status == 200 and body["data"]["sku"] == "B-2" and body["data"]["qty"] == 3 and body["data"]["audited"] is True
        status, body, _ = live_request(served.port, "GET", "/orders/42")
        assert (status, body) == (401, {"status": "error", "message": "missing or wrong API key", "error": "unauthorized"})
        status, body, _ = live_request(served.port, "GET", "/orders/latest", AUTH)
        assert (status, body["error"]) == (404, "order_not_found")
        status, body, response = live_request(served.port, "DELETE", "/orders/42", AUTH)
        assert (status, body["error"], response.getheader("allow")) == (405, "method_not_allowed", "GET")
        status, body, _ = live_request(served.port, "GET", "/customers", AUTH)
        assert (status, body) == (404, {"status": "error", "message": "No match found.", "error": "not_found"})
    assert served.returncode == 0, served.stderr
    assert KEY not in served.stderr + served.stdout
