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
from scenario_builder import compose, service

from edge.platform.fetch import Request
from edge.platform.routes import PathTemplate
from edge.scenario.errors import ConfigError, ConfigErrors
from edge.scenario.load import load
from edge.scenario.resolved import LoadedScenario
from edge.scenario.values import EnvironmentKey

KEY = "k-7d41c0e2"  # scenarios/api-gateway.toml's API key
AUTH = {"authorization": f"Bearer {KEY}"}

HOOKS = '''
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    raise RuntimeError("RPC only")

async def before(env, ctx, request, context):
    verdicts = {"Bearer good": True, "Bearer limited": Response("slow down", status=429),
                "Bearer object": {"blocked": True}, "Bearer false": False, "Bearer text": "no",
                "Bearer none": None, "Bearer shaped": {"status": 403, "body": "shaped"}}
    if request.headers.get("authorization") == "Bearer raise":
        raise RuntimeError("the hook failed")
    return verdicts.get(request.headers.get("authorization"), Response("who are you?", status=401))

async def after(env, ctx, request, context):
    raise AssertionError("post_process is never called for a service binding")
'''

TARGET = '''
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    raise RuntimeError("RPC only")

async def get(env, ctx, request, context):
    return {"params": context["params"], "query": context["query"], "method": context["method"],
            "path": context["path"], "body": await request.text()}

async def which(env, ctx, request, context):
    return {"which": context["tag"] if "tag" in context else request.url}

async def result(env, ctx, request, context):
    # the reference's generateJsonResponse cases, chosen by the path's last segment
    return {
        "response": Response("ok", status=201, headers={"x-own": "1"}),
        "error": {"error": "boom", "statusCode": 422, "message": "failed"},
        "error-default": {"error": "boom"},
        "value": {"value": 123},
        "status": {"statusCode": "404", "message": "not here", "id": 1},
        "none": None, "plain": "plain", "number": 42, "boolean": True,
        "list": ["a", "b"], "bad-status": {"statusCode": 99}, "not-json": {"when": object()},
    }[context["params"]["case"]]

async def broken(env, ctx, request, context):
    raise KeyError("no such row")

async def spin(env, ctx, request, context):
    await ctx.cpu("80ms")
    return "done"
'''


def gateway_scenario(make_scenario, *paths: dict):
    """api, a gateway over hooks (its pre/post_process functions) and target (its integrations), with ``paths``."""
    aliases = [{"alias": "hooks", "binding": "HOOKS"}, {"alias": "target", "binding": "TARGET"}]
    api = service("api", routes=["api.example.com/*"], bindings={"HOOKS": "hooks", "TARGET": "target"},
                  gateway={"serviceBindings": aliases, "paths": list(paths)})
    return make_scenario(compose(api, service("hooks", routes=None, worker="hooks.py"), service("target", routes=None, worker="target.py"),
                                 cpu_limit="50ms"), {"hooks.py": HOOKS, "target.py": TARGET})


def path(method: str, template: str, function: str, pre: bool = False, post: bool = False) -> dict:
    """A ``[[services.gateway.paths]]`` entry: ``function`` of target, hooks' before / after if ``pre`` / ``post``."""
    entry = {"method": method, "path": template, "integration": {"type": "service_binding", "binding": "target", "function": function}}
    if pre:
        entry["pre_process"] = {"binding": "hooks", "function": "before"}
    if post:
        entry["post_process"] = {"binding": "hooks", "function": "after"}
    return entry


def envelope(response) -> dict:
    assert response.headers.get("content-type") == "application/json"
    assert response.headers.get("x-powered-by") == "github.com/irensaltali/serverlessapigateway"
    return json.loads(text(response))


# -- path templates: the reference's PathOperator ---------------------------------------------


@pytest.mark.parametrize("template, path, params, count, exact", [
    ("/v1/health", "/v1/health", {}, 3, True),  # the reference's own test cases
    ("/v1/users/{id}", "/v1/users/99", {"id": "99"}, 4, False),
    ("/v1/items", "/v1/items/extra", None, 0, False),
    ("/users/{id}", "/users/", {"id": ""}, 3, False),  # an empty segment is a value
    ("/users/{id}", "/users", None, 0, False),
    ("/users/{id}", "/users/42/orders", None, 0, False),
    ("/users/{id}/orders/{order}", "/users/a/orders/b", {"id": "a", "order": "b"}, 5, False),
    ("/files/{.+}", "/files", {}, 2, False),  # the wildcard takes nothing too...
    ("/files/{.+}", "/files/", {}, 3, True),  # ...and one segment, an exact match there
    ("/files/{.+}", "/files/a", {}, 3, True),
    ("/files/{.+}", "/files/a/b/c", {}, 3, False),
    ("/files/{.+}", "/filesx", None, 0, False),
    ("/orders", "/orders", {}, 2, True),
    ("/orders", "/orders/", None, 0, False),  # a trailing slash is a segment
])
def test_path_templates_match_as_the_reference_does(template, path, params, count, exact):
    found = PathTemplate(template).match(path)
    if params is None:
        assert found is None
    else:
        assert (found.params, found.count, found.exact, found.wildcard) == (params, count, exact, template.endswith("{.+}"))


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


# -- answers as the reference gives them (virtual time) ---------------------------------------


def test_success_is_the_envelope_with_path_parameters_query_and_body(make_scenario):
    loaded = gateway_scenario(make_scenario, path("POST", "/users/{id}", "get", pre=True))
    request = Request("https://api.example.com/users/42?page=2&sort=name", method="POST", headers={"authorization": "Bearer good"}, body="hello")
    [response], result = send(loaded, [request])
    assert response.status == 200
    assert envelope(response) == {
        "status": "success", "message": "Operation completed successfully.",
        "data": {"params": {"id": "42"}, "query": {"page": "2", "sort": "name"}, "method": "POST", "path": "/users/42", "body": "hello"},
    }
    bindings = {(labels[0], labels[1], labels[2]) for labels in result.metrics.bindings}
    assert bindings == {("api", "HOOKS", "hooks"), ("api", "TARGET", "target")}


@pytest.mark.parametrize("key, status, body, content_type", [
    ("Bearer limited", 429, "slow down", "text/plain;charset=UTF-8"),  # a Response: the answer, as it is
    ("Bearer object", 200, "", None),  # anything but True and a Response: an empty 200
    ("Bearer false", 200, "", None),
    ("Bearer text", 200, "", None),
    ("Bearer shaped", 403, "shaped", "text/plain;charset=UTF-8"),  # Response-shaped: that answer
    ("Bearer none", 500, '{"message":"Internal server error"}', "application/json"),
    ("Bearer raise", 500, '{"message":"Internal server error"}', "application/json"),
    ("Bearer nobody", 401, "who are you?", "text/plain;charset=UTF-8"),
])
def test_a_pre_process_hook_lets_the_request_go_on_only_with_exactly_true(make_scenario, key, status, body, content_type):
    loaded = gateway_scenario(make_scenario, path("GET", "/users/{id}", "get", pre=True))
    [response], result = send(loaded, [Request("https://api.example.com/users/1", headers={"authorization": key})])
    assert (response.status, text(response), response.headers.get("content-type")) == (status, body, content_type)
    assert response.headers.get("x-powered-by") == "github.com/irensaltali/serverlessapigateway"
    assert result.metrics.environments[EnvironmentKey("target", "production")].answered == 0  # the integration is never called


@pytest.mark.parametrize("case, status, body", [
    ("response", 201, "ok"),  # a Response passes through
    ("error", 422, {"status": "error", "message": "failed", "error": "boom"}),
    ("error-default", 500, {"status": "error", "message": "An error occurred.", "error": "boom"}),
    ("value", 200, {"status": "success", "message": "Operation completed successfully.", "data": {"value": 123}}),
    ("status", 404, {"status": "success", "message": "not here", "data": {"id": 1}}),
    ("none", 200, ""),
    ("plain", 200, "plain"),
    ("number", 400, ""),
    ("boolean", 400, ""),
    ("list", 200, {"status": "success", "message": "Operation completed successfully.", "data": {"0": "a", "1": "b"}}),
    ("bad-status", 500, {"message": "Internal server error"}),
    ("not-json", 500, {"message": "Internal server error"}),
])
def test_an_integrations_result_is_shaped_as_the_reference_shapes_it(make_scenario, case, status, body):
    loaded = gateway_scenario(make_scenario, path("GET", "/results/{case}", "result"))
    [response], _ = send(loaded, [Request(f"https://api.example.com/results/{case}")])
    assert response.status == status
    assert (json.loads(text(response)) if isinstance(body, dict) else text(response)) == body
    assert response.headers.get("x-powered-by") == "github.com/irensaltali/serverlessapigateway"
    if case == "response":
        assert response.headers.get("x-own") == "1"
    else:
        assert response.headers.get("content-type") == "application/json"


def test_post_process_is_never_called_for_a_service_binding_as_in_the_reference(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/users/{id}", "get", pre=True, post=True))
    [response], result = send(loaded, [Request("https://api.example.com/users/7", headers={"authorization": "Bearer good"})])
    assert response.status == 200 and envelope(response)["data"]["params"] == {"id": "7"}
    assert result.metrics.environments[EnvironmentKey("hooks", "production")].answered == 1  # pre_process only


@pytest.mark.parametrize("method", ["DELETE", "HEAD", "GET"])
def test_no_entry_for_the_path_and_method_is_a_404_no_match_found(make_scenario, method):
    # A path that exists for other methods, and HEAD on a GET path, are no match there either.
    loaded = gateway_scenario(make_scenario, path("GET", "/users/{id}", "get"), path("PUT", "/users/{id}", "get"))
    target = "https://api.example.com/customers" if method == "GET" else "https://api.example.com/users/1"
    [response], result = send(loaded, [Request(target, method=method)])
    assert response.status == 404 and response.headers.get("allow") is None
    if method != "HEAD":
        assert envelope(response) == {"message": "No match found."}
    assert result.metrics.environments[EnvironmentKey("target", "production")].answered == 0


def test_entries_are_ranked_as_the_reference_ranks_them(make_scenario):
    paths = [path("GET", "/files/{.+}", "which"), path("GET", "/files/{name}", "get"), path("GET", "/items/{.+}", "which"),
             path("GET", "/items/{id}", "get"), path("GET", "/items/special", "get"), path("ANY", "/method", "which"),
             path("GET", "/method", "get"), path("GET", "/a/{x}/{y}", "which"), path("GET", "/a/b/{y}", "get")]
    loaded = gateway_scenario(make_scenario, *paths)
    answers = [envelope(r)["data"] for r in send(loaded, [
        Request("https://api.example.com/files/a"), Request("https://api.example.com/files/a/b"),
        Request("https://api.example.com/items/special"), Request("https://api.example.com/method"),
        Request("https://api.example.com/a/b/c"), Request("https://api.example.com/method", method="POST", body="x"),
    ])[0]]
    assert answers[0]["which"].endswith("/files/a")  # a wildcard taking one segment is exact: it beats {name}
    assert answers[1]["which"].endswith("/files/a/b")  # only the wildcard takes two
    assert answers[2]["params"] == {}  # the literal path: exact
    assert answers[3]["method"] == "GET"  # the exact method before ANY
    assert answers[4]["which"].endswith("/a/b/c")  # equal ranks: the first written
    assert answers[5]["which"].endswith("/method")  # ANY takes the POST


def test_an_integration_that_raises_is_a_500_and_counts_as_its_exception(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/orders/{id}", "broken"))
    [response], result = send(loaded, [Request("https://api.example.com/orders/7")])
    assert response.status == 500
    assert envelope(response) == {"message": "Internal server error"}
    assert result.metrics.environments[EnvironmentKey("target", "production")].exceptions == 1


def test_a_bound_service_that_is_down_is_a_500(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/x", "get"))

    def crash(topology, front, clock):
        topology.environments[EnvironmentKey("target", "production")].down = True

    [response], _ = send(loaded, [Request("https://api.example.com/x")], setup=crash)
    assert response.status == 500
    assert envelope(response) == {"message": "Internal server error"}


def test_a_chain_over_its_cpu_budget_is_the_platforms_1102_not_an_envelope(make_scenario):
    loaded = gateway_scenario(make_scenario, path("GET", "/x", "spin"))
    [response], result = send(loaded, [Request("https://api.example.com/x")])
    assert response.status == 503
    assert text(response) == "error code: 1102"
    assert result.metrics.clients.cpu_limit_exceeded == 1


def test_each_environment_may_have_its_own_gateway_table(make_scenario):
    def table(template: str, function: str) -> dict:
        return {"serviceBindings": [{"alias": "t", "binding": "TARGET"}],
                "paths": [{"method": "GET", "path": template, "integration": {"binding": "t", "function": function}}]}

    api = service("api", routes=["api.example.com/*"], bindings={"TARGET": "target"}, environments={
        "production": {"gateway": table("/v1/{id}", "get")},
        "canary": {"routes": ["canary.example.com/*"], "gateway": table("/v2/{id}", "which")},
    })
    loaded = make_scenario(compose(api, service("target", routes=None, worker="target.py")), {"target.py": TARGET})
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
    "services[0].gateway.paths[2].integration.function": "expected an RPC method of target@production (broken, get, result, spin, which), got 'gett'",
    "services[0].gateway.paths[2].post_process.function": "expected a code worker with RPC methods behind 'model', model@production runs none (a synthetic model or a gateway)",
}


def test_every_problem_of_a_gateway_table_is_reported_at_once_with_its_path(make_scenario):
    with pytest.raises(ConfigErrors) as caught:
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
    with pytest.raises(ConfigError, match=r"scenario.toml: services\[0\].gateway.paths\[0\].integration.function: "
                       r"expected an RPC method of target@production \(.*\), got 'nope'$"):
        gateway_scenario(make_scenario, path("GET", "/x", "nope"))


def test_a_gateway_service_runs_no_code_or_model_and_all_its_environments_are_gateways(make_scenario):
    with pytest.raises(ConfigErrors) as caught:
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
    with pytest.raises(ConfigError, match=r"services\[0\].gateway: expected either `gateway`"):
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
    with pytest.raises(ConfigError, match=r"services\[0\].gateway: expected a table with `serviceBindings` and `paths`, got str"):
        make_scenario('[[services]]\nname = "api"\ngateway = "yes"\n')


# -- the library scenario, virtual and live ---------------------------------------------------------


def library() -> LoadedScenario:
    return load(ROOT / "scenarios" / "api-gateway.toml")


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
    assert got == {"status": "success", "message": "Operation completed successfully.", "data": {"id": 42}, "_status": 200}
    assert created["_status"] == 200 and created["data"]["sku"] == "A-1" and created["data"]["qty"] == 2
    assert unknown == {"status": "error", "message": "no order 'latest'", "error": "order_not_found", "_status": 404}
    assert refused == {"message": "missing or wrong API key", "_status": 401}
    assert wrong_method == no_path == {"message": "No match found.", "_status": 404}


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
        assert (status, body) == (200, {"status": "success", "message": "Operation completed successfully.", "data": {"id": 42}})
        assert response.getheader("content-type") == "application/json"
        assert response.getheader("x-powered-by") == "github.com/irensaltali/serverlessapigateway"
        status, body, _ = live_request(served.port, "POST", "/orders", {**AUTH, "content-type": "application/json"}, b'{"sku": "B-2", "qty": 3}')
        assert status == 200 and body["data"]["sku"] == "B-2" and body["data"]["qty"] == 3
        status, body, _ = live_request(served.port, "GET", "/orders/42")
        assert (status, body) == (401, {"message": "missing or wrong API key"})
        status, body, _ = live_request(served.port, "GET", "/orders/latest", AUTH)
        assert (status, body["error"]) == (404, "order_not_found")
        status, body, response = live_request(served.port, "DELETE", "/orders/42", AUTH)
        assert (status, body, response.getheader("allow")) == (404, {"message": "No match found."}, None)
        status, body, _ = live_request(served.port, "GET", "/customers", AUTH)
        assert (status, body) == (404, {"message": "No match found."})
    assert served.returncode == 0, served.stderr
    assert KEY not in served.stderr + served.stdout
