"""Scenario errors name the file, the path inside it and what was expected; the CLI exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge import cli

from edge.scenario import load as scenario_load
from edge.scenario.errors import ConfigError
from edge.scenario.resolved import LoadedScenario
from edge.engine.simulate import default_scenario_path

GOOD = """
[[services]]
name = "gateway"
routes = ["example.com/*"]
worker = "gw.py"
bindings = { APP = "app" }

[[services]]
name = "app"
[services.environments.production]
model = { cpu = "1ms" }
[services.environments.canary]
model = { cpu = "1ms" }
[services.split]
weights = { production = 99, canary = 1 }

[[traffic]]
arrivals = "poisson(10/s)"
requests = [{ url = "https://example.com/" }]
"""

ROOT = Path(__file__).resolve().parent.parent
GW = "async def fetch(request, env, ctx):\n    return await env.APP.fetch(request)\n"


def load(tmp_path, toml: str, worker: str = GW) -> LoadedScenario:
    (tmp_path / "gw.py").write_text(worker)
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(toml))
    return scenario_load.load(path)


def error(tmp_path, toml: str, worker: str = GW) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml, worker)
    assert info.value.file.endswith("s.toml")
    return info.value


def test_good_scenario_loads(tmp_path):
    loaded = load(tmp_path, GOOD)
    assert [s.name for s in loaded.spec.services] == ["gateway", "app"]


def test_default_scenario_is_valid():
    loaded = scenario_load.load(default_scenario_path())
    assert loaded.spec.scenario.name == "seed-chain"


@pytest.mark.parametrize(
    "old, new, path, expected",
    [
        ("production = 99, canary = 1", "production = 90, canary = 1", "services[1].split.weights", "summing to 100"),
        ("production = 99, canary = 1", "production = 99, canary = -1", "services[1].split.weights.canary", "between 0 and 100"),
        ("production = 99, canary = 1", "production = 99, canery = 1", "services[1].split.weights.canery", "environment of 'app'"),
        ('APP = "app"', 'APP = "apq"', "services[0].bindings.APP", "name of a service"),
        ('APP = "app"', 'APP = "app@preview"', "services[0].bindings.APP", "environment of 'app'"),
        ('cpu = "1ms" }\n[services.environments.canary]', 'cpu = "1 parsec" }\n[services.environments.canary]', "services[1].environments.production.model.cpu", "duration"),
        ('cpu = "1ms" }\n[services.split]', 'cpu = "exq(1ms)" }\n[services.split]', "services[1].environments.canary.model.cpu", "expected"),
        ('"poisson(10/s)"', '"poisson(-10/s)"', "traffic[0].arrivals", "rate"),
        ('"poisson(10/s)"', '"burst(10/s)"', "traffic[0].arrivals", "poisson(RATE)"),
        ('url = "https://example.com/"', 'url = "example.com"', "traffic[0].requests[0].url", "absolute URL"),
        ('routes = ["example.com/*"]', "routes = 3", "services[0].routes", "expected `array`"),
        ('name = "app"', 'name = "app"\ncolour = "red"', "services[1]", "unknown field `colour`"),
        ('name = "app"', 'name = "gateway"', "services[1].name", "unique service name"),
        ('worker = "gw.py"', 'worker = "missing.py"', "services[0].worker", "does not exist"),
        # a misspelt field: the closest one named (difflib), and the fields expected
        ('arrivals = "poisson', 'arrival = "poisson', "traffic[0]", "unknown field `arrival` (did you mean `arrivals`?); expected one of requests, name, arrivals,"),
        ('model = { cpu = "1ms" }\n[services.environments.canary]', 'model = { cpu = "1ms" }\n[services.environments.canary]\nmodle = {}',
         "services[1].environments.canary", "unknown field `modle` (did you mean `model`?); expected one of "),
        ('name = "app"', 'name = "app"\nzzqq = 1', "services[1]", "unknown field `zzqq`; expected one of worker, model, "),  # nothing close
        # a rate without its unit is not taken as per second: the unit is asked for
        ('"poisson(10/s)"', '"poisson(10)"', "traffic[0].arrivals", 'with its unit, like "poisson(10/s)"'),
        ('"poisson(10/s)"', '"constant(2.5k)"', "traffic[0].arrivals", 'with its unit, like "constant(2.5k/s)"'),
    ],
)
def test_errors_name_path_and_expectation(tmp_path, old, new, path, expected):
    assert old in GOOD
    exc = error(tmp_path, GOOD.replace(old, new, 1))
    assert exc.path == path, str(exc)
    assert expected in exc.expected, str(exc)
    assert str(exc).startswith(f"{tmp_path / 's.toml'}: {path}: ")


def test_a_misspelt_field_of_a_rollout_step_is_named_at_its_step_with_the_closest_field(tmp_path):
    """A step is a weight or a table: the table's fields are the ones offered."""
    toml = GOOD.replace("[services.split]\nweights = { production = 99, canary = 1 }",
                        "[services.rollout]\ncanary = \"canary\"\ninterval = \"1s\"\nsteps = [1, 5, { wieght = 10 }, 50]")
    exc = error(tmp_path, toml)
    assert exc.path == "services[1].rollout.steps[2]", str(exc)
    assert exc.expected == "object contains unknown field `wieght` (did you mean `weight`?); expected one of weight, pause, manual"


def test_worker_without_fetch_or_with_a_syntax_error(tmp_path):
    exc = error(tmp_path, GOOD, worker="def handler():\n    pass\n")
    assert exc.path == "services[0].worker" and "async def fetch" in exc.expected
    exc = error(tmp_path, GOOD, worker="async def fetch(request, env, ctx):\n    return (\n")
    assert exc.path == "services[0].worker" and "line 2" in exc.expected


def test_checking_a_scenario_never_runs_its_worker_code_and_running_it_reports_what_only_running_shows(tmp_path):
    # A module whose first line writes a file: `edge check` reads it (its syntax, its handler)
    # and writes nothing; `edge run` runs it, and its failing import is a config error, exit 2.
    marker = tmp_path / "ran"
    worker = f"open({str(marker)!r}, 'w').write('x')\nimport does_not_exist\nasync def fetch(request, env, ctx):\n    pass\n"
    (tmp_path / "gw.py").write_text(worker)
    (tmp_path / "s.toml").write_text(GOOD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for command in (["check"], ["graph"]):
        done = subprocess.run([sys.executable, "-m", "edge.cli", *command, str(tmp_path / "s.toml")], capture_output=True, text=True, env=env, cwd=ROOT)
        assert done.returncode == 0 and not marker.exists(), (command, done.stderr)
    done = subprocess.run([sys.executable, "-m", "edge.cli", "run", str(tmp_path / "s.toml"), "--duration", "1s"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 2 and marker.exists()
    assert done.stderr == (f"edge: error: {tmp_path / 's.toml'}: services[0].worker: worker module {str(tmp_path / 'gw.py')!r} failed to import: "
                           "ModuleNotFoundError: No module named 'does_not_exist'\n")


def test_a_worker_file_many_services_name_is_read_once_and_each_of_them_is_checked(tmp_path, monkeypatch):
    # 10,000 services naming one file read and parsed it 10,000 times (2.7 s of a 3.9 s load).
    from edge.scenario import checks
    from scenario_builder import compose, service, write

    (tmp_path / "w.py").write_text(GW)
    (tmp_path / "x.py").write_text(GW)
    read = []
    monkeypatch.setattr(checks, "read_worker", lambda path, real=checks.read_worker: read.append(Path(path).name) or real(path))
    services = [service(f"s{i}", routes=[f"s{i}.test/*"], worker="w.py") for i in range(3)] + [service("t", routes=["t.test/*"], worker="x.py")]
    scenario_load.load(write(tmp_path, compose(*services)))
    assert sorted(read) == ["w.py", "x.py"]
    # a file shared with a broken one's name: each environment still gets its own verdict and path
    (tmp_path / "bad.py").write_text("def fetch(:\n")
    services[1] = service("s1", routes=["s1.test/*"], worker="bad.py")
    services[2] = service("s2", routes=["s2.test/*"], worker="bad.py")
    with pytest.raises(ConfigError, match=r"services\[1\]\.worker: worker module .*bad\.py.*: line 1"):
        scenario_load.load(write(tmp_path, compose(*services)))
    outside = tmp_path / "inside"
    outside.mkdir()
    shared = [service(f"s{i}", routes=[f"s{i}.test/*"], worker="../w.py") for i in range(2)]
    loaded = scenario_load.load(write(outside, compose(*shared)))
    assert [w.split(": ")[1] for w in loaded.warnings] == ["services[0].worker", "services[1].worker"]  # a warning each, as before


def test_a_worker_outside_the_scenarios_folder_is_a_warning(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "gw.py").write_text(GW)
    (tmp_path / "inside" / "s.toml").write_text(GOOD.replace('worker = "gw.py"', 'worker = "../gw.py"'))
    loaded = scenario_load.load(tmp_path / "inside" / "s.toml")
    assert loaded.warnings == [f"{tmp_path / 'inside' / 's.toml'}: services[0].worker: '../gw.py' is outside the scenario's folder; "
                               "`edge run` and `edge serve` will run it"]
    done = subprocess.run([sys.executable, "-m", "edge.cli", "check", str(tmp_path / "inside" / "s.toml")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert done.returncode == 0 and done.stderr == f"edge: warning: {loaded.warnings[0]}\n"
    (tmp_path / "inside" / "gw.py").write_text(GW)
    (tmp_path / "inside" / "s.toml").write_text(GOOD)
    assert scenario_load.load(tmp_path / "inside" / "s.toml").warnings == []


def test_secret_references_are_checked(tmp_path):
    toml = GOOD.replace('url = "https://example.com/"', 'url = "https://example.com/", headers = { t = "secret:app.NOPE" }')
    exc = error(tmp_path, toml)
    assert exc.path == "traffic[0].requests[0].headers.t"
    assert "no secret 'NOPE'" in exc.expected


def test_invalid_toml(tmp_path):
    exc = error(tmp_path, "[[services]\nname=")
    assert "not valid TOML" in exc.expected


def test_cli_exits_2_with_the_message(tmp_path, capsys):
    (tmp_path / "gw.py").write_text(GW)
    bad = tmp_path / "s.toml"
    bad.write_text(GOOD.replace("production = 99", "production = 98"))
    out = tmp_path / "out.json"
    assert cli.main(["run", str(bad), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: services[1].split.weights: expected weights summing to 100" in err
    assert not out.exists()  # nothing half-written
    assert cli.main(["check", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read file: No such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize("scenario", ["scenarios/default.toml", "scenarios/bad-canary.toml", "scenarios/tune-canary.toml"])
def test_graph_dot_is_rendered_by_graphviz(scenario):
    """Graphviz's own `dot` reads what --dot writes (Debian package graphviz; .ci/run installs it:
    without it this test fails rather than skips)."""
    import shutil
    import subprocess
    import sys

    dot = shutil.which("dot")
    assert dot is not None, "Graphviz's dot not found: apt-get install graphviz"
    root = Path(__file__).resolve().parent.parent
    graph = subprocess.run([sys.executable, "-m", "edge.cli", "graph", "--dot", scenario], capture_output=True, text=True, cwd=root, timeout=60)
    assert graph.returncode == 0, graph.stderr
    svg = subprocess.run([dot, "-Tsvg"], input=graph.stdout, capture_output=True, text=True, timeout=60)
    assert svg.returncode == 0 and svg.stderr == "", svg.stderr
    assert "<svg" in svg.stdout and "app@production" in svg.stdout


def test_cli_check_and_graph(tmp_path, capsys):
    assert cli.main(["check"]) == 0
    assert "3 services, 4 environments" in capsys.readouterr().out
    assert cli.main(["graph"]) == 0
    out = capsys.readouterr().out
    assert "gateway  [example.com/*]" in out and "auth  [private]" in out
    assert "production: AUTH -> auth" in out


def test_graph_dot_declares_every_environment_and_draws_every_binding(capsys):
    import re

    assert cli.main(["graph", "--dot"]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith('digraph "edge" {') and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    declared = set(re.findall(r'^\s+"([\w@-]+)" \[label=', dot, re.M))
    assert declared == {"gateway@production", "auth@production", "app@production", "app@canary"}
    edges = re.findall(r'^\s+"?([\w@-]+)"? -> "([\w@-]+)" \[label="([^"]+)"', dot, re.M)
    assert ("gateway@production", "auth@production", "AUTH") in edges
    assert ("gateway@production", "app@canary", "APP 1%") in edges
    assert ("ingress", "gateway@production", "100%") in edges
    assert {target for _, target, _ in edges} <= declared
