"""The test tiers, assigned from what each test uses (``conftest.pytest_collection_modifyitems``).

* **unit**: no process started, no socket connected or bound, no simulation run; the
  developer's loop (``pytest -m unit``).
* **integration**: in-process only, but a simulation, the CLI called as a function
  (``edge.cli.main``), or sockets to a server the test runs itself.
* **system**: real processes: ``edge serve`` (``tests/live.py``), the ``edge`` command run by
  ``subprocess``, Prometheus and promtool, Chromium (``tests/browser.py``), workerd
  (``tests/oracle.py``), process pools and Dask clusters.
* **slow**, marked by hand as before: the statistical tier, a tier of its own, run only when asked
  (``pytest -m slow``); a slow test gets none of the three markers.

Why from what a test uses rather than from a hand-kept list: a new test lands in the right tier
without anyone remembering to mark it. What a test uses is read from its code: the globals its
function, its fixtures and the helpers it calls in ``tests/`` and ``benchmarks/`` name (and the
modules it imports inside), followed through those helpers, not into ``edge``, whose modules name
everything. A test can reach a process or a socket in ways its names do not show, or name one it
does not use: those few are ``EXCEPTIONS`` below. And a guard holds every test to its tier while
its fixtures are set up and while it runs (``guard``, from conftest): a unit test that connects or
binds a socket, or a unit or integration test that starts a process, fails, saying why.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dis
import functools
import inspect
import multiprocessing.process
import os
import socket
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any, Iterator

import trio

ROOT = Path(__file__).resolve().parent.parent
HELPERS = (ROOT / "tests", ROOT / "benchmarks")
"""Code followed from a test into the helpers it calls: the test suite's and the benchmarks'."""

TIERS = ("unit", "integration", "system")


def system_objects() -> dict[Any, str]:
    """What a system test names (each with what to call it): whatever starts a real process."""
    import browser
    import live

    found: dict[Any, str] = {
        subprocess: "subprocess",
        multiprocessing.process: "multiprocessing",
        concurrent.futures.ProcessPoolExecutor: "a process pool",
        os.fork: "os.fork",
        live.serve: "edge serve (tests/live.py)",
        browser.chromium: "Chromium (tests/browser.py)",
    }
    with contextlib.suppress(ImportError):
        import distributed

        found[distributed.LocalCluster] = "a Dask cluster"
    return found


def integration_objects() -> dict[Any, str]:
    """What an integration test names: sockets, and the entry points that run simulations or the CLI."""
    from edge import cli
    from edge.engine import batched, simulate
    from edge.tune import power, tuner

    import conftest

    return {
        socket: "sockets",
        trio.socket: "sockets",
        trio.open_tcp_stream: "sockets",
        trio.open_tcp_listeners: "sockets",
        trio.serve_tcp: "sockets",
        cli.main: "the CLI in-process",
        simulate.simulate: "a simulation",
        conftest.send: "a simulation",
        batched.run: "a simulation",
        tuner.tune: "replicated simulations",
        tuner.replicate: "a simulation",
        tuner.run_tasks: "replicated simulations",
        power.power: "replicated simulations",
    }


EXCEPTIONS: dict[str, str] = {
    # A test file's name, or file::test function (all its parameters) -> its tier, and why.
    "test_receive.py": "unit",  # trio.socket names sockets, but these are socketpairs: nothing connects or binds
    "test_aside.py": "system",  # edge.platform.aside forks: the test names only Aside
}
"""Tests whose tier what they name does not show. The guard holds them to it like any other."""


def _helper_code(obj: Any) -> tuple[types.CodeType, dict[str, Any]] | None:
    """The code and globals of a function (or context manager) defined in the suite's helpers."""
    try:
        obj = inspect.unwrap(obj)
    except Exception:  # an object that answers any attribute (a mock): not a helper
        return None
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    code = getattr(obj, "__code__", None)
    if not isinstance(code, types.CodeType) or not _in_helpers(code.co_filename):
        return None
    return code, obj.__globals__


def _in_helpers(filename: str | None) -> bool:
    return filename is not None and any(folder in Path(filename).parents for folder in HELPERS)


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """A code object and those nested in it (inner functions, lambdas, comprehensions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _named(code: types.CodeType, namespace: dict[str, Any]) -> Iterator[Any]:
    """What ``code`` names: its globals, modules it imports, and attributes named of those modules."""
    for inner in _codes(code):
        names = set(inner.co_names)
        modules = [sys.modules[i.argval] for i in dis.get_instructions(inner)  # `import subprocess` in a test
                   if i.opname == "IMPORT_NAME" and i.argval in sys.modules]
        modules += [namespace[name] for name in names if name in namespace]
        for value in modules:
            yield value
            if isinstance(value, types.ModuleType):  # module.attribute, or `from module import attribute`
                for attribute in names:
                    member = getattr(value, attribute, None)
                    if member is not None and not isinstance(member, (str, bytes, int, float, bool)):
                        yield member


_reached: dict[Any, dict[int, Any]] = {}


def uses(function: Any) -> dict[int, Any]:
    """Every object ``function`` names, followed through the suite's helpers (by id; cached)."""
    try:
        return _reached[function]
    except (KeyError, TypeError):
        pass
    reached: dict[int, Any] = {}  # the objects themselves are kept: an id is only unique while its object lives
    seen: set[types.CodeType] = set()
    todo = [function]
    while todo:
        obj = todo.pop()
        if id(obj) in reached:
            continue
        reached[id(obj)] = obj
        helper = _helper_code(obj)
        if helper is not None:
            code, namespace = helper
            if code not in seen:
                seen.add(code)
                todo.extend(_named(code, namespace))
        elif isinstance(obj, type) and _in_helpers(getattr(sys.modules.get(obj.__module__), "__file__", None)):
            todo.extend(vars(obj).values())  # a helper class: its methods
    with contextlib.suppress(TypeError):
        _reached[function] = reached
    return reached


def _exception(nodeid: str) -> str | None:
    module, _, rest = nodeid.partition("::")
    name = Path(module).name
    return EXCEPTIONS.get(f"{name}::{rest.partition('[')[0]}") or EXCEPTIONS.get(name)


def classify(item: Any, system: dict[Any, str], integration: dict[Any, str]) -> tuple[str, str]:
    """``(tier, why)`` of a collected test item, given the objects that make a test system and integration."""
    if item.get_closest_marker("slow") is not None:
        return "slow", "is marked slow: the statistical tier, a tier of its own (pytest -m slow)"
    listed = _exception(item.nodeid)
    if listed is not None:
        return listed, "is listed in tests/tiers.py EXCEPTIONS"
    functions = [item.function]
    for defs in item._fixtureinfo.name2fixturedefs.values():
        functions.extend(fixture.func for fixture in defs)
    functions.extend(value for value in getattr(getattr(item, "callspec", None), "params", {}).values() if callable(value))
    return tier_of(functions, system, integration)


def tier_of(functions: list[Any], system: dict[Any, str], integration: dict[Any, str]) -> tuple[str, str]:
    """``(tier, why)`` of a test made of ``functions`` (its own and its fixtures')."""
    reached: dict[int, Any] = {}
    for function in functions:
        reached.update(uses(function))
    for tier, objects in (("system", system), ("integration", integration)):
        for obj, what in objects.items():
            if id(obj) in reached:
                return tier, f"uses {what}"
    return "unit", "names no process, socket or simulation"


class TierError(AssertionError):
    """A test did what its tier does not allow: it belongs in a higher tier."""


_NEEDS = {"connects a socket": "integration", "binds a socket": "integration", "starts a process": "system"}


@contextlib.contextmanager
def guard(tier: str) -> Iterator[list[str]]:
    """While the block runs, a unit test may not connect or bind a socket nor start a process, and
    an integration test may not start a process: each is refused with ``TierError``, and listed in
    the list yielded (a test that catches the error still fails). Threads an earlier test left
    running are not the test's, and go on unhindered."""
    refused: list[str] = []
    if tier not in ("unit", "integration"):  # system, and slow (the statistical tier runs anything)
        yield refused
        return
    main = threading.main_thread().ident
    earlier = {thread.ident for thread in threading.enumerate()} - {main}

    def check(what: str, detail: object) -> None:
        needs = _NEEDS[what]
        if TIERS.index(needs) <= TIERS.index(tier) or threading.get_ident() in earlier:
            return
        message = (f"a {tier} test {what} ({detail}): that belongs in the {needs} tier; tests/tiers.py assigns tiers "
                   f"from what a test names, and lists there the tests whose names do not show it")
        refused.append(message)
        raise TierError(message)

    def patched(owner: Any, name: str, what: str, describe: Any) -> tuple[Any, str, Any]:
        original = getattr(owner, name)

        @functools.wraps(original)
        def refusing(*args: Any, **kwargs: Any) -> Any:
            check(what, describe(*args, **kwargs))
            return original(*args, **kwargs)

        setattr(owner, name, refusing)
        return owner, name, original

    patches = [
        patched(socket.socket, "connect", "connects a socket", lambda sock, address: address),
        patched(socket.socket, "connect_ex", "connects a socket", lambda sock, address: address),
        patched(socket.socket, "bind", "binds a socket", lambda sock, address: address),
        # Every way of starting a program or a Python process goes through one of these:
        # subprocess (and so asyncio's and trio's run_process), multiprocessing, os.fork, posix_spawn.
        patched(subprocess.Popen, "_execute_child", "starts a process", lambda popen, args, *_, **__: args),
        patched(multiprocessing.process.BaseProcess, "start", "starts a process", lambda process: process.name),
        patched(os, "fork", "starts a process", lambda: "os.fork"),
        *(patched(os, name, "starts a process", lambda path, *_, **__: path) for name in ("posix_spawn", "posix_spawnp")
          if hasattr(os, name)),
    ]
    try:
        yield refused
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)
