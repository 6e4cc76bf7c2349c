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
