"""Cloudflare's Python Workers run unchanged: ``from workers import ...``, ``class
Default(WorkerEntrypoint)``, RPC methods on it, ``self.env``/``self.ctx``, and ``on_fetch``."""

from __future__ import annotations

import sys

import pytest
from conftest import send, text
from scenario_builder import compose, service

from edge.platform.fetch import Request
from edge.platform.workers import WorkerLoadError, load_worker, release_worker
from edge.scenario.values import EnvironmentKey

PAIR = compose(service("front", routes=["example.com/*"], worker="front.py", vars={"GREETING": "hello"}, bindings={"BACK": "back"}),
               service("back", routes=None, worker="back.py"))

FRONT = """
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    calls = 0

    async def fetch(self, request):
        await self.ctx.cpu("1ms")
        self.seen = getattr(self, "seen", 0) + 1  # an instance per call: never 2
        Default.calls += 1  # the module is the isolate's: state there lives on
        total = await self.env.BACK.add(2, 3)
        answer = await self.env.BACK.fetch(request)
        self.ctx.waitUntil(self.later())
        return Response(f"{self.env.GREETING} {total} {await answer.text()} seen={self.seen} calls={Default.calls}")

    async def later(self):
        await self.ctx.cpu("2ms")
"""

BACK = """
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(f"back saw {request.method} {request.path}")

    async def add(self, a, b):
        return a + b

    def not_rpc(self):  # not a coroutine: not callable over a binding
        return 1
"""


def test_a_cloudflare_python_worker_runs_unchanged(make_scenario):
    loaded = make_scenario(PAIR, {"front.py": FRONT, "back.py": BACK})
    responses, result = send(loaded, [Request("https://example.com/a"), Request("https://example.com/b")])
    assert [text(r) for r in responses] == ["hello 5 back saw GET /a seen=1 calls=1", "hello 5 back saw GET /b seen=1 calls=2"]
    front = result.metrics.environments[EnvironmentKey("front", "production")]
    assert front.cpu_seconds == pytest.approx(2 * 0.003)  # 1 ms in fetch, 2 ms in its waitUntil work
    assert result.metrics.environments[EnvironmentKey("back", "production")].answered == 4  # two RPC calls, two fetches


def test_an_entrypoints_rpc_methods_are_its_public_coroutine_methods(tmp_path):
    (tmp_path / "back.py").write_text(BACK)
    code = load_worker(tmp_path / "back.py")
    release_worker(code)
    assert sorted(code.rpc) == ["add"]


@pytest.mark.parametrize(
    "on_fetch",
    [
        "def on_fetch(request):\n    return Response('old style ' + request.path)",
        "async def on_fetch(request):\n    return Response('old style ' + request.path)",
        "async def on_fetch(request, env):\n    return Response('old style ' + request.path)",
        "async def on_fetch(request, env, ctx):\n    return Response('old style ' + request.path)",
    ],
)
def test_the_older_on_fetch_handler_runs_with_one_two_or_three_arguments(make_scenario, on_fetch):
    loaded = make_scenario(compose(service("old", routes=["example.com/*"], worker="old.py")), {"old.py": "from workers import Response\n" + on_fetch + "\n"})
    [response], _ = send(loaded, [Request("https://example.com/x")])
    assert (response.status, text(response)) == (200, "old style /x")


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("x = 1\n", "expected `class Default(WorkerEntrypoint)`"),
        ("def fetch(request, env, ctx):\n    pass\n", "expected `class Default(WorkerEntrypoint)`"),
        ("from workers import WorkerEntrypoint\nclass Default(WorkerEntrypoint):\n    pass\n", "expected class Default(WorkerEntrypoint) to define `async def fetch(self, request)`"),
        ("def on_fetch(request, env, ctx, extra):\n    pass\n", "expected `on_fetch(request, env, ctx)`"),
    ],
)
def test_a_module_without_a_handler_is_refused_naming_the_shapes_it_could_have(tmp_path, source, said):
    (tmp_path / "w.py").write_text(source)
    with pytest.raises(WorkerLoadError, match="w.py") as raised:
        load_worker(tmp_path / "w.py")
    assert said in str(raised.value)


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("missing.py", "does not exist"),
        ("folder.py", "expected a regular file, got a folder"),  # a folder named like a module
        ("fifo.py", "expected a regular file, got a FIFO"),  # would hold the load for ever
        ("x" * 300 + ".py", "cannot read file: File name too long"),
        ("w.txt", "expected a Python module (.py)"),
        ("large.py", "expected a worker module of at most 8,388,608 bytes (8 MiB)"),
    ],
)
def test_a_worker_file_that_cannot_be_read_is_refused_saying_why(tmp_path, name, said):
    import os

    from edge.platform.workers import MAX_WORKER_BYTES, read_worker

    (tmp_path / "folder.py").mkdir()
    os.mkfifo(tmp_path / "fifo.py")
    with open(tmp_path / "large.py", "wb") as large:
        large.truncate(MAX_WORKER_BYTES + 1)
    with pytest.raises(WorkerLoadError) as checked:  # edge check reads it the same way
        read_worker(tmp_path / name)
    assert said in str(checked.value)
    (tmp_path / "w.txt").write_text("async def fetch(request, env, ctx):\n    pass\n")
    before = set(sys.modules)
    with pytest.raises(WorkerLoadError) as raised:
        load_worker(tmp_path / name)
    assert said in str(raised.value)
    assert set(sys.modules) == before  # nothing is left registered


def test_a_worker_file_of_exactly_the_size_limit_is_read(tmp_path):
    from edge.platform.workers import MAX_WORKER_BYTES, read_worker

    code = b"async def fetch(request, env, ctx):\n    pass\n# "
    (tmp_path / "w.py").write_bytes(code + b"x" * (MAX_WORKER_BYTES - len(code)))  # one byte more is refused (above)
    assert read_worker(tmp_path / "w.py") == []


def test_a_loaded_worker_is_a_module_of_its_file_as_an_import_makes_it(tmp_path):
    # What a worker (or a library it uses: dataclasses, pickle, inspect) may read of its module.
    (tmp_path / "w.py").write_text(
        "import dataclasses, inspect, sys\n"
        "@dataclasses.dataclass\nclass Point:\n    x: int\n"
        "async def fetch(request, env, ctx):\n    pass\n"
        "SOURCE = inspect.getsource(fetch)\n"
        "FILE, ORIGIN = __file__, __spec__.origin\n"
        "REGISTERED = sys.modules[__name__].__dict__ is globals()\n"
    )
    code = load_worker(tmp_path / "w.py")
    module = sys.modules[code.module]
    try:
        assert module.SOURCE.startswith("async def fetch(request, env, ctx):")
        assert module.FILE == module.ORIGIN == str(tmp_path / "w.py") and module.REGISTERED
        assert module.Point(1) == module.Point(1) and module.__spec__.name == code.module
    finally:
        release_worker(code)
    assert code.module not in sys.modules


def test_a_worker_never_needs_edge_platform(make_scenario):
    # The seed's workers and the templates import only `workers`.
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sources = [*(root / "edge" / "bundled" / "workers").glob("*.py"), *(root / "edge" / "bundled" / "templates").rglob("*.py")]
    assert sources
    for source in sources:
        assert "edge.platform" not in source.read_text(), source
