"""Input limits: a scenario file is a regular file of bounded size, depth and counts; each limit
holds exactly at its value and fails one past it with the file, the path and what was expected."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from edge.scenario import load as scenario_load
from edge.scenario.errors import ConfigError
from edge.scenario.load import loads
from edge.scenario.resolved import LoadedScenario
from edge.scenario.schema import MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parent.parent

ONE = """
[[services]]
name = "app"
routes = ["example.com/*"]
model = { cpu = "1ms" }
"""


def load(text: str) -> LoadedScenario:
    return loads(text, file="s.toml", base_dir=".")


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return str(caught.value)


def edge(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, env=env, timeout=60)


# --- what the path is ---------------------------------------------------------------------------


def test_a_fifo_is_refused_at_once_instead_of_hanging(tmp_path):
    fifo = tmp_path / "s.toml"
    os.mkfifo(fifo)
    started = time.monotonic()
    done = edge("check", str(fifo))
    assert (done.returncode, done.stderr) == (2, f"edge: error: {fifo}: expected a regular file, got a FIFO\n")
    assert time.monotonic() - started < 30


def test_a_device_a_folder_and_a_link_to_a_fifo_are_refused(tmp_path):
    done = edge("check", "/dev/zero")
    assert (done.returncode, done.stderr) == (2, "edge: error: /dev/zero: expected a regular file, got a character device\n")
    with pytest.raises(ConfigError, match="expected a regular file, got a folder"):
        scenario_load.load(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link.toml").symlink_to("fifo")
    with pytest.raises(ConfigError, match="link.toml: expected a regular file, got a FIFO"):
        scenario_load.load(tmp_path / "link.toml")


def test_a_link_to_a_regular_file_is_followed(tmp_path):
    (tmp_path / "real.toml").write_text(ONE)
    (tmp_path / "link.toml").symlink_to("real.toml")
    assert scenario_load.load(tmp_path / "link.toml").spec.services[0].name == "app"


# --- size ---------------------------------------------------------------------------------------


def padded(size: int) -> bytes:
    text = ONE.encode() + b"# "
    return text + b"x" * (size - len(text) - 1) + b"\n"


def test_a_file_of_exactly_8_mib_loads_and_one_byte_more_is_refused(tmp_path):
    path = tmp_path / "s.toml"
    path.write_bytes(padded(MAX_FILE_BYTES))
    assert os.path.getsize(path) == 8 * 1024 * 1024
    assert scenario_load.load(path).spec.services[0].name == "app"
    path.write_bytes(padded(MAX_FILE_BYTES + 1))
    with pytest.raises(ConfigError) as caught:
        scenario_load.load(path)
    assert str(caught.value) == f"{path}: expected a scenario of at most 8,388,608 bytes (8 MiB), got more"


# --- depth --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("at", "over"), [
    ("x = " + "[" * 32 + "]" * 32, "x = " + "[" * 33 + "]" * 33),
    ("x = " + "{a = " * 32 + "1" + "}" * 32, "x = " + "{a = " * 33 + "1" + "}" * 33),
    ("x" + ".a" * 32 + " = 1", "x" + ".a" * 33 + " = 1"),
    ("[x" + ".a" * 31 + "]\nb = 1", "[x" + ".a" * 32 + "]\nb = 1"),
])
def test_nesting_is_refused_one_level_past_32(at, over):
    # At the limit the file gets as far as the types (no field `x`); one deeper it stops at the depth.
    assert refused(at + "\n" + ONE).startswith("s.toml: object contains unknown field `x`; expected one of services, ")
    message = refused(over + "\n" + ONE)
    assert message.startswith("s.toml: x") and message.endswith(": expected tables and arrays nested at most 32 deep")


def test_nesting_far_past_the_limit_is_an_error_not_a_recursion_error():
    assert refused("x = " + "[" * 100_000 + "]" * 100_000) == "s.toml: expected tables and arrays nested at most 32 deep, got far deeper"
    assert refused("x = " + "{a = " * 100_000 + "1" + "}" * 100_000) == "s.toml: expected tables and arrays nested at most 32 deep, got far deeper"


def test_a_dotted_key_of_a_thousand_parts_is_refused_before_the_parser_sees_it(monkeypatch):
    # tomllib's cost is quadratic in a dotted key's length: 100,000 parts exhausted the memory.
    assert refused("x" + ".a" * 999 + " = 1").endswith(".a.a: expected tables and arrays nested at most 32 deep")
    expected = "s.toml: line 1: expected tables and arrays nested at most 32 deep, got a dotted key of 1,000 parts or more"

    def parser(text: str) -> None:
        raise AssertionError("tomllib was given a key past the limit")

    monkeypatch.setattr(tomllib, "loads", parser)
    assert refused("x" + ".a" * 1000 + " = 1") == expected
    assert refused("[x" + '."a"' * 1_000_000 + "]") == expected  # a million parts, quoted: one linear pass


# --- counts -------------------------------------------------------------------------------------


def services(count: int, environments: int = 1) -> str:
    envs = "".join(f"[services.environments.e{j}]\nmodel = {{ cpu = \"1ms\" }}\n" for j in range(environments))
    return "".join(f'[[services]]\nname = "s{i}"\n{envs}' for i in range(count))


def test_ten_thousand_services_load_and_one_more_is_refused():
    assert len(load(services(10_000)).spec.services) == 10_000
    assert refused(services(10_001)) == "s.toml: services: expected at most 10,000 entries"


def test_ten_thousand_environments_in_all_load_and_one_more_is_refused():
    assert sum(len(s.environments) for s in load(services(100, 100)).spec.services) == 10_000
    assert refused(services(100, 100) + services(1)) == "s.toml: services: expected at most 10,000 environments in all, got 10,001"


def test_a_service_takes_a_thousand_environments_and_not_one_more():
    assert len(load(services(1, 1000)).spec.services[0].environments) == 1000
    assert refused(services(1, 1001)) == "s.toml: services[0].environments: expected at most 1,000 entries"


@pytest.mark.parametrize(("make", "path"), [
    (lambda n: ONE + "[services.vars]\n" + "".join(f'v{i} = "x"\n' for i in range(n)), "services[0].vars"),
    (lambda n: ONE + "[services.secrets]\n" + "".join(f'v{i} = "x"\n' for i in range(n)), "services[0].secrets"),
    (lambda n: ONE.replace('routes = ["example.com/*"]', "routes = [" + ", ".join(f'"h{i}.example.com/*"' for i in range(n)) + "]"), "services[0].routes"),
    (lambda n: ONE + "".join('[[traffic]]\nrequests = [{ url = "https://example.com/" }]\n' for _ in range(n)), "traffic"),
    (lambda n: ONE + "[[traffic]]\nrequests = [" + ", ".join('{ url = "https://example.com/" }' for _ in range(n)) + "]\n", "traffic[0].requests"),
    (lambda n: "thresholds = [" + ", ".join('"error ratio < 1%"' for _ in range(n)) + "]\n" + ONE, "thresholds"),
])
def test_a_list_or_table_takes_a_thousand_entries_and_not_one_more(make, path):
    load(make(1000))
    assert refused(make(1001)) == f"s.toml: {path}: expected at most 1,000 entries"


def test_the_timeline_takes_ten_thousand_events_and_not_one_more():
    def timeline(n: int) -> str:
        return ONE + "".join('[[timeline]]\nat = "1s"\naction = "cold"\ntarget = "app@production"\n' for _ in range(n))

    assert len(load(timeline(10_000)).spec.timeline) == 10_000
    assert refused(timeline(10_001)) == "s.toml: timeline: expected at most 10,000 entries"



def test_edge_plot_refuses_a_report_that_is_not_a_regular_file(tmp_path):
    done = edge("plot", "/dev/zero", str(tmp_path / "plots"))
    assert (done.returncode, done.stderr) == (2, "edge: error: /dev/zero: expected a regular file, got a character device\n")
