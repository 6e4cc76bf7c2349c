"""Live mode through real sockets: a real ``edge serve`` process, raw and http.client clients."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

import delays
from live import ADMIN_TOKEN, ROOT, exchange, serve, status_of
from scenario_builder import compose, service, traffic
from test_loadgen import check_summary

TOKEN = "s3cret-token-0f9a"
GET = b"GET / HTTP/1.1\r\nHost: example.com\r\nx-custom-token: " + TOKEN.encode() + b"\r\n\r\n"


@pytest.fixture(scope="module")
def default_server():
    with serve("--max-body", "1KiB", "--client-timeout", "1s") as served:
        yield served


def request(port: int, method: str = "GET", path: str = "/", *, host: str = "example.com", token: str | None = TOKEN, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host}
    if token is not None:
        headers["x-custom-token"] = token
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data, response


def metric_lines(served, name: str) -> list[str]:
    with urllib.request.urlopen(served.metrics, timeout=5) as answer:
        return [line for line in answer.read().decode().splitlines() if line.startswith(name)]


def test_seed_chain_answers_as_the_seeds_say(default_server):
    status, body, _ = request(default_server.port, token=None)
    assert (status, body) == (403, b"x-custom-token does not match, request not allowed")
    status, body, _ = request(default_server.port, token="wrong")
    assert status == 403
    status, body, _ = request(default_server.port)
    assert status in (200, 500)  # app's synthetic error ratio is 0.1%
    answered = {line.split("{")[1] for line in metric_lines(default_server, "edge_requests_total")}
    assert any('service="app"' in labels for labels in answered), answered
    assert any('service="auth"' in labels for labels in answered)


def test_private_services_and_unknown_hosts_get_404(default_server):
    assert request(default_server.port, host="auth")[0] == 404
    assert request(default_server.port, host="unknown.example.org")[0] == 404
    assert request(default_server.port, path="/metrics", host="example.com")[0] in (200, 500)  # the route wins


def test_keep_alive_serves_several_requests_on_one_connection(default_server):
    conn = http.client.HTTPConnection("127.0.0.1", default_server.port, timeout=10)
    for _ in range(3):
        conn.request("GET", "/", headers={"Host": "example.com"})
        response = conn.getresponse()
        assert response.status == 403 and response.read().startswith(b"x-custom-token")
    conn.close()


def test_pipelined_requests_are_answered_in_order(default_server):
    pipelined = (
        b"GET /first HTTP/1.1\r\nHost: example.com\r\n\r\n"
        + b"GET /second HTTP/1.1\r\nHost: nowhere.test\r\n\r\n"
        + b"GET /third HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
    )
    raw = exchange(default_server.port, pipelined)
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]
    assert statuses == [403, 404, 403]


def test_content_length_and_chunked_bodies_reach_the_workers(default_server):
    body = json.dumps({"sku": "A-1", "qty": 1}).encode()
    assert request(default_server.port, "POST", "/api/orders", body=body)[0] in (200, 500)
    chunked = (
        b"POST /api/orders HTTP/1.1\r\nHost: example.com\r\nx-custom-token: " + TOKEN.encode()
        + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    assert status_of(exchange(default_server.port, chunked)) in (200, 500)


def test_malformed_requests_get_400_and_the_server_keeps_serving(default_server):
    for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: example.com\r\nbad header line\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"):
        raw = exchange(default_server.port, garbage)
        assert status_of(raw) == 400, raw
        assert b"connection: close" in raw.lower()
    assert status_of(exchange(default_server.port, GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))) in (200, 500)


def test_oversized_headers_get_431_and_refusals_are_counted(default_server):
    raw = exchange(default_server.port, b"GET / HTTP/1.1\r\nHost: example.com\r\nx-big: " + b"a" * 140_000 + b"\r\n\r\n")
    assert status_of(raw) == 431
    assert any(line.startswith('edge_ingress_rejected_total{status="431"}') for line in metric_lines(default_server, "edge_ingress_rejected_total"))


def test_bodies_over_the_limit_get_413_declared_or_streamed(default_server):
    declared = b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5000\r\n\r\n"
    assert status_of(exchange(default_server.port, declared)) == 413
    chunk = b"400\r\n" + b"x" * 0x400 + b"\r\n"
    streamed = b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2
    assert status_of(exchange(default_server.port, streamed)) == 413


def test_slow_clients_time_out_with_408(default_server):
    with delays.measured(default_server.process) as waited:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", default_server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: exa")  # and then nothing
            raw = sock.recv(65536)
        took = time.monotonic() - started
    assert status_of(raw) == 408
    assert took < 5 + waited.seconds
    with socket.create_connection(("127.0.0.1", default_server.port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100\r\n\r\nonly part")
        assert status_of(sock.recv(65536)) == 408


def test_metrics_and_healthz_never_show_the_secret(default_server):
    request(default_server.port)
    with urllib.request.urlopen(default_server.metrics, timeout=5) as answer:
        text = answer.read().decode()
    assert "edge_request_duration_seconds_bucket" in text and "edge_canary_weight" in text
    assert TOKEN not in text
    with urllib.request.urlopen(default_server.ingress + "/healthz", timeout=5) as answer:
        assert answer.read() == b"ok\n"


def edge_weight(served, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "weight", *args, "--admin", served.admin],
        capture_output=True, text=True, cwd=ROOT, timeout=30, env={**os.environ, "EDGE_ADMIN_TOKEN": ADMIN_TOKEN},
    )


def test_weight_changes_while_serving_show_in_metrics_and_routing(tmp_path):
    with serve() as served:
        done = edge_weight(served, "app", "canary", "100")
        assert done.returncode == 0, done.stderr
        assert "canary 100%" in done.stdout
        assert 'edge_canary_weight{environment="canary",service="app"} 100.0' in metric_lines(served, "edge_canary_weight")
        for _ in range(20):
            request(served.port)
        canary = [line for line in metric_lines(served, "edge_requests_total") if 'service="app"' in line and 'environment="canary"' in line]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in canary) >= 20
        rollback = edge_weight(served, "app", "canary", "0")
        assert rollback.returncode == 0 and "production 100%" in rollback.stdout
        assert 'edge_canary_weight{environment="canary",service="app"} 0.0' in metric_lines(served, "edge_canary_weight")

        unknown = edge_weight(served, "app", "blue", "5")
        assert unknown.returncode == 2 and "no environment 'blue'" in unknown.stderr
        not_split = edge_weight(served, "auth", "production", "5")
        assert not_split.returncode == 2 and "no split service 'auth'" in not_split.stderr


def test_edge_weight_without_a_server_says_so():
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "weight", "app", "canary", "5", "--admin", "http://127.0.0.1:9"],
        capture_output=True, text=True, cwd=ROOT, timeout=30, env={**os.environ, "EDGE_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    assert done.returncode == 2 and "is `edge serve` running?" in done.stderr


def test_admin_api_listens_on_loopback_only(default_server):
    non_loopback = _non_loopback_address()
    if non_loopback is None:
        pytest.fail("this machine has no non-loopback IPv4 address to test the admin binding against")
    with pytest.raises(OSError):
        socket.create_connection((non_loopback, default_server.admin_port), timeout=2).close()
    socket.create_connection(("127.0.0.1", default_server.admin_port), timeout=2).close()


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


SLOW_AND_FAULTY = compose(service("slow", model={"latency": "1500ms"}),
                          service("faulty", worker="faulty.py", secrets={"API_KEY": "hunter2-secret-value"}), name="slow-and-faulty")

FAULTY_WORKER = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    if request.path == "/boom":
        raise RuntimeError("failed with key " + env.API_KEY)
    return Response("fine")
"""


@pytest.fixture
def slow_and_faulty(tmp_path):
    worker = tmp_path / "faulty.py"
    worker.write_text(FAULTY_WORKER)
    scenario = tmp_path / "slow.toml"
    scenario.write_text(SLOW_AND_FAULTY)
    return scenario


def test_worker_exception_is_a_500_for_that_request_only_and_the_secret_stays_out(slow_and_faulty):
    with serve(str(slow_and_faulty)) as served:
        status, body, response = request(served.port, path="/boom", host="faulty.test", token=None)
        assert status == 500 and response.getheader("x-edge-error") is not None
        assert request(served.port, path="/ok", host="faulty.test", token=None)[:2] == (200, b"fine")
        with urllib.request.urlopen(served.metrics, timeout=5) as answer:
            text = answer.read().decode()
        assert 'edge_worker_exceptions_total{environment="production",service="faulty"} 1.0' in text
        assert "hunter2" not in text
    assert "hunter2" not in served.stderr and "RuntimeError" in served.stderr


def test_sigterm_drains_requests_in_flight_then_exits_0(slow_and_faulty):
    with serve(str(slow_and_faulty)) as served:
        results: list[tuple[int, bytes]] = []
        clients = [
            threading.Thread(target=lambda: results.append(request(served.port, host="slow.test", token=None)[:2]))
            for _ in range(3)
        ]
        for client in clients:
            client.start()
        time.sleep(0.5)  # the three are in flight (1.5 s each)
        assert served.stop(signal.SIGTERM) == 0
        for client in clients:
            client.join(5)
    assert [status for status, _ in results] == [200, 200, 200]
    assert "draining" in served.stderr
    with pytest.raises(OSError):  # and nothing listens any more
        socket.create_connection(("127.0.0.1", served.port), timeout=2).close()


def test_drain_time_running_out_answers_503_not_silence(slow_and_faulty):
    with serve(str(slow_and_faulty), "--drain", "300ms") as served:
        results: list[int] = []
        client = threading.Thread(target=lambda: results.append(request(served.port, host="slow.test", token=None)[0]))
        client.start()
        time.sleep(0.5)
        assert served.stop(signal.SIGINT) == 0
        client.join(5)
    assert results == [503]
    assert "answered 503" in served.stderr


BURNER = """
import time
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    started = time.thread_time()
    while time.thread_time() - started < float(request.headers.get("x-burn") or 0):
        pass
    return Response("burnt")
"""

BURN_SCENARIO = compose(service("front", routes=["burn.test/*"], worker="front.py", bindings={"BURNER": "burner"}),
                        service("burner", routes=None, worker="burner.py"), name="burn", cpu_limit="40ms")

FRONT = """
async def fetch(request, env, ctx):
    return await env.BURNER.fetch(request)
"""


def test_live_cpu_is_measured_and_charged_to_the_whole_chain(tmp_path):
    (tmp_path / "burner.py").write_text(BURNER)
    (tmp_path / "front.py").write_text(FRONT)
    (tmp_path / "burn.toml").write_text(BURN_SCENARIO)
    with serve(str(tmp_path / "burn.toml")) as served:
        for _ in range(5):
            conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
            conn.request("GET", "/", headers={"Host": "burn.test", "x-burn": "0.01"})
            assert conn.getresponse().status == 200
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        conn.request("GET", "/", headers={"Host": "burn.test", "x-burn": "0.06"})  # over the 40 ms limit
        over = conn.getresponse()
        assert over.status == 503 and over.getheader("x-edge-error") == "cpu-limit"
        with urllib.request.urlopen(served.metrics, timeout=5) as answer:
            text = answer.read().decode()
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}
    burnt = values['edge_cpu_seconds_total{environment="production",service="burner"}']
    assert 0.05 + 0.04 * 0.9 <= burnt < 0.05 + 0.04 + 0.05  # 5 x 10 ms, then the 40 ms budget
    assert values['edge_cpu_limit_exceeded_total{environment="production",service="burner"}'] == 1.0
    chains = values['edge_request_cpu_seconds_sum{service="front"}']
    assert chains >= burnt  # the chain's CPU includes the burner's and the front's own
    assert values['edge_request_cpu_seconds_count{service="front"}'] == 6.0


def hangup_scenario(concurrency: int) -> str:
    return compose(service("front", routes=["hangup.test/*"], worker="front.py", bindings={"BACK": "back"}, concurrency=concurrency),
                   service("back", routes=None, worker="back.py", concurrency=concurrency), name="hangup")

HANGUP_FRONT = """
async def fetch(request, env, ctx):
    return await env.BACK.fetch(request)
"""

HANGUP_BACK = """
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    if request.path == "/slow":
        await ctx.sleep("5s")
    return Response("done")
"""


@pytest.mark.parametrize("concurrency", [1, 2])  # 1: slot tasks; 2: the slow chain runs inline in the ingress's task
def test_a_client_that_hangs_up_frees_the_slots_of_its_whole_chain(tmp_path, concurrency):
    (tmp_path / "front.py").write_text(HANGUP_FRONT)
    (tmp_path / "back.py").write_text(HANGUP_BACK)
    (tmp_path / "hangup.toml").write_text(hangup_scenario(concurrency))
    with serve(str(tmp_path / "hangup.toml")) as served:
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: hangup.test\r\n\r\n")
            time.sleep(0.5)  # the slow call holds a slot of each service (their only one, at 1)
        with delays.measured(served.process) as waited:
            started = time.monotonic()
            status, body, _ = request(served.port, path="/fast", host="hangup.test", token=None)
            took = time.monotonic() - started
        assert (status, body) == (200, b"done")
        assert took < 2 + waited.seconds  # not the 4.5 s the slow call had left
        while True:  # at 2 the fast call did not wait: the slow one ends at the hang-up's grace (1 s)
            text = "\n".join(metric_lines(served, "edge_"))
            if 'service="back",status_class="4xx"' in text or time.monotonic() - started > 30:  # a busy machine's worst
                break
            time.sleep(0.1)
    assert 'edge_requests_total{environment="production",service="back",status_class="4xx",version="1"} 1.0' in text
    assert 'edge_inflight{environment="production",service="back"} 0.0' in text


def test_serve_traffic_drives_the_scenarios_traffic_over_real_sockets():
    with serve("--traffic") as served:
        deadline = time.monotonic() + 10
        answered = 0.0
        while time.monotonic() < deadline and answered < 500:
            time.sleep(0.5)
            lines = metric_lines(served, "edge_request_duration_seconds_count")
            answered = sum(float(line.rsplit(" ", 1)[1]) for line in lines)
    assert answered >= 500  # the default scenario sends 500/s
    assert served.returncode == 0


def test_metrics_port_serves_metrics_and_healthz_alone():
    with socket.socket() as probe:  # a free port for --metrics-port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve("--metrics-port", str(port)) as served:
        assert served.metrics == f"http://127.0.0.1:{port}/metrics"
        request(served.port)
        with urllib.request.urlopen(served.metrics, timeout=5) as answer:
            assert "edge_request_duration_seconds_count" in answer.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.read() == b"ok\n"
        assert request(port, host="example.com", token=None)[0] == 404  # no routes on the metrics port


CLOSED_USERS = compose(service("api", model={"latency": "100ms"}), traffic=[traffic(None, "https://api.test/", users=4, think="100ms")],
                       name="closed")


def test_serve_traffic_runs_closed_users_too(tmp_path):
    (tmp_path / "closed.toml").write_text(CLOSED_USERS)
    with serve(str(tmp_path / "closed.toml"), "--traffic") as served:
        time.sleep(2.0)
        counts = metric_lines(served, "edge_request_duration_seconds_count")
    answered = sum(float(line.rsplit(" ", 1)[1]) for line in counts)
    assert 20 <= answered <= 44  # 4 users x 2 s / (100 ms + 100 ms), less startup
    # The summary adds up, the requests in flight at the stop named (issue 27, item 13).
    numbers = check_summary(served.stderr)
    assert numbers["in_flight"] + numbers["waiting"] <= 4, numbers  # a user's one request at most


REDIRECT_SCENARIO = compose(service("shop", worker="redirect.py"), name="redirects")

REDIRECT_WORKER = """
from urllib.parse import unquote
from edge.platform.fetch import Response

async def fetch(request, env, ctx):
    if request.path.startswith("/go/"):
        return Response(None, status=302, headers={"location": unquote(request.path[3:])})
    if request.path == "/crlf":
        return Response("x", headers={"x-injected": "a\\r\\nset-cookie: evil=1"})
    return Response("fine")
"""


def test_a_worker_answer_http_cannot_carry_costs_that_request_only(tmp_path):
    (tmp_path / "redirect.py").write_text(REDIRECT_WORKER)
    (tmp_path / "redirects.toml").write_text(REDIRECT_SCENARIO)
    with serve(str(tmp_path / "redirects.toml")) as served:
        for _ in range(3):  # before the fix, the first of these ended `edge serve` with exit 1
            status, body, response = request(served.port, path="/go/%E2%82%AC?token=hunter2", host="shop.test", token=None)
            assert (status, body, response.getheader("x-edge-error")) == (500, b"error code: 1101", "invalid-response")
        assert request(served.port, path="/go/ok", host="shop.test", token=None)[0] == 302  # Latin-1 is fine
        status, _, response = request(served.port, path="/crlf", host="shop.test", token=None)  # refused in the worker
        assert (status, response.getheader("x-edge-error")) == (500, "exception")
        assert request(served.port, path="/", host="shop.test", token=None)[:2] == (200, b"fine")
        assert metric_lines(served, "edge_ingress_faults_total") == [
            'edge_ingress_faults_total{kind="invalid_response"} 3.0', 'edge_ingress_faults_total{kind="write_timeout"} 0.0',
        ]
    assert served.returncode == 0
    assert "hunter2" not in served.stderr
    assert served.stderr.count("cannot be sent as HTTP/1.1") == 3  # one line each, no traceback


def test_a_malformed_host_is_a_400_with_one_log_line_at_most(default_server):
    raw = exchange(default_server.port, b"GET /?token=hunter2 HTTP/1.1\r\nHost: [::1\r\n\r\n")
    assert status_of(raw) == 400
    assert status_of(exchange(default_server.port, GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))) in (200, 500)


def tasks_now(served) -> int:
    (line,) = metric_lines(served, "edge_tasks ")
    return int(float(line.split()[1]))


def test_tasks_rise_with_connections_and_fall_back_after_them():
    """``edge_tasks`` counts the server's trio tasks: a connection is one while it is open, and
    none is left behind once the clients are gone (a leak would keep the count up)."""
    with serve() as served:
        idle = tasks_now(served)
        assert idle > 3  # actors, listeners, the clock's timers at least
        sockets = [socket.create_connection(("127.0.0.1", served.port), timeout=5) for _ in range(20)]
        try:
            for sock in sockets:
                sock.sendall(GET)
                assert status_of(sock.recv(65536)) in (200, 500)
            assert tasks_now(served) >= idle + 20  # each open keep-alive connection holds its task
        finally:
            for sock in sockets:
                sock.close()
        deadline = time.monotonic() + 5
        while (now := tasks_now(served)) != idle and time.monotonic() < deadline:
            time.sleep(0.05)
        assert now == idle


def metric_value(served, name: str) -> float:
    (line,) = [line for line in metric_lines(served, name) if line.split(" ")[0] == name]
    return float(line.split(" ")[1])


def test_the_admission_limit_and_requests_in_flight_are_exported():
    """The scrape is itself the one request in flight; the limit is the fixed max_in_flight with
    admission control off, and within [floor, max_in_flight] with it on."""
    with serve("--queue-delay-target", "0", "--max-in-flight", "7") as served:
        assert metric_value(served, "edge_ingress_admission_limit") == 7
        assert metric_value(served, "edge_ingress_in_flight") == 1
    with serve("--max-in-flight", "64") as served:
        assert 4 <= metric_value(served, "edge_ingress_admission_limit") <= 64
        assert metric_value(served, "edge_ingress_in_flight") == 1


REPLAYED = compose(service("a", routes=["example.com/a*"], model={"latency": "1ms"}), service("b", routes=["example.com/b*"], model={"latency": "1ms"}),
                   traffic=[traffic(None, None, replay="r.jsonl", base_url="https://example.com", speed=4)], name="replayed")


def test_serve_traffic_replays_a_file_over_real_sockets(tmp_path):
    # Ten recorded requests over 2.25 s, sent at x4 (about half a second): each reaches the
    # service its path routes to, once, and the group then stops (no loop).
    paths = ["/a", "/b", "/a?x=1", "/a/2", "/b/9", "/a", "/b", "/a", "/a", "/b"]
    (tmp_path / "r.jsonl").write_text("".join(f'{{"time": {i / 4}, "path": "{p}", "headers": {{"x-k": "v"}}}}\n' for i, p in enumerate(paths)))
    (tmp_path / "replayed.toml").write_text(REPLAYED)
    with serve(str(tmp_path / "replayed.toml"), "--traffic") as served:
        time.sleep(2.0)
        counts = metric_lines(served, "edge_request_duration_seconds_count")
    by_service = {s: sum(float(line.rsplit(" ", 1)[1]) for line in counts if f'service="{s}"' in line) for s in "ab"}
    assert by_service == {"a": 6.0, "b": 4.0}


def test_the_servers_own_address_answers_an_index_of_its_endpoints_and_the_banner_names_the_dashboard():
    """`curl http://127.0.0.1:8787/` was a bare 404 `error code: 1000`: on the server's own address,
    where no route of the scenario takes /, it lists the endpoints, the admin API and the routes;
    a Host a route takes still reaches the route."""
    with serve() as served:
        with urllib.request.urlopen(served.ingress + "/", timeout=5) as answer:
            assert answer.status == 200 and answer.headers["content-type"].startswith("text/plain")
            index = answer.read().decode()
        for endpoint in ("/dashboard", "/metrics", "/healthz", f"admin API    {served.admin}"):
            assert endpoint in index, index
        assert "Routes: example.com/*" in index, index
        routed = exchange(int(served.ingress.rsplit(":", 1)[1]), b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        assert b"edge serve:" not in routed  # the scenario's own route answered
        assert served.process.stdout.readline() == f"edge: dashboard on {served.ingress}/dashboard\n"  # after the three URLs
