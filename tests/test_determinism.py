"""Same scenario and seed: byte-identical JSON, whatever the process and its hash seed."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec


def run_json(tmp_path, name: str, seed: int, hash_seed: str) -> bytes:
    out = tmp_path / name
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    subprocess.run(
        [sys.executable, "-m", "edge.cli", "run", "--seed", str(seed), "--duration", "20s", "--json", str(out), "--quiet"],
        check=True,
        env=env,
    )
    return out.read_bytes()


def test_same_seed_same_bytes_different_seed_different_numbers(tmp_path):
    first = run_json(tmp_path, "a.json", 7, "1")
    second = run_json(tmp_path, "b.json", 7, "2")
    assert first == second
    other = run_json(tmp_path, "c.json", 8, "1")
    assert other != first
    a, c = msgspec.json.decode(first), msgspec.json.decode(other)
    assert a["seed"] == 7 and c["seed"] == 8
    assert a["clients"]["requests"] != c["clients"]["requests"]
    assert a["clients"]["requests"] > 5000  # 20 s at 500/s: the run really ran


def test_report_has_the_documented_shape(tmp_path):
    report = msgspec.json.decode(run_json(tmp_path, "r.json", 1, "0"))
    assert report["scenario"] == "seed-chain" and report["duration_s"] == 20.0
    assert set(report["environments"]) == {"gateway@production", "auth@production", "app@production", "app@canary"}
    canary = report["environments"]["app@canary"]
    assert canary["version"] == "42" and canary["requests"] == sum(canary["status"].values())
    assert set(canary["latency_s"]) == {"p50", "p90", "p99", "max", "mean"}
    assert 0 < canary["latency_s"]["p50"] <= canary["latency_s"]["p99"] <= canary["latency_s"]["max"]
    assert report["environments"]["gateway@production"]["cpu_s"] > 0
    clients = report["clients"]
    assert clients["requests"] == report["environments"]["gateway@production"]["requests"]
    assert clients["status"]["4xx"] > 0  # the default mix sends some requests without the right token
    assert {"errors", "retries", "shed", "cpu_limit_exceeded", "cpu_per_request_s"} <= set(clients)
    assert report["routers"]["app"]["weights"] == {"production": 99.0, "canary": 1.0}
    assert 0 < report["node"]["cpu_utilisation"] < 1
    assert any(b["caller"] == "gateway" and b["binding"] == "AUTH" for b in report["bindings"])
    assert "s3cret" not in msgspec.json.encode(report).decode()  # secrets never reach a report
