"""The test tiers (tests/tiers.py): assigned from what a test names, and held to by a guard.

The examples are compiled from text, as if written in tests/, so that what they name does not
become this file's own (its tests are unit tests, in the developer's loop).
"""

from __future__ import annotations

import re
import textwrap
import threading

import pytest

import tiers

SYSTEM, INTEGRATION = tiers.system_objects(), tiers.integration_objects()


def example(source: str) -> object:
    """The function ``test`` of ``source``, compiled as if it were in a file of tests/."""
    namespace: dict[str, object] = {}
    exec(compile(textwrap.dedent(source), str(tiers.ROOT / "tests" / "example.py"), "exec"), namespace)
    return namespace["test"]


@pytest.mark.parametrize(("source", "tier"), [
    pytest.param("def test():\n    assert 1 + 1 == 2", "unit", id="nothing"),
    pytest.param("from live import serve\ndef test():\n    with serve() as served:\n        pass", "system", id="edge-serve"),
    pytest.param("def test():\n    import subprocess\n    subprocess.run(['edge', 'check'])", "system", id="subprocess-imported-inside"),
    pytest.param("import browser\ndef test():\n    with browser.chromium():\n        pass", "system", id="chromium"),
    # through a helper of the test's own file, and one of tests/live.py's (exchange opens a socket)
    pytest.param("import subprocess\ndef edge(*args):\n    return subprocess.run(['edge', *args])\ndef test():\n    edge('run')", "system",
                 id="through-a-helper"),
    pytest.param("from live import exchange\ndef test():\n    exchange(1, b'')", "integration", id="a-socket-through-live.py"),
    pytest.param("from conftest import send\ndef test(make_scenario):\n    send(make_scenario(''), [])", "integration", id="a-simulation"),
    pytest.param("from edge import cli\ndef test():\n    cli.main(['check'])", "integration", id="the-cli-in-process"),
    pytest.param("from edge.scenario.load import load\ndef test():\n    load('scenario.toml')", "unit", id="loading-a-scenario"),
])
def test_a_test_is_in_the_tier_of_what_it_names(source, tier):
    assert tiers.tier_of([example(source)], SYSTEM, INTEGRATION)[0] == tier


def test_a_unit_test_may_not_connect_or_bind_a_socket_nor_start_a_process():
    import socket
    import subprocess

    with tiers.guard("unit") as refused:
        with socket.socket() as sock, pytest.raises(tiers.TierError, match="connects a socket .* belongs in the integration tier"):
            sock.connect(("127.0.0.1", 9))  # refused before it is tried
        with socket.socket() as sock, pytest.raises(tiers.TierError, match="binds a socket"):
            sock.bind(("127.0.0.1", 0))
        with pytest.raises(tiers.TierError, match="starts a process .* belongs in the system tier"):
            subprocess.run(["true"])
        a, b = socket.socketpair()  # in-process: allowed
        a.close(), b.close()
    assert len(refused) == 3  # a test that caught the refusals still fails with them (conftest)


def test_an_integration_test_may_use_sockets_but_not_start_a_process():
    import multiprocessing
    import socket

    with tiers.guard("integration") as refused:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
        with pytest.raises(tiers.TierError, match="starts a process"):
            multiprocessing.get_context("spawn").Process(target=print).start()
    assert len(refused) == 1


def test_a_system_test_may_do_anything_and_a_thread_an_earlier_test_left_is_not_the_tests():
    import socket
    import subprocess

    with tiers.guard("system") as refused:
        assert subprocess.run(["true"]).returncode == 0
    go, done = threading.Event(), threading.Event()

    def leftover() -> None:
        go.wait()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
        done.set()

    thread = threading.Thread(target=leftover, daemon=True)
    thread.start()
    with tiers.guard("unit") as refused:
        go.set()
        thread.join()
    assert done.is_set() and refused == []


def test_every_test_collected_has_one_tier_and_the_slow_tier_is_one(request):
    for item in request.session.items:
        marks = [name for name in ("slow", *tiers.TIERS) if item.get_closest_marker(name) is not None]
        assert len(marks) == 1, (item.nodeid, marks)


def test_the_tiers_are_declared_and_the_listed_exceptions_exist(pytestconfig):
    declared = {line.split(":", 1)[0] for line in pytestconfig.getini("markers")}
    assert {"slow", *tiers.TIERS} <= declared
    for name, tier in tiers.EXCEPTIONS.items():
        assert tier in tiers.TIERS, name
        module, _, function = name.partition("::")
        path = tiers.ROOT / "tests" / module
        assert path.is_file(), f"tests/tiers.py lists {name}: no such file"
        assert not function or re.search(rf"^(async )?def {function}\(", path.read_text(), re.M), f"tests/tiers.py lists {name}: no such test"
