"""A real ``edge serve`` process for the live benchmarks, and what /proc says about it.

Shared by ``soak.py`` and ``live_vs_virtual.py`` (``overload.py`` starts its server in-process, to
pass ``Limits`` the command line does not have; it reads RSS from here too).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "benchmark-admin-token-" + "0" * 16  # given, so that it is never printed


class Served:
    """A running ``edge serve``: its process and the URLs it printed at start."""

    def __init__(self, process: subprocess.Popen, ingress: str, metrics: str, admin: str) -> None:
        self.process = process
        self.pid = process.pid
        self.ingress = ingress
        self.metrics = metrics
        self.admin = admin


@contextlib.contextmanager
def edge_serve(*args: str, startup_timeout: float = 30.0) -> Iterator[Served]:
    """``edge serve ARGS`` on free ports, stopped with SIGTERM (then killed) when the block ends.

    Ready when it has printed its three URLs (ingress, metrics, admin); if it does not within
    ``startup_timeout``, the error shows its stderr. Its stdout is drained afterwards, so that
    nothing it prints later can block it on a full pipe.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "EDGE_ADMIN_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "edge.cli", "serve", *args, "--port", "0", "--admin-port", "0"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
        try:
            urls: list[str] = []
            reader = threading.Thread(target=_read_urls, args=(process, urls), daemon=True)
            reader.start()
            reader.join(startup_timeout)
            if len(urls) < 3:
                process.kill()
                process.wait()
                log.seek(0)
                raise SystemExit(f"edge serve did not start (exit {process.returncode})\n$ {' '.join(cmd)}\n"
                                 f"{log.read().decode('utf-8', 'replace').strip()}")
            threading.Thread(target=process.stdout.read, daemon=True).start()  # type: ignore[union-attr]
            yield Served(process, *urls)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _read_urls(process: subprocess.Popen, urls: list[str]) -> None:
    while len(urls) < 3:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            return
        match = re.search(r"(http://\S+)", line)
        if match:
            urls.append(match.group(1))


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (utime and stime in /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
