"""Helpers for live-mode tests: a real ``edge serve`` process and a raw socket client."""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
"""The admin API's token of every server ``serve`` starts (through EDGE_ADMIN_TOKEN)."""


def admin_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_TOKEN}"}


class Served:
    """A running ``edge serve``: its URLs, and its output once it has stopped."""

    def __init__(self, process: subprocess.Popen, ingress: str, metrics: str, admin: str) -> None:
        self.process = process
        self.ingress = ingress  # http://127.0.0.1:PORT
        self.metrics = metrics  # http://127.0.0.1:PORT/metrics
        self.admin = admin
        self.stdout = ""  # what it printed after the ready lines, once it has stopped
        self.stderr = ""
        self.returncode: int | None = None

    @property
    def port(self) -> int:
        return int(self.ingress.rsplit(":", 1)[1])

    @property
    def admin_port(self) -> int:
        return int(self.admin.rsplit(":", 1)[1])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the server, wait for it, and keep its exit code and stderr."""
        if self.returncode is None:
            self.process.send_signal(sig)
            try:
                out, err = self.process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                out, err = self.process.communicate()
            self.stdout, self.stderr = out, err
            self.returncode = self.process.returncode
        return self.returncode


@functools.cache
def _jemalloc() -> str | None:
    from edge.platform import memory

    return memory.jemalloc_library()  # runs ldconfig: once


def _on_jemalloc(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` as ``edge serve`` makes it when it starts itself again on jemalloc."""
    from edge.platform import memory

    library = _jemalloc()
    return environ if library is None else {**memory.jemalloc_environment(environ, library), "EDGE_ALLOCATOR_EXEC": "1"}


@contextlib.contextmanager
def serve(*args: str, timeout: float = 20.0, env: dict[str, str] | None = None, preload: bool = True) -> Iterator[Served]:
    """Start ``edge serve`` on free ports with ``args`` (a scenario path, flags) and stop it after;
    its admin token is ADMIN_TOKEN unless ``env`` says otherwise.

    ``preload``: started on jemalloc already, as ``edge serve`` starts itself again by default, so
    that a server's Python starts once rather than twice (a second each on a busy machine);
    tests/test_memory.py tests that restart itself, with ``preload=False``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "EDGE_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})}
    if preload:
        env = _on_jemalloc(env)
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "serve", "--port", "0", "--admin-port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    # The ready lines are read by a thread so that ``timeout`` bounds a server that never prints
    # them (a readline here would wait for ever), and only such a one: a server slow to start on
    # a busy machine but ready within it is used, not killed after the fact.
    ready: queue.Queue[list[str]] = queue.Queue()
    threading.Thread(target=lambda: ready.put([process.stdout.readline() for _ in range(3)]), daemon=True).start()
    try:
        lines = ready.get(timeout=timeout)
    except queue.Empty:
        process.kill()
        process.wait()
        raise RuntimeError(f"edge serve did not become ready in {timeout:g}s:\n{process.stderr.read()}") from None
    if not all(lines):
        _, err = process.communicate()
        raise RuntimeError(f"edge serve exited ({process.returncode}) before it was ready:\n{err}")
    urls = [re.search(r"(http://\S+)", line).group(1) for line in lines]  # type: ignore[union-attr]
    served = Served(process, urls[0], urls[1], urls[2])
    try:
        yield served
    finally:
        served.stop()


def exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes and read until the server closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except socket.timeout:
            pass
        return b"".join(chunks)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])
