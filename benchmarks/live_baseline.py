"""Live throughput baseline: Cloudflare's workerd serving the seed chain and a single Worker, under wrk.

The other benchmarks here run in virtual time; this one is wall-clock HTTP on loopback, so that a
server of ours can later be put beside the real runtime under the same load generator. The pieces
are meant for reuse from the same script:

* ``ensure_workerd(cache_dir)``: the pinned workerd binary, installed from npm on first use;
* ``workerd_server(kind, port, cache_dir)``: workerd serving ``benchmarks/workerd/<kind>.capnp``;
* ``listening_socket(port)`` / ``wait_for_http(url, timeout)``: the same start-up for another server;
* ``run_wrk(url, connections, seconds, headers)``: one wrk run, parsed;
* ``check_chain(url)`` / ``http_get(url, headers)``: the functional checks run before measuring.

    python benchmarks/live_baseline.py [--seconds 10] [--connections 1,32] [--cache-dir DIR]
    python benchmarks/live_baseline.py --install-only   # workerd only: CI, for tests/test_conformance.py

Needs npm (first run only) and wrk (``apt-get install wrk``). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKERD_DIR = HERE / "workerd"

# Pinned so that figures taken on different days compare; the configs also fix compatibilityDate.
WORKERD_VERSION = "1.20261117.1"
DEFAULT_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-bench" / "workerd"

SECRET_TOKEN = "s3cret-token-0f9a"  # the value auth's SECRET_TOKEN binding has in chain.capnp
TOKEN_HEADERS = {"x-custom-token": SECRET_TOKEN}
DENIED_BODY = "x-custom-token does not match, request not allowed"
APP_BODY = "Hello from app"

KINDS = ("chain", "single")


# --- workerd ------------------------------------------------------------------------------------


def _platform_package() -> str:
    """The npm package that carries the workerd binary for this machine."""
    system = {"linux": "linux", "darwin": "darwin", "win32": "windows"}.get(sys.platform)
    machine = platform.machine().lower()
    arch = {"x86_64": "64", "amd64": "64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if system is None or arch is None:
        raise RuntimeError(f"workerd has no prebuilt binary for {sys.platform}/{machine}")
    return f"@cloudflare/workerd-{system}-{arch}"


def _installed_binary(cache_dir: Path) -> Path | None:
    """The binary in cache_dir if it is there at the pinned version, else None."""
    package = cache_dir / "node_modules" / _platform_package()
    binary = package / "bin" / ("workerd.exe" if sys.platform == "win32" else "workerd")
    try:
        version = json.loads((package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    if version != WORKERD_VERSION or not os.access(binary, os.X_OK):
        return None
    return binary


def ensure_workerd(cache_dir: Path) -> Path:
    """Install workerd@WORKERD_VERSION under cache_dir (once) and return its binary's path.

    The binary comes from the platform package (e.g. @cloudflare/workerd-linux-64) that npm pulls
    in as an optional dependency of ``workerd``; it is used directly, so the ``workerd`` package's
    postinstall script (which npm may decline to run) is not needed.
    """
    cache_dir = Path(cache_dir).resolve()
    binary = _installed_binary(cache_dir)
    if binary is not None:
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"npm not found: it is needed once to install workerd@{WORKERD_VERSION} into {cache_dir} "
            "(Debian: apt-get install npm)"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".install.lock", "w") as lock:
        # Another process may be installing it (the test suite runs on two pytest-xdist workers):
        # wait for it, then look again rather than run a second npm into the same folder.
        fcntl.flock(lock, fcntl.LOCK_EX)
        binary = _installed_binary(cache_dir)
        if binary is not None:
            return binary
        return _npm_install(npm, cache_dir)


def _npm_install(npm: str, cache_dir: Path) -> Path:
    cmd = [npm, "install", "--prefix", str(cache_dir), "--no-audit", "--no-fund", f"workerd@{WORKERD_VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}")
    binary = _installed_binary(cache_dir)
    if binary is None:
        raise RuntimeError(
            f"npm installed workerd@{WORKERD_VERSION} into {cache_dir}, but {_platform_package()} "
            "with its bin/workerd is not there (optional dependencies skipped?)"
        )
    return binary


def workerd_version(binary: Path) -> str:
    return subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, str]:
    """GET url (plain http) and return (status, body); any status is a result, not an error."""
    match = re.fullmatch(r"http://([^/:]+)(?::(\d+))?(/.*)?", url)
    if not match:
        raise ValueError(f"not a plain http:// URL: {url}")
    host, port, path = match.group(1), int(match.group(2) or 80), match.group(3) or "/"
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def wait_for_http(url: str, timeout: float, alive=lambda: True) -> float:
    """Poll url until it answers HTTP (any status); return the seconds it took."""
    started = time.monotonic()
    while True:
        if not alive():
            raise RuntimeError(f"server for {url} exited before answering")
        try:
            http_get(url, timeout=1.0)
            return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{url} did not answer HTTP within {timeout:.0f}s")
        time.sleep(0.05)


@contextlib.contextmanager
def listening_socket(port: int) -> Iterator[socket.socket]:
    """A TCP socket listening on 127.0.0.1:port (0: a free port), for a server to inherit."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, not a live listener
        try:
            listener.bind(("127.0.0.1", port))
        except OSError as exc:
            raise RuntimeError(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
        listener.listen(1024)
        yield listener
    finally:
        listener.close()


@contextlib.contextmanager
def workerd_server(kind: str, port: int, cache_dir: Path, startup_timeout: float = 30.0) -> Iterator[str]:
    """Serve benchmarks/workerd/<kind>.capnp on 127.0.0.1:port (0: a free port); yields the base URL.

    The port is set from here, not in the .capnp: this process binds 127.0.0.1:port and hands the
    listening socket to workerd with ``--socket-fd http=<fd>`` (the configs' socket is named
    ``http``). Unlike ``--socket-addr http=127.0.0.1:PORT``, which works too, that leaves no window
    in which another process can take the port and answer the readiness check in workerd's place,
    and a port that is taken fails here, clearly. workerd's output goes to a temporary log that is
    shown if it fails to start.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    binary = ensure_workerd(cache_dir)
    config = WORKERD_DIR / f"{kind}.capnp"
    with listening_socket(port) as listener, tempfile.TemporaryFile() as log:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        cmd = [str(binary), "serve", str(config), "--socket-fd", f"http={listener.fileno()}"]
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=WORKERD_DIR,
            pass_fds=[listener.fileno()],
        )
        listener.close()  # workerd has its own copy; ours would keep the port open after it exits
        try:
            try:
                wait_for_http(url, startup_timeout, alive=lambda: proc.poll() is None)
            except RuntimeError as exc:
                log.seek(0)
                output = log.read().decode("utf-8", "replace").strip()
                raise RuntimeError(f"workerd ({kind}) did not start: {exc}\n$ {' '.join(cmd)}\n{output}") from None
            yield url
        finally:
            stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """End a server: SIGTERM, and SIGKILL if it is still there 5 s later."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_chain(url: str, headers: dict[str, str] | None = None) -> None:
    """The chain's contract: 200 from app with the token, auth's 403 and message without it.

    ``headers`` go with both requests (e.g. a ``Host`` for a server that routes on it).
    """
    headers = headers or {}
    status, body = http_get(url, {**headers, **TOKEN_HEADERS})
    if (status, body) != (200, APP_BODY):
        raise RuntimeError(f"chain with token: expected 200 {APP_BODY!r}, got {status} {body!r}")
    status, body = http_get(url, headers)
    if (status, body) != (403, DENIED_BODY):
        raise RuntimeError(f"chain without token: expected 403 {DENIED_BODY!r}, got {status} {body!r}")


def check_single(url: str, headers: dict[str, str] | None = None) -> None:
    status, body = http_get(url, headers)
    if (status, body) != (200, APP_BODY):
        raise RuntimeError(f"single: expected 200 {APP_BODY!r}, got {status} {body!r}")


# --- wrk ----------------------------------------------------------------------------------------

_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(text: str) -> float:
    """wrk's time format ('812.00us', '1.25ms', '2.01s', '1.00m') in seconds."""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unrecognised wrk time {text!r}")
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def parse_wrk(output: str) -> dict:
    """The figures of one ``wrk --latency`` run's output (see run_wrk)."""

    def find(pattern: str) -> re.Match | None:
        return re.search(pattern, output, re.MULTILINE)

    rps = find(r"^Requests/sec:\s*([0-9.]+)")
    mean = find(r"^\s*Latency\s+(\S+)")
    p50 = find(r"^\s*50%\s+(\S+)")
    p99 = find(r"^\s*99%\s+(\S+)")
    if not (rps and p50 and p99):
        raise RuntimeError(f"could not parse wrk output (was --latency given?):\n{output}")
    requests = find(r"^\s*(\d+) requests in")
    non_2xx = find(r"^\s*Non-2xx or 3xx responses:\s*(\d+)")
    sock = find(r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    return {
        "rps": float(rps.group(1)),
        "mean_s": _seconds(mean.group(1)) if mean else None,
        "p50_s": _seconds(p50.group(1)),
        "p99_s": _seconds(p99.group(1)),
        # wrk counts any status >= 400 here; the line is absent when there were none.
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        # connect + read + write + timeout; the line is absent when there were none.
        "errors": sum(int(n) for n in sock.groups()) if sock else 0,
        "requests": int(requests.group(1)) if requests else None,
    }


def run_wrk(url: str, connections: int, seconds: float, headers: dict[str, str]) -> dict:
    """One ``wrk -t1 -c<connections> -d<seconds>s --latency`` run against url.

    Returns ``rps``, ``mean_s``, ``p50_s``, ``p99_s`` (seconds), ``non_2xx`` (responses with status >= 400),
    ``errors`` (socket errors: connect + read + write + timeout) and ``requests``. One wrk thread,
    so that on a small machine the load generator takes one core and leaves the rest to the server.
    wrk takes whole seconds only: ``seconds`` is rounded, to at least 1.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk not found: install it (Debian: apt-get install wrk)")
    duration = max(1, round(seconds))
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return parse_wrk(proc.stdout)


# --- the baseline run ---------------------------------------------------------------------------


def format_row(name: str, connections: int, r: dict) -> str:
    return (
        f"{name:<18}{connections:>6}{r['rps']:>12,.0f}{r['p50_s'] * 1e3:>10.3f}ms{r['p99_s'] * 1e3:>10.3f}ms"
        f"{r['non_2xx']:>9}{r['errors']:>8}"
    )


TABLE_HEADER = f"{'target':<18}{'conns':>6}{'req/s':>12}{'p50':>12}{'p99':>12}{'non-2xx':>9}{'errors':>8}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk duration per run (whole seconds)")
    parser.add_argument("--connections", default="1,32", help="comma-separated wrk connection counts")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed wrk seconds before each target (0: none)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where npm installs workerd")
    parser.add_argument("--install-only", action="store_true", help="install workerd (as CI does for the conformance tests) and stop")
    args = parser.parse_args()
    if args.install_only:
        binary = ensure_workerd(args.cache_dir)
        print(f"workerd: {workerd_version(binary)} (npm workerd@{WORKERD_VERSION}) at {binary}")
        return
    conns = [int(c) for c in args.connections.split(",") if c.strip()]

    started = time.monotonic()
    binary = ensure_workerd(args.cache_dir)
    install_s = time.monotonic() - started
    print(f"workerd: {workerd_version(binary)} (npm workerd@{WORKERD_VERSION}) at {binary}, ready in {install_s:.1f}s")
    print(
        f"machine: {os.cpu_count()} cores, shared by wrk (-t1) and the server, nothing pinned; "
        "on so few cores the figures bound each other"
    )

    targets = [
        ("workerd chain", "chain", check_chain, TOKEN_HEADERS),
        ("workerd single", "single", check_single, {}),
    ]
    rows = []
    for name, kind, check, headers in targets:
        t0 = time.monotonic()
        with workerd_server(kind, 0, args.cache_dir) as url:
            print(f"{name}: answering on {url} after {time.monotonic() - t0:.2f}s")
            check(url)
            if args.warmup > 0:  # let V8 compile the hot paths before the timed runs
                run_wrk(url, max(conns), args.warmup, headers)
            for c in conns:
                result = run_wrk(url, c, args.seconds, headers)
                rows.append(format_row(name, c, result))
                print(rows[-1], flush=True)

    print()
    print(f"wrk -t1, {max(1, round(args.seconds))}s per run, loopback; p50/p99 from wrk --latency")
    print(TABLE_HEADER)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
