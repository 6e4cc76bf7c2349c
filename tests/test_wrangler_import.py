"""`edge import`: wrangler files written from Cloudflare's documented examples become scenarios that
the real consumers accept (`edge check` passes, `edge run` runs), with the structure the files say,
and what edge does not model listed by key in the comment at the top."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edge import cli
from edge.scenario import wrangler
from edge.scenario.errors import ConfigError
from edge.scenario.load import load
from edge.scenario.schema import Meta, Scenario, Service

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "wrangler"


def edge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def imported(tmp_path: Path, *files: str | Path) -> tuple[str, Scenario]:
    """Import through the command, then hand the scenario to `edge check` and `edge run`."""
    out = tmp_path / "scenario.toml"
    assert cli.main(["import", *map(str, files), "-o", str(out)]) == 0
    assert cli.main(["check", str(out)]) == 0
    assert cli.main(["run", str(out), "--duration", "2s", "-q"]) == 0
    return out.read_text(), load(out).spec


def header(text: str) -> str:
    """The comment block at the top."""
    return text.split("\n\n[scenario]", 1)[0]


def by_name(spec: Scenario) -> dict[str, Service]:
    return {s.name: s for s in spec.services}


def test_seed_workers_form_one_topology_whose_bindings_connect(tmp_path: Path) -> None:
    seed = FIXTURES / "seed"
    text, spec = imported(tmp_path, seed / "gateway/wrangler.toml", seed / "auth/wrangler.toml", seed / "application/wrangler.jsonc")
    services = by_name(spec)
    assert list(services) == ["gateway", "auth", "application", "users-api"]
    gateway = services["gateway"]
    assert [str(r) for r in gateway.routes] == ["example.com/*"]
    assert {k: str(v) for k, v in gateway.bindings.items()} == {"auth": "auth", "application": "application"}
    assert gateway.vars == {"GATEWAY_MODE": "strict"}
    assert services["auth"].routes == []  # workers_dev = false: private, as seed 001 says
    assert services["application"].routes == []
    # A binding's `environment` pins the target's environment; a worker outside the files is a service of its own.
    assert str(services["application"].bindings["USERS"]) == "users-api@staging"
    assert list(services["users-api"].environments) == ["production", "staging"]
    assert "# users-api: a worker the imported files bind to" in text
    assert "# binding application: entrypoint ApplicationEntrypoint: a synthetic model answers every entrypoint" in text
    for service in spec.services:  # a synthetic model to fill in, on every service
        assert service.model is not None and service.worker is None
    assert text.count("# fill in: measured from your worker") == 4
    assert [r.url for r in spec.traffic[0].requests] == ["https://example.com/"]


def test_environments_carry_their_own_vars_and_bindings_to_environment_workers(tmp_path: Path) -> None:
    env = FIXTURES / "environments"
    text, spec = imported(tmp_path, env / "api/wrangler.toml", env / "frontend/wrangler.toml")
    api, frontend = by_name(spec)["my-worker"], by_name(spec)["frontend"]
    assert list(api.environments) == ["production", "staging"]
    # vars are not inherited in wrangler: each environment has its own, none at the service level
    assert api.vars == {}
    assert api.environments["production"].vars == {"ENVIRONMENT": "production", "API_HOST": "api.example.org"}
    assert api.environments["staging"].vars == {"ENVIRONMENT": "staging", "API_HOST": "api.staging.example.org"}
    assert [str(r) for r in api.routes] == ["example.org/*"]
    # [env.staging] deploys as the worker "my-worker-staging": binding to that name is binding to the environment
    assert str(frontend.environments["production"].bindings["API"]) == "my-worker"
    assert str(frontend.environments["staging"].bindings["API"]) == "my-worker@staging"
    # an environment's own routes are its own: requests on them go to that environment
    assert [str(r) for r in api.environments["staging"].routes] == ["staging.example.org/*"]
    assert api.environments["production"].routes == []  # the top level's are the service's
    top = header(text)
    assert "routes" not in top
    assert "    kv_namespaces: KV (MY_NAMESPACE)" in top and "env.staging.kv_namespaces: KV (MY_NAMESPACE)" in top


@pytest.mark.parametrize("order", [("api/wrangler.toml", "web/wrangler.jsonc"), ("web/wrangler.jsonc", "api/wrangler.toml")])
def test_an_environment_with_a_name_of_its_own_is_what_bindings_to_that_name_reach(tmp_path: Path, order: tuple[str, str]) -> None:
    # Wrangler deploys [env.development] name = "development" as the worker "development": a
    # binding to that name is a binding to api@development, in whichever order the files come.
    folder = FIXTURES / "named-environments"
    text, spec = imported(tmp_path, *(folder / name for name in order))
    services = by_name(spec)
    assert sorted(services) == ["api", "api-staging", "web"]
    web = services["web"].environments
    assert {env: {k: str(v) for k, v in web[env].bindings.items()} for env in web} == {
        "production": {"API": "api"},
        "development": {"API": "api@development"},
        "staging": {"API": "api@staging", "LEGACY": "api-staging"},
    }
    api = services["api"]
    assert api.environments["development"].vars == {"STAGE": "development"}
    # workers_dev = true serves the environment on its own worker name; the routes it inherits stay the service's.
    assert [str(r) for r in api.environments["development"].routes] == ["development.your-subdomain.workers.dev/*"]
    assert [str(r) for r in web["development"].routes] == ["web-dev.your-subdomain.workers.dev/*"]
    assert [str(r) for r in api.environments["staging"].routes] == ["api.staging.example.com/*"]
    assert [str(r) for r in api.routes] == ["api.example.com/*"]
    top = header(text)
    api_file, web_file = str(folder / "api/wrangler.toml"), str(folder / "web/wrangler.jsonc")
    said = _listed(top)
    assert "env.development.name = development: the environment's worker name; bindings to it go to api@development" in said[api_file]
    assert "env.staging.name = api-staging-v2: the environment's worker name; bindings to it go to api@staging" in said[api_file]
    assert "env.staging.routes api.example.com/*: also the production environment's, whose route it stays" in said[api_file]
    assert "env.development.name = web-dev: the environment's worker name; bindings to it go to web@development" in said[web_file]
    # The worker nothing deploys as is a placeholder that says why the renamed environment is not it.
    assert "# api's [env.staging] would be api-staging, but deploys as api-staging-v2\n" in text


def _listed(top: str) -> dict[str, list[str]]:
    """The "not imported" list, per file."""
    listed: dict[str, list[str]] = {}
    file = ""
    for line in top.splitlines():
        if line.startswith("#   ") and line.endswith(":") and not line.startswith("#    "):
            file = line[4:-1]
            listed[file] = []
        elif line.startswith("#     ") and file:
            listed[file].append(line[6:])
    return listed


def test_a_name_two_workers_deploy_as_reaches_one_and_the_other_says_so(tmp_path: Path) -> None:
    for name, text in (("web", 'name = "web"\nroutes = ["example.com/*"]\nservices = [{ binding = "API", service = "api-v2" }]\n'),
                       ("api", 'name = "api"\nworkers_dev = false\n[env.preview]\nname = "web"\n'
                               '[env.canary]\nname = "api-v2"\n[env.next]\nname = "api-v2"\n[env.old]\n'),
                       ("old", 'name = "api-old"\nworkers_dev = false\n')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "wrangler.toml").write_text(text)
    text, spec = imported(tmp_path, *(tmp_path / name / "wrangler.toml" for name in ("web", "api", "old")))
    assert str(by_name(spec)["web"].bindings["API"]) == "api@canary"
    # A worker's own name wins over an environment's (named, or by wrangler's NAME-ENV); of two
    # environments, the first in the file.
    listed = _listed(header(text))[str(tmp_path / "api/wrangler.toml")]
    assert listed == [
        "env.preview.name = web: web has this name too; bindings to it go to web, not to api@preview",
        "env.canary.name = api-v2: the environment's worker name; bindings to it go to api@canary",
        "env.next.name = api-v2: api@canary has this name too; bindings to it go to api@canary, not to api@next",
        "env.old (deployed as api-old): api-old has this name too; bindings to it go to api-old, not to api@old",
    ]


def test_a_binding_name_given_twice_keeps_the_last_and_says_the_first_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.toml"
    path.write_text('name = "web"\nroutes = ["example.com/*"]\n'
                    'services = [{ binding = "API", service = "auth" }, { binding = "API", service = "users" }]\n')
    text, spec = imported(tmp_path, path)
    assert {k: str(v) for k, v in by_name(spec)["web"].bindings.items()} == {"API": "users"}
    assert "services[1]: binding API again: it replaces the earlier one, to auth" in header(text)


def test_routes_as_strings_objects_and_custom_domains(tmp_path: Path) -> None:
    text, spec = imported(tmp_path, FIXTURES / "routes/wrangler.toml")
    assert [str(r) for r in spec.services[0].routes] == [
        "example.com/api/*", "subdomain.example.com/*", "*.example.net/*", "shop.example.com/*",
    ]
    assert [r.url for r in spec.traffic[0].requests] == ["https://example.com/api/"]


def test_jsonc_with_comments_and_trailing_commas(tmp_path: Path) -> None:
    text, spec = imported(tmp_path, FIXTURES / "jsonc/wrangler.jsonc")
    service = spec.services[0]
    # "//" inside a string is text, not a comment; a JSON var arrives as its JSON text
    assert service.vars == {"API_URL": "https://api.example.com/v1", "RETRIES": "3", "FEATURES": '{"beta": true}'}
    assert [str(r) for r in service.routes] == ["example.org/*"]
    top = header(text)
    assert "vars.RETRIES: a JSON value, imported as its JSON text" in top
    assert "observability: Workers Logs and traces" in top


def test_storage_and_unknown_keys_are_listed_by_key_never_dropped(tmp_path: Path) -> None:
    text, spec = imported(tmp_path, FIXTURES / "storage/wrangler.toml")
    top = header(text)
    for line in ("kv_namespaces: KV (CACHE)", "d1_databases: D1 (DB)", "r2_buckets: R2 (ASSETS)",
                 "durable_objects: Durable Objects (COUNTER)", "migrations: Durable Object migrations", "queues: Queues (JOBS)",
                 "ai: Workers AI (AI)", "triggers: cron triggers", "compatibility_flags: runtime compatibility",
                 "frobnicate: unknown key", "build and deploy settings: account_id"):
        assert f"#     {line}\n" in top, line
    assert "secret values: never in a wrangler file, never imported" in top
    assert spec.scenario.cpu_limit.seconds == pytest.approx(0.030)  # limits.cpu_ms = 30
    assert by_name(spec)["storage-worker"].secrets == {}


def test_every_key_of_a_file_is_imported_or_named_in_the_comment(tmp_path: Path) -> None:
    # An environment's name is not kept as such (edge has environments, not workers per
    # environment): it is named in the comment with where the bindings to it go.
    for path in FIXTURES.rglob("wrangler.*"):
        raw = wrangler.read(path)
        text = wrangler.import_files([str(path)])
        top = header(text)
        for key in raw:
            assert key in wrangler.IMPORTED | {"env"} or key in top, (path, key)
        for env, section in raw.get("env", {}).items():
            for key in section:
                assert key in wrangler.IMPORTED - {"name"} or f"env.{env}.{key}" in top, (path, env, key)


def test_output_goes_to_stdout_and_an_existing_file_is_replaced_only_with_force(tmp_path: Path) -> None:
    source = FIXTURES / "routes/wrangler.toml"
    shown = edge("import", str(source))
    assert shown.returncode == 0 and shown.stdout == wrangler.import_files([str(source)])
    out = tmp_path / "scenario.toml"
    out.write_text("keep me")
    refused = edge("import", str(source), "-o", str(out))
    assert refused.returncode == 2
    assert refused.stderr == f"edge: error: cannot write output: {out}: exists; pass --force to replace it\n"
    assert out.read_text() == "keep me"
    assert edge("import", str(source), "-o", str(out), "--force").returncode == 0
    assert out.read_text() == shown.stdout
    assert list(tmp_path.iterdir()) == [out]  # written through a temporary file and a rename: nothing left over


def test_an_output_folder_that_does_not_exist_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    result = edge("import", str(FIXTURES / "routes/wrangler.toml"), "-o", str(tmp_path / "missing/scenario.toml"))
    assert result.returncode == 2 and "does not exist" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize(("name", "text", "message"), [
    ("wrangler.toml", 'name = "api"\nroutes = [\n', "wrangler.toml: not valid TOML: "),
    ("wrangler.jsonc", '{\n  "name": "api",\n  "vars": { "A": "x" "B": "y" },\n}\n', "wrangler.jsonc: line 3, column 22: not valid JSONC: "),
    ("wrangler.json", "", "wrangler.json: not valid JSONC: "),
    ("wrangler.json", "[1, 2]", "wrangler.json: expected an object at the top, got list"),
    ("wrangler.yaml", "name: api", "wrangler.yaml: expected a wrangler configuration file"),
    ("wrangler.toml", 'main = "src/index.js"', "wrangler.toml: name: expected the worker's name, got None"),
    ("wrangler.toml", 'name = "my worker"', "wrangler.toml: name: expected a service name of letters, digits"),
    ("wrangler.toml", 'name = "api"\nservices = [{ binding = "AUTH" }]', "wrangler.toml: services[0].service: expected the bound worker's name"),
    ("wrangler.toml", 'name = "api"\n[env.staging]\nservices = [{ service = "auth" }]', "wrangler.toml: env.staging.services[0].binding: expected"),
    ("wrangler.toml", 'name = "api"\nroutes = [{ zone_name = "example.com" }]', "wrangler.toml: routes[0].pattern: expected a route pattern"),
    ("wrangler.toml", 'name = "api"\nworkers_dev = "yes"', "wrangler.toml: workers_dev: expected true or false"),
    ("wrangler.toml", 'name = "api"\n[env.dev]\nname = ""', "wrangler.toml: env.dev.name: expected a worker name, got ''"),
])
def test_a_malformed_file_is_one_line_naming_the_file_and_exit_2(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    result = edge("import", name, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"edge: error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1


def test_toml_errors_give_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "wrangler.toml").write_text('name = "api"\nvars = { A = }\n')
    result = edge("import", "wrangler.toml", cwd=tmp_path)
    assert result.returncode == 2 and "(at line 2, column 14)" in result.stderr


def test_a_worker_imported_twice_is_refused(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "wrangler.toml").write_text('name = "api"\n')
    with pytest.raises(ConfigError, match=r"b/wrangler.toml: name: expected a worker not imported already, got 'api' again"):
        wrangler.import_files([str(tmp_path / "a/wrangler.toml"), str(tmp_path / "b/wrangler.toml")])


def test_file_size_limit_at_and_over_the_boundary(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.toml"
    start = 'name = "api"\n#'
    path.write_text(start + "x" * (wrangler.MAX_FILE_BYTES - len(start)))
    assert path.stat().st_size == wrangler.MAX_FILE_BYTES
    assert wrangler.read(path)["name"] == "api"
    path.write_text(start + "x" * (wrangler.MAX_FILE_BYTES - len(start) + 1))
    with pytest.raises(ConfigError, match=r"at most 131,072 bytes \(128 KiB\)"):
        wrangler.read(path)


def test_nesting_too_deep_for_the_parser_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.json"
    path.write_text('{"name": "api", "vars": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(ConfigError, match="nested a few levels deep"):
        wrangler.read(path)


def test_names_from_the_file_cannot_break_out_of_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.json"
    path.write_text('{"name": "api", "routes": ["example.com/*"], "x\\n[[services]]\\nname = \\"evil\\"": 1}')
    text = wrangler.import_files([str(path)])
    assert "x\\n[[services]]\\nname = \"evil\": unknown key" in header(text)
    assert [s["name"] for s in tomllib.loads(text)["services"]] == ["api"]


def test_a_binding_environment_missing_from_the_bound_file_is_added_and_said(tmp_path: Path) -> None:
    for name, text in (("a", 'name = "web"\nroutes = ["example.com/*"]\nservices = [{ binding = "API", service = "api", environment = "canary" }]\n'),
                       ("b", 'name = "api"\nworkers_dev = false\n')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "wrangler.toml").write_text(text)
    text, spec = imported(tmp_path, tmp_path / "a/wrangler.toml", tmp_path / "b/wrangler.toml")
    assert str(by_name(spec)["web"].bindings["API"]) == "api@canary"
    assert list(by_name(spec)["api"].environments) == ["production", "canary"]
    assert "environment canary: named by web's binding API, not in this worker's configuration" in text


def test_a_file_with_env_production_keeps_its_top_level_as_default(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.toml"
    path.write_text('name = "api"\nworkers_dev = false\nvars = { STAGE = "dev" }\n'
                    '[env.production]\nroutes = ["api.example.com/*"]\nvars = { STAGE = "prod" }\n')
    text, spec = imported(tmp_path, path)
    service = spec.services[0]
    assert list(service.environments) == ["default", "production"]
    assert service.environments["production"].vars == {"STAGE": "prod"}
    assert [str(r) for r in service.routes] == ["api.example.com/*"]


def test_workers_dev_gives_a_route_on_the_account_subdomain(tmp_path: Path) -> None:
    # No routes and workers_dev not false: wrangler serves the worker on workers.dev.
    path = tmp_path / "wrangler.toml"
    path.write_text('name = "hello"\n')
    _, spec = imported(tmp_path, path)
    assert [str(r) for r in spec.services[0].routes] == ["hello.your-subdomain.workers.dev/*"]
    assert [r.url for r in spec.traffic[0].requests] == ["https://hello.your-subdomain.workers.dev/"]


def test_no_public_worker_means_no_traffic_stub_and_still_checks(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.toml"
    path.write_text('name = "private"\nworkers_dev = false\n')
    text, spec = imported(tmp_path, path)
    assert spec.traffic == [] and "no imported worker has a route: no traffic group" in text


def test_a_route_edge_cannot_serve_is_listed_not_imported(tmp_path: Path) -> None:
    path = tmp_path / "wrangler.toml"
    path.write_text('name = "api"\nroutes = ["example.com/*", "example.com/a*b"]\n')
    text, spec = imported(tmp_path, path)
    assert [str(r) for r in spec.services[0].routes] == ["example.com/*"]
    assert "routes[1] example.com/a*b: expected '*' only at the end of the path" in header(text)


def test_cpu_limits_that_differ_between_files_keep_the_default_and_say_so(tmp_path: Path) -> None:
    for name, cpu in (("a", 10), ("b", 50)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "wrangler.toml").write_text(f'name = "{name}"\n[limits]\ncpu_ms = {cpu}\n')
    text, spec = imported(tmp_path, tmp_path / "a/wrangler.toml", tmp_path / "b/wrangler.toml")
    assert spec.scenario.cpu_limit.raw == Meta().cpu_limit.raw
    assert "limits.cpu_ms differs between the files" in header(text)


@pytest.mark.parametrize("value", ["0", "-5", "true", '"fast"'])
def test_a_cpu_limit_that_is_not_a_positive_number_is_listed_not_imported(tmp_path: Path, value: str) -> None:
    path = tmp_path / "wrangler.toml"
    path.write_text(f'name = "api"\n[limits]\ncpu_ms = {value}\n')
    text, spec = imported(tmp_path, path)
    assert spec.scenario.cpu_limit.raw == Meta().cpu_limit.raw
    assert f"limits.cpu_ms = {value.strip(chr(34))}: expected a positive number of milliseconds" in header(text)
