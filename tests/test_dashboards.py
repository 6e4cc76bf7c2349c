"""The Grafana setup in grafana/: static checks of the dashboards and provisioning, and a live check.

The live check runs the real thing end to end: ``edge serve`` (tests/live.py) with traffic from a
few client threads, a real ``prometheus`` scraping it every second, and then every query of every
panel of every dashboard, with Grafana's variables substituted, against Prometheus' HTTP API. Each
must return at least one series with a number (not NaN): a panel that would show "No data" fails
the test, naming the dashboard, the panel and the query.

The ``prometheus`` binary is required (CI installs it with apt); without it the live test fails.
The YAML files are read with regexes rather than a YAML parser: the project does not depend on one,
and the few keys checked here are written one per line.
"""

from __future__ import annotations

import collections
import html.parser
import http.client
import importlib.util
import json
import math
import re
import shutil
import socket
import sys
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from live import ROOT, admin_headers, serve
from scenario_builder import canary_service, compose, service, traffic, write

from edge.metrics.families import FAMILIES, LOADGEN_FAMILIES

GRAFANA = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
CONSOLE_DIR = GRAFANA / "consoles"
EXPECTED = {"overview", "bindings", "cpu", "canary", "actors"}
TOKEN = "s3cret-token-0f9a"  # the bundled scenario's auth secret


def read(path: str) -> str:
    return (GRAFANA / path).read_text()


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel, target


def provisioned_uid() -> str:
    match = re.search(r"^\s*uid:\s*(\S+)", read("provisioning/datasources/prometheus.yml"), re.M)
    assert match, "grafana/provisioning/datasources/prometheus.yml names no datasource uid"
    return match.group(1)


# -- static checks -------------------------------------------------------------------------------------


def test_the_five_dashboards_parse():
    boards = dashboards()
    assert set(boards) == EXPECTED
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids), f"dashboard uids must be unique: {uids}"
    for name, board in boards.items():
        assert board["schemaVersion"] >= 36, name
        assert list(panels(board)), f"{name}: no panels"


def generator():
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboards_and_console_pages_are_what_generate_py_writes():
    # Both are generated; a hand edit would be lost on the next `python grafana/generate.py`.
    module = generator()
    files = module.outputs()
    assert {path.name for path in files if path.parent == CONSOLE_DIR} == {f"{name}.html" for name in EXPECTED} | {"index.html"}
    for path, text in files.items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run python grafana/generate.py"
    assert module.DATASOURCE["uid"] == provisioned_uid()


class ConsolePage(html.parser.HTMLParser):
    """The panels of a console page: (title, [(expr, legend)]) in order, and the board's variables."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.panels: list[tuple[str, list[tuple[str, str]]]] = []
        self.variables: list[dict[str, Any]] = []
        self._title: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "h3":
            self._title = ""
        if "data-variables" in found:
            self.variables = json.loads(found["data-variables"] or "")
        if "data-queries" in found:
            queries = json.loads(found["data-queries"] or "")
            self.panels.append((self.panels.pop()[0], [(q["expr"], q["legend"]) for q in queries]))

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self.panels.append((data, []))
            self._title = None


def test_console_pages_carry_the_grafana_panels_and_queries():
    # One table, two renderings: every Grafana panel is on the console page of the same name, in the
    # same order, with the same queries and legends.
    for name, board in dashboards().items():
        page = ConsolePage((CONSOLE_DIR / f"{name}.html").read_text())
        grafana = [(panel["title"], [(t["expr"], t["legendFormat"].replace("__auto", "")) for t in panel["targets"]])
                   for panel in panels(board)]
        assert page.panels == grafana, f"grafana/consoles/{name}.html differs from dashboards/{name}.json"
        variables = [{"name": v["name"], "query": v["definition"], "all": v["allValue"]} for v in board["templating"]["list"]]
        assert page.variables == variables, name
        assert "{{" not in "".join(expr for _, queries in page.panels for expr, _ in queries), "a query would open a Go template action"


def test_panel_ids_are_unique_and_panels_fit_the_grid():
    for name, board in dashboards().items():
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids {sorted(i for i in ids if ids.count(i) > 1)}"
        cells: dict[tuple[int, int], str] = {}
        for panel in panels(board):
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, f"{name}/{panel['title']}: outside the 24 columns"
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = panel["title"]


def test_every_panel_query_and_variable_uses_the_provisioned_datasource():
    expected = {"type": "prometheus", "uid": provisioned_uid()}
    for name, board in dashboards().items():
        for panel in panels(board):
            assert panel.get("datasource") == expected, f"{name}/{panel['title']}: datasource {panel.get('datasource')}"
        for panel, target in queries(board):
            assert target.get("datasource", expected) == expected, f"{name}/{panel['title']}/{target['refId']}: datasource {target['datasource']}"
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                assert var["datasource"] == expected, f"{name}: variable ${var['name']} datasource {var['datasource']}"


def test_every_target_has_an_expr():
    for name, board in dashboards().items():
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            assert panel.get("targets"), f"{name}/{panel['title']}: no queries"
            refs = [target["refId"] for target in panel["targets"]]
            assert len(set(refs)) == len(refs), f"{name}/{panel['title']}: duplicate refIds {refs}"
            for target in panel["targets"]:
                assert target.get("expr", "").strip(), f"{name}/{panel['title']}/{target['refId']}: empty expr"


METRIC = re.compile(r"\bedge_[a-z0-9_]+")


def test_every_metric_a_query_selects_is_a_declared_series():
    # What PromQL selects is a series name: a counter's name with its _total, a histogram's stem with
    # _bucket, _sum or _count (a bare stem selects nothing). Every family is on some dashboard, the
    # load generator's (edge serve --traffic) too.
    declared = (*FAMILIES, *LOADGEN_FAMILIES)
    series = {name: family for family in declared for name in family.samples}
    prose = {family.name for family in declared} | set(series)
    used = set()
    for name, board in dashboards().items():
        variables = [var for var in board["templating"]["list"] if var["type"] == "query"]
        promql = [(f"${var['name']}", query) for var in variables for query in (var["definition"], var["query"]["query"])]
        promql += [(f"{panel['title']}/{target['refId']}", target["expr"]) for panel, target in queries(board)]
        for where, expr in promql:
            selected = set(METRIC.findall(expr))
            assert selected, f"{name}/{where}: selects no edge_* metric: {expr}"
            assert selected <= set(series), f"{name}/{where}: undeclared series {sorted(selected - set(series))}"
            used |= {series[metric] for metric in selected}
        for panel in panels(board):
            named = set(METRIC.findall(panel.get("description", "")))
            assert named <= prose, f"{name}/{panel['title']}: the description names undeclared {sorted(named - prose)}"
    assert used == set(declared), f"on no dashboard: {sorted(f.name for f in set(declared) - used)}"


def compose_services() -> dict[str, str]:
    """Service name -> its block of text in grafana/docker-compose.yml (services are indented by 2)."""
    text = read("docker-compose.yml")
    parts = re.split(r"^  ([a-z][\w-]*):[ \t]*$", text.split("\nservices:\n", 1)[1], flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def mounts(block: str) -> dict[str, Path]:
    """Container path -> host path of a compose service's bind mounts (relative to grafana/)."""
    found = re.findall(r"^\s*-\s*\"?(\.{1,2}/[^:\s\"]*):(/[^:\s\"]+)", block, re.M)
    return {container: (GRAFANA / host).resolve() for host, container in found}


def test_provisioning_points_at_existing_folders():
    services = compose_services()
    assert {"edge", "prometheus", "grafana"} <= set(services), f"compose services: {sorted(services)}"
    grafana = mounts(services["grafana"])

    # Grafana reads its provisioning from /etc/grafana/provisioning: both files must be in the mounted folder.
    provisioning = grafana.get("/etc/grafana/provisioning")
    assert provisioning and provisioning.is_dir(), f"grafana mounts {grafana}: nothing existing at /etc/grafana/provisioning"
    assert (provisioning / "datasources" / "prometheus.yml").is_file()
    assert (provisioning / "dashboards" / "edge.yml").is_file()

    # The dashboard provider's path is a container path: it must be (under) a mount of grafana/dashboards.
    provider = re.search(r"^\s*path:\s*(\S+)", read("provisioning/dashboards/edge.yml"), re.M)
    assert provider, "grafana/provisioning/dashboards/edge.yml has no options.path"
    path = provider.group(1).rstrip("/")
    host = next((h / path[len(c):].lstrip("/") for c, h in grafana.items() if path == c or path.startswith(c + "/")), None)
    assert host is not None, f"the dashboard provider reads {path}, which grafana does not mount ({sorted(grafana)})"
    assert host.is_dir() and {p.stem for p in host.glob("*.json")} == EXPECTED, f"{path} is {host}, without the dashboards"

    # The datasource reaches Prometheus by its compose name.
    url = re.search(r"^\s*url:\s*(\S+)", read("provisioning/datasources/prometheus.yml"), re.M)
    assert url and urllib.parse.urlsplit(url.group(1)).hostname in services, f"datasource url {url and url.group(1)}: no such compose service"


def test_compose_prometheus_scrapes_the_edge_service():
    services = compose_services()
    prometheus = mounts(services["prometheus"])
    config = re.search(r"--config\.file=(\S+?)[\"',\s]", services["prometheus"])
    assert config and config.group(1) in prometheus, "prometheus' --config.file must be a mounted file"
    assert prometheus[config.group(1)].is_file()
    targets = re.findall(r"targets:\s*\[\"([^\"]+)\"\]", prometheus[config.group(1)].read_text())
    assert targets, "no scrape target in the compose Prometheus config"
    host, _, port = targets[0].partition(":")
    assert host in services, f"Prometheus scrapes {targets[0]}: no compose service {host!r}"
    # Scraped by name, the ingress would take the request for scenario traffic: it must be the metrics port.
    assert re.search(rf"--metrics-port\"?,?\s*\"?{port}\b", services[host]), f"{host} serves no --metrics-port {port}"
    assert "--host" in services[host] and "0.0.0.0" in services[host], f"{host} must listen beyond its own loopback"
    build = re.search(r"dockerfile:\s*(\S+)", services["edge"])
    context = re.search(r"context:\s*(\S+)", services["edge"])
    assert build and context and ((GRAFANA / context.group(1)) / build.group(1)).is_file()


def promtool() -> str:
    path = shutil.which("promtool")  # shipped with the prometheus binary (Debian's prometheus package)
    if path is None:
        pytest.fail("promtool not found: install Prometheus (apt-get install prometheus) to check grafana/prometheus*.yml")
    return path


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_prometheus_configs_are_valid(config):
    done = subprocess.run([promtool(), "check", "config", str(GRAFANA / config)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"promtool check config grafana/{config}:\n{done.stdout}{done.stderr}"


def test_local_prometheus_config_scrapes_edge_serve_defaults():
    text = read("prometheus.yml")
    assert re.search(r"^\s*scrape_interval:\s*5s\b", text, re.M)
    assert re.search(r"job_name:\s*edge\b", text)
    assert re.search(r"metrics_path:\s*/metrics\b", text)
    assert '"127.0.0.1:8787"' in text


# -- live check ------------------------------------------------------------------------------------------

WORKERS = ROOT / "edge" / "bundled" / "workers"

# The bundled seed topology with a canary that fails often (30% rather than 2%) and cold starts on
# app, so that within seconds every panel has data: retries, 5xx, cold starts. Worker paths are
# absolute: the scenario file lives in tmp_path.
GATEWAY = service("gateway", routes=["example.com/*"], worker=str(WORKERS / "gateway.py"), vars={"CPU_PER_REQUEST": "300us"},
                  bindings={"AUTH": "auth", "APP": "app"})
AUTH = service("auth", routes=None, worker=str(WORKERS / "auth.py"), vars={"CPU_PER_REQUEST": "150us"}, secrets={"SECRET_TOKEN": TOKEN})
APP = canary_service(
    "app", routes=None, cold_start="1ms", keep_warm="1s",
    production={"version": 41, "model": {"cpu": "exp(500us)", "latency": "lognormal(p50=2ms, p99=15ms)", "errors": 0.001, "size": "exp(2KiB)"}},
    canary={"version": 42, "model": {"cpu": "exp(550us)", "latency": "lognormal(p50=2ms, p99=18ms)", "errors": 0.3, "size": "exp(2KiB)"}},
    weight=1, split={"retry": {"on": "5xx", "methods": ["GET", "HEAD"], "to": "production", "budget": {"ratio": 0.5, "min_per_second": 5}}},
    # A rollout that holds at half the traffic (no interval ever has a million answers): its phase and
    # its analyses feed the rollout panels. It owns the split: the admin API refuses to set it.
    rollout={"steps": [50], "interval": "2s", "min_requests": 1000000, "no_data": "hold"},
)
SCENARIO = compose(GATEWAY, AUTH, APP, name="dashboards", seed=1, cpu_limit="50ms", cores=8)
# Served with a light traffic group of its own, sent by `edge serve --traffic`, for the load
# generator's panels; the test's clients (``Traffic``) send the rest.
USERS = traffic("poisson(20/s)", url=None, requests=[{"url": "https://example.com/", "headers": {"x-custom-token": TOKEN}}], name="users")
SERVED = compose(GATEWAY, AUTH, APP, traffic=[USERS], name="dashboards", seed=1, cpu_limit="50ms", cores=8, duration="10m")

RATE_WINDOW = "15s"  # $__rate_interval: 15 scrapes at the test's 1 s interval
DEADLINE = 45.0  # seconds from the start of traffic for every panel to have data
REQUESTS = [  # (method, path, headers, body): the bundled scenario's traffic mix, in proportion
    *[("GET", "/", {"x-custom-token": TOKEN}, None)] * 4,
    *[("GET", "/products?page=2", {"x-custom-token": TOKEN}, None)] * 2,
    *[("POST", "/api/orders", {"x-custom-token": TOKEN, "content-type": "application/json"}, b'{"sku": "A-1", "qty": 1}')] * 2,
    ("GET", "/", {}, None),
    ("GET", "/", {"x-custom-token": "expired-token"}, None),
]


class Traffic:
    """Client threads sending ``REQUESTS`` round-robin over keep-alive connections until stopped."""

    def __init__(self, port: int, threads: int = 4, pause: float = 0.01) -> None:
        self.port = port
        self.pause = pause
        self.statuses: collections.Counter[int | str] = collections.Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self, offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        i = offset
        while not self._stop.is_set():
            method, path, headers, body = REQUESTS[i % len(REQUESTS)]
            i += 1
            try:
                conn.request(method, path, body=body, headers={"host": "example.com", **headers})
                response = conn.getresponse()
                response.read()
                outcome: int | str = response.status
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            with self._lock:
                self.statuses[outcome] += 1
            self._stop.wait(self.pause)
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    """A real ``prometheus`` scraping ``target`` every second, its storage in ``workdir``."""

    def __init__(self, binary: str, workdir: Path, target: str, *flags: str) -> None:
        # The config is grafana/prometheus.yml itself, pointed at the test's server and scraping faster.
        config = read("prometheus.yml")
        for old, new in (('"127.0.0.1:8787"', f'"{target}"'), ("scrape_interval: 5s", "scrape_interval: 1s")):
            assert old in config, f"grafana/prometheus.yml no longer contains {old!r}: update this test"
            config = config.replace(old, new)
        (workdir / "prometheus.yml").write_text(config)
        self.command = [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}", *flags]
        self.workdir = workdir
        self.log = workdir / "prometheus.log"
        self.starts = 0
        self._start()

    def _start(self) -> None:
        # A free port is only free until someone takes it: another test's server may, between
        # ``free_port`` and Prometheus's bind (tests run in parallel). Then Prometheus exits at
        # once, saying so, and ``wait_until`` starts it again on another port.
        self.starts += 1
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*self.command, f"--web.listen-address=127.0.0.1:{self.port}"], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text()[-3000:]

    def query(self, expr: str) -> tuple[list[dict[str, Any]] | None, str]:
        """(the result vector, "") or (None, why not)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:  # 400 for a query that does not parse
            return None, f"HTTP {exc.code}: {exc.read().decode(errors='replace')}"
        except (OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if body.get("status") != "success":
            return None, json.dumps(body)
        data = body["data"]
        if data["resultType"] != "vector":
            return None, f"expected an instant vector, got a {data['resultType']}"
        return data["result"], ""

    def wait_until(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while not check():
            if self.process.poll() is not None:
                if "address already in use" in self.output() and self.starts < 3:
                    self._start()
                    continue
                pytest.fail(f"prometheus exited ({self.process.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; prometheus log:\n{self.output()}")
            time.sleep(0.2)


def has_numbers(result: list[dict[str, Any]] | None) -> bool:
    return bool(result) and any(not math.isnan(float(series["value"][1])) for series in result)


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's interpolation of ``$name``, ``${name}`` and ``[[name]]``; ``$1`` (label_replace) stays."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name.isdigit():
            return match.group(0)
        assert name in values, f"unknown Grafana variable ${name} in {expr!r}"
        return values[name]

    return _VARIABLE.sub(value, expr)


def resolve_variables(board: dict[str, Any], prometheus: Prometheus) -> tuple[dict[str, str], list[str]]:
    """The value of every variable with "All" selected, as Grafana computes it, and what went wrong."""
    values = {"__rate_interval": RATE_WINDOW, "__interval": "1s"}
    problems = []
    for var in board["templating"]["list"]:
        definition = substitute(var["definition"], values)  # variables may depend on earlier ones
        match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", definition)
        assert match, f"{board['title']}: variable ${var['name']} is not label_values(metric, label): {definition}"
        metric, label = match.groups()
        result, error = prometheus.query(f"group by ({label}) ({metric})")
        found = sorted(series["metric"][label] for series in result or [] if label in series["metric"])
        if not found:
            problems.append(f"{board['title']}: variable ${var['name']} ({definition}) has no values {error}")
        if var.get("allValue"):
            values[var["name"]] = var["allValue"]
        else:  # Grafana's Prometheus datasource: every value found, regex-escaped, as (a|b)
            values[var["name"]] = "(" + "|".join(re.escape(v).replace("\\", "\\\\") for v in found) + ")"
    return values, problems


def put_weight(admin: str, service: str, environment: str, percent: float) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{admin}/weights/{service}/{environment}", data=json.dumps({"percent": percent}).encode(), method="PUT",
        headers={"content-type": "application/json", **admin_headers()},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_every_panel_query_returns_data_from_a_live_server(tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the `prometheus` binary is not on PATH: install it (apt-get install prometheus) to run this test")
    scenario = write(tmp_path, SERVED)
    boards = dashboards()

    with serve(str(scenario), "--traffic") as served:
        # The rollout sends half the app traffic to the flaky canary: 5xx, fallbacks and canary
        # latency within seconds. It owns that split: a weight set by hand is refused (issue 28, item 2).
        status, answer = put_weight(served.admin, "app", "canary", 10)
        assert status == 409 and "the rollout of app owns its split" in answer["error"], answer
        prometheus = Prometheus(binary, tmp_path, f"127.0.0.1:{served.port}")
        try:
            with Traffic(served.port) as traffic:
                start = time.monotonic()
                deadline = start + DEADLINE

                def scraped() -> bool:
                    result, _ = prometheus.query('up{job="edge"} == 1')
                    return bool(result)

                prometheus.wait_until("Prometheus to scrape edge serve", scraped, deadline)

                # Poll until every query of every panel has numbers, or the deadline.
                while True:
                    missing = []
                    for name, board in boards.items():
                        values, problems = resolve_variables(board, prometheus)
                        missing += problems
                        for panel, target in queries(board):
                            expr = substitute(target["expr"], values)
                            result, error = prometheus.query(expr)
                            if not has_numbers(result):
                                why = error or ("no series" if not result else "only NaN")
                                missing.append(f"{name}.json / panel {panel['id']} {panel['title']!r} / {target['refId']}: {why}\n{expr}")
                    broken = any(": HTTP 400" in line for line in missing)  # a query that does not parse never will
                    if not missing or broken or time.monotonic() > deadline:
                        break
                    time.sleep(1.0)
                elapsed = time.monotonic() - start
            weight, _ = prometheus.query('edge_canary_weight{service="app", environment="canary"}')
        finally:
            prometheus.stop()

    statuses = traffic.statuses
    summary = f"after {elapsed:.1f}s of traffic, responses {dict(statuses)}"
    if missing:
        pytest.fail(f"{len(missing)} queries returned no data ({summary}):\n\n" + "\n\n".join(missing), pytrace=False)
    assert statuses[200] > 100 and statuses[403] > 0 and statuses[500] > 0, summary
    assert not [k for k in statuses if isinstance(k, str)], f"client errors: {summary}"
    assert weight and float(weight[0]["value"][1]) == 50.0, f"edge_canary_weight of app@canary, the rollout's step: {weight}"


def test_a_prometheus_whose_port_was_taken_meanwhile_starts_again_on_another(tmp_path, monkeypatch):
    # What a parallel test run can do to ``free_port``: the port it found is taken before
    # Prometheus binds it. The test's Prometheus must come up anyway, not fail the test.
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the `prometheus` binary is not on PATH: install it (apt-get install prometheus) to run this test")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1], free_port()])
        monkeypatch.setattr(sys.modules[__name__], "free_port", lambda: next(ports))
        prometheus = Prometheus(binary, tmp_path, "127.0.0.1:9")
        try:
            prometheus.wait_until("Prometheus to answer", lambda: prometheus.query("vector(1)")[0] is not None, time.monotonic() + 30)
            assert prometheus.starts == 2 and prometheus.port != taken.getsockname()[1]
        finally:
            prometheus.stop()
