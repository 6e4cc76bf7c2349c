"""The admin API of a real ``edge serve``: a token, a Host naming the listener, no other origin,
no CORS; ``edge weight`` takes the token and says when it is missing or wrong. Raw sockets, so
every header is the test's own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from live import ADMIN_TOKEN, ROOT, exchange, serve, status_of

BODY = b'{"percent": 50}'


@pytest.fixture(scope="module")
def served():
    with serve() as running:
        yield running


def put(served, *, host: str | None = None, origin: str | None = None, token: str | None = ADMIN_TOKEN,
        target: str = "/weights/app/canary", auth: str | None = None) -> bytes:
    lines = [f"PUT {target} HTTP/1.1", f"Host: {host or f'127.0.0.1:{served.admin_port}'}",
             "Content-Type: application/json", f"Content-Length: {len(BODY)}", "Connection: close"]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    elif token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return exchange(served.admin_port, ("\r\n".join(lines) + "\r\n\r\n").encode() + BODY)


def weights(served) -> dict:
    request = urllib.request.Request(served.admin + "/weights", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def test_the_token_opens_the_api_and_nothing_else_does(served):
    before = weights(served)
    assert status_of(put(served, token=None)) == 401
    assert b'www-authenticate: bearer realm="edge admin"' in put(served, token=None).lower()
    assert status_of(put(served, token="x" + ADMIN_TOKEN[1:])) == 401  # one character off
    assert status_of(put(served, token=ADMIN_TOKEN[:-1])) == 401  # a prefix
    assert status_of(put(served, auth=f"Basic {ADMIN_TOKEN}")) == 401
    assert status_of(put(served, target=f"/weights/app/canary?token={ADMIN_TOKEN}", token=None)) == 401
    assert weights(served) == before  # none of them changed anything
    assert status_of(put(served)) == 200
    assert weights(served)["app"] == {"production": 50.0, "canary": 50.0}


@pytest.mark.parametrize("host", [
    "attacker.example:{port}",  # DNS rebinding: the page's own name, resolved to 127.0.0.1
    "attacker.example",
    "127.0.0.1:{other}",  # the right address, another port
    "localhost.attacker.example:{port}",
    "10.1.2.3:{port}",  # an address the listener is not bound to
    "[::1",  # malformed
    "user@127.0.0.1:{port}",
])
def test_a_host_that_is_not_the_listener_is_misdirected_even_with_the_token(served, host):
    answer = put(served, host=host.format(port=served.admin_port, other=served.admin_port + 1))
    assert status_of(answer) in (400, 421)  # 400: the ingress refuses a malformed Host itself


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}"])
def test_localhost_and_the_bound_address_with_the_port_are_the_listener(served, host):
    assert status_of(put(served, host=host.format(port=served.admin_port))) == 200


def test_an_absolute_target_naming_another_host_is_misdirected(served):
    answer = put(served, target="http://attacker.example/weights/app/canary")
    assert status_of(answer) == 421


@pytest.mark.parametrize("origin", ["http://attacker.example", "http://attacker.example:{port}", "null",
                                    "https://127.0.0.1:{port}", "http://127.0.0.1:{other}"])
def test_a_request_from_another_origin_is_refused_even_with_the_token(served, origin):
    answer = put(served, origin=origin.format(port=served.admin_port, other=served.admin_port + 1))
    assert status_of(answer) == 403
    assert b"access-control-" not in answer.lower()


def test_the_rebinding_request_of_the_issue_is_refused(served):
    """PUT /weights/app/canary with Host and Origin of another site (and no token) was obeyed."""
    answer = put(served, host=f"attacker.example:{served.admin_port}", origin=f"http://attacker.example:{served.admin_port}", token=None)
    assert status_of(answer) == 421


def test_the_listeners_own_origin_and_no_cors_headers(served):
    answer = put(served, origin=f"http://127.0.0.1:{served.admin_port}")
    assert status_of(answer) == 200
    assert b"access-control-" not in answer.lower()
    preflight = exchange(served.admin_port, (
        f"OPTIONS /weights/app/canary HTTP/1.1\r\nHost: 127.0.0.1:{served.admin_port}\r\nOrigin: http://attacker.example\r\n"
        "Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n").encode())
    assert status_of(preflight) == 403 and b"access-control-" not in preflight.lower()


def edge_weight(served, *args: str, token: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EDGE_ADMIN_TOKEN"}
    if token is not None:
        env["EDGE_ADMIN_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "edge.cli", "weight", "app", "canary", "5", "--admin", served.admin, *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=30, env={**env, "PYTHONPATH": str(ROOT)})


def test_edge_weight_takes_the_token_from_the_environment_or_the_flag(served):
    assert edge_weight(served, token=ADMIN_TOKEN).returncode == 0
    done = edge_weight(served, "--admin-token", ADMIN_TOKEN, token=None)
    assert (done.returncode, done.stdout) == (0, "app: production 95%, canary 5%\n")


def test_edge_weight_says_when_the_token_is_missing_or_wrong(served):
    missing = edge_weight(served, token=None)
    assert missing.returncode == 2
    assert missing.stderr == ("edge: error: no admin token: set EDGE_ADMIN_TOKEN (or pass --admin-token) "
                              "to the token `edge serve` printed at start\n")
    wrong = edge_weight(served, token="w" * 32)
    assert wrong.returncode == 2 and "401 the admin API refused the token (wrong admin token)" in wrong.stderr
    assert "w" * 32 not in wrong.stderr
    short = edge_weight(served, token="short")
    assert (short.returncode, short.stderr) == (2, "edge: error: EDGE_ADMIN_TOKEN: not a usable admin token: expected at least 16 characters, got 5\n")


def test_a_generated_token_is_printed_once_and_never_logged_or_exported(tmp_path):
    with serve(env={"EDGE_ADMIN_TOKEN": ""}) as running:
        line = running.process.stdout.readline()
        token = re.fullmatch(r"edge: admin token (\S+) \(send `Authorization: Bearer TOKEN`; `edge weight` reads EDGE_ADMIN_TOKEN\)\n", line).group(1)
        assert len(token) >= 40  # secrets.token_urlsafe(32)
        assert status_of(put(running, token=ADMIN_TOKEN)) == 401  # the tests' token is not this server's
        assert status_of(put(running, token=token)) == 200
        with urllib.request.urlopen(running.metrics, timeout=5) as answer:
            assert token not in answer.read().decode()
        running.stop()
    assert token not in running.stderr and token not in running.stdout
    assert "edge: INFO edge.live.admin: weights of app set to" in running.stderr  # the change is logged (an operator's action: INFO), who made it is not
    assert "WARNING" not in running.stderr


def test_a_given_token_is_not_printed(tmp_path):
    with serve("--admin-token", "given-token-0123456789", env={"EDGE_ADMIN_TOKEN": ""}) as running:
        assert status_of(put(running, token="given-token-0123456789")) == 200
        running.stop()
    assert "given-token-0123456789" not in running.stdout + running.stderr


def test_a_listener_on_every_address_takes_any_ip_literal_but_no_name():
    with serve("--admin-host", "0.0.0.0") as running:
        port = running.admin_port
        assert status_of(put(running, host=f"127.0.0.1:{port}")) == 200
        assert status_of(put(running, host=f"localhost:{port}")) == 200
        assert status_of(put(running, host=f"attacker.example:{port}")) == 421


def test_the_admin_cli_never_sends_the_token_through_a_proxy(served):
    """``http_proxy`` set, as on many machines: the admin API is still reached directly, and the
    proxy (a listener that records what it is sent) receives nothing, the token least of all."""
    import socket
    import threading

    received: list[bytes] = []
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(4)
    proxy.settimeout(0.2)
    stop = threading.Event()

    def record() -> None:
        while not stop.is_set():
            try:
                conn, _ = proxy.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    received.append(conn.recv(65536))
                except OSError:
                    pass

    thread = threading.Thread(target=record, daemon=True)
    thread.start()
    try:
        address = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGE_ADMIN_TOKEN": ADMIN_TOKEN,
               "http_proxy": address, "HTTP_PROXY": address, "no_proxy": "", "NO_PROXY": ""}
        done = subprocess.run([sys.executable, "-m", "edge.cli", "weight", "app", "canary", "5", "--admin", served.admin],
                              capture_output=True, text=True, cwd=ROOT, timeout=30, env=env)
    finally:
        stop.set()
        thread.join(2)
        proxy.close()
    assert done.returncode == 0, done.stderr
    assert received == []
