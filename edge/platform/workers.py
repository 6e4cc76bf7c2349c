"""Worker code: Python modules shaped like Workers' modules, and synthetic workers from distributions.

A worker module is written as Cloudflare's Python Workers are (``from workers import
WorkerEntrypoint, Response``; ``class Default(WorkerEntrypoint)`` with ``async def fetch(self,
request)``; its other public coroutine methods are RPC methods; ``edge.platform.sdk`` is that
``workers`` module), or as their older ``on_fetch(request, env)``, or in edge's own shape:
``async def fetch(request, env, ctx)`` and more public ``async def name(env, ctx, *args,
**kwargs)`` functions as its RPC methods. A bound worker calls an RPC method as ``await
env.BINDING.name(*args, **kwargs)`` (seed 004's pre_process / integration / post_process hooks).
Each environment loads its own copy of the module, as each Workers environment is its own
isolate: module-level state is never shared between environments.

``ctx`` (built by the environment actor) is how code tells the model what it costs:
``await ctx.cpu("2ms")`` spends CPU on a core, charged to the top-level request;
``await ctx.sleep("5ms")`` waits without CPU; ``ctx.random`` is the environment's seeded stream.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import inspect
import itertools
import json
import os
import random
import sys
import types
from pathlib import Path
from typing import Any, Callable

from edge.platform import sdk
from edge.platform.distributions import Distribution
from edge.platform.files import InputError, read_input
from edge.platform.fetch import Response, freeze

_module_ids = itertools.count()


class WorkerLoadError(Exception):
    """A worker module that cannot serve: unreadable, failing on import, or without ``fetch``."""


class WorkerCode:
    """The callables of one loaded worker, and the name its module is registered under while it runs."""

    __slots__ = ("fetch", "rpc", "module")

    def __init__(self, fetch: Callable[..., Any], rpc: dict[str, Callable[..., Any]], module: str = "") -> None:
        self.fetch = fetch
        self.rpc = rpc
        self.module = module


def release_worker(code: WorkerCode) -> None:
    """Take the worker's module out of ``sys.modules`` once its run is over: each load registers a
    fresh copy, and a process that runs many (``edge tune``'s replications) would keep them all."""
    sys.modules.pop(code.module, None)


@functools.lru_cache(maxsize=64)
def _compiled(path: str, source: bytes) -> types.CodeType:
    """A worker file's code, compiled once however many environments run it (a topology of
    10,000 services sharing one file spent 1.4 s compiling it 10,000 times). Keyed by the text
    itself, not the file's time stamp: a file rewritten within one tick is compiled again."""
    return compile(source, path, "exec", dont_inherit=True)


MAX_WORKER_BYTES = 8 * 1024 * 1024
"""A worker module, at most (as a scenario file): far above any hand-written module."""


def worker_source(path: Path) -> bytes:
    """The source of the worker module at ``path``, or ``WorkerLoadError`` saying why not: read as
    every input is (``read_input``: a regular file only, so a FIFO or a device named ``x.py``
    cannot hold the load for ever; at most one byte past the limit)."""
    if path.suffix not in importlib.machinery.SOURCE_SUFFIXES:
        raise WorkerLoadError(f"expected a Python module (.py), got {str(path)!r}")
    try:
        os.stat(path)
    except FileNotFoundError:
        raise WorkerLoadError(f"expected a readable Python worker module, {str(path)!r} does not exist") from None
    except OSError:
        pass  # read_input says why
    try:
        source = read_input(path, MAX_WORKER_BYTES)
    except InputError as exc:
        raise WorkerLoadError(f"expected a readable Python worker module, {str(path)!r}: {exc}") from None
    if len(source) > MAX_WORKER_BYTES:
        raise WorkerLoadError(f"expected a worker module of at most {MAX_WORKER_BYTES:,} bytes (8 MiB), {str(path)!r} is larger")
    return source


def load_worker(path: Path, source: bytes | None = None) -> WorkerCode:
    """Import a fresh copy of the worker module at ``path`` (whose text is ``source``, if the
    caller has read it already: every environment running one file gets a copy of it).

    The module is made as ``importlib`` makes one from a file (a spec with the file as its
    origin, ``__file__``, registered in ``sys.modules`` while it runs), without a finder or a
    loader per copy: a topology of 10,000 services loads 10,000 copies, and building those
    specs and loaders was half of what building it cost.
    """
    if source is None:
        source = worker_source(path)
    name = f"edge_worker_{path.stem}_{next(_module_ids)}"
    module = types.ModuleType(name)
    file = module.__file__ = str(path)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=file)
    module.__spec__.has_location = True
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    sys.modules["workers"] = sdk  # `from workers import ...`: the runtime's module, as on Cloudflare
    try:
        exec(_compiled(file, source), module.__dict__)  # what exec_module does
    except Exception as exc:  # the user's import-time error, reported as a config error
        del sys.modules[name]
        raise WorkerLoadError(f"worker module {str(path)!r} failed to import: {type(exc).__name__}: {exc}") from None
    try:
        code = _handlers(module, name)
    except WorkerLoadError as exc:
        del sys.modules[name]
        raise WorkerLoadError(f"worker module {str(path)!r}: {exc}") from None
    code.module = name
    return code


def _handlers(module: types.ModuleType, name: str) -> WorkerCode:
    """What a module answers with, in the first of the three shapes it has: Cloudflare's Python
    Workers (``class Default(WorkerEntrypoint)``), their older ``on_fetch``, or edge's own
    ``async def fetch(request, env, ctx)`` with module-level RPC functions."""
    entry = getattr(module, "Default", None)
    if isinstance(entry, type) and issubclass(entry, sdk.WorkerEntrypoint):
        return _entrypoint(entry)
    on_fetch = getattr(module, "on_fetch", None)
    if callable(on_fetch) and getattr(module, "fetch", None) is None:
        return WorkerCode(_on_fetch(on_fetch), {})
    fetch = getattr(module, "fetch", None)
    if fetch is None or not inspect.iscoroutinefunction(fetch):
        raise WorkerLoadError(
            "expected `class Default(WorkerEntrypoint)` with `async def fetch(self, request)` "
            "(Cloudflare's Python Workers), or `async def fetch(request, env, ctx)`"
        )
    rpc = {
        attr: fn
        for attr, fn in vars(module).items()
        if not attr.startswith("_")
        and attr != "fetch"
        and inspect.iscoroutinefunction(fn)
        and getattr(fn, "__module__", None) == name
    }
    return WorkerCode(fetch, rpc)


def _entrypoint(entry: type) -> WorkerCode:
    """A ``WorkerEntrypoint`` class: an instance per call, as the runtime makes one per
    invocation; ``fetch`` answers requests and its other public coroutine methods are its RPC
    methods. The handlers return the method's coroutine rather than wrap it in one of their
    own: a coroutine level would be paid again on every resume of the worker."""
    if not inspect.iscoroutinefunction(getattr(entry, "fetch", None)):
        raise WorkerLoadError(f"expected class {entry.__name__}(WorkerEntrypoint) to define `async def fetch(self, request)`")

    def fetch(request: Any, env: Any, ctx: Any) -> Any:
        return entry(ctx, env).fetch(request)

    def method(attr: str) -> Callable[..., Any]:
        def call(env: Any, ctx: Any, *args: Any, **kwargs: Any) -> Any:
            return getattr(entry(ctx, env), attr)(*args, **kwargs)

        return call

    rpc = {
        attr: method(attr)
        for attr, fn in inspect.getmembers(entry, inspect.iscoroutinefunction)
        if not attr.startswith("_") and attr != "fetch" and not hasattr(sdk.WorkerEntrypoint, attr)
    }
    return WorkerCode(fetch, rpc)


def _on_fetch(on_fetch: Callable[..., Any]) -> Callable[..., Any]:
    """The older Python Workers handler, ``on_fetch(request[, env[, ctx]])``, async or not."""
    try:
        wanted = len(inspect.signature(on_fetch).parameters)
    except (TypeError, ValueError):
        wanted = 3
    if not 1 <= wanted <= 3:
        raise WorkerLoadError("expected `on_fetch(request, env, ctx)` (env and ctx may be left out)")

    async def fetch(request: Any, env: Any, ctx: Any) -> Any:
        answer = on_fetch(*(request, env, ctx)[:wanted])
        return await answer if inspect.isawaitable(answer) else answer

    return fetch


def read_worker(path: str | Path) -> list[str]:
    """A worker module's RPC methods, read from its source without running it, or the
    ``WorkerLoadError`` ``load_worker`` would raise for its shape.

    Why: ``edge check`` (and ``graph``, ``import``) must not run the code it checks, which may
    come from anyone (a module whose first line writes a file wrote it when checked). Its
    syntax, its handler in one of the three shapes and its own RPC methods are all in its
    source; what only running it shows (an import that fails, a method made at run time or
    inherited from a class of another module) shows when ``edge run`` or ``serve`` loads it.
    """
    path = Path(path)
    source = worker_source(path)
    try:
        tree = ast.parse(source, str(path))
    except SyntaxError as exc:
        raise WorkerLoadError(f"worker module {str(path)!r}: line {exc.lineno}: {exc.msg}") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise WorkerLoadError(f"worker module {str(path)!r} cannot be read: {exc}") from None
    top = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    entry = top.get("Default")
    if isinstance(entry, ast.ClassDef) and any(_base_name(base) == "WorkerEntrypoint" for base in entry.bases):
        methods = {node.name: node for node in entry.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if not isinstance(methods.get("fetch"), ast.AsyncFunctionDef):
            raise WorkerLoadError(f"worker module {str(path)!r}: expected class Default(WorkerEntrypoint) to define `async def fetch(self, request)`")
        return _public_coroutines(methods)
    if isinstance(top.get("on_fetch"), (ast.FunctionDef, ast.AsyncFunctionDef)) and "fetch" not in top:
        return []
    if not isinstance(top.get("fetch"), ast.AsyncFunctionDef):
        raise WorkerLoadError(
            f"worker module {str(path)!r}: expected `class Default(WorkerEntrypoint)` with `async def fetch(self, request)` "
            "(Cloudflare's Python Workers), or `async def fetch(request, env, ctx)`"
        )
    return _public_coroutines(top)


def _base_name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _public_coroutines(defined: dict[str, Any]) -> list[str]:
    return sorted(name for name, node in defined.items() if isinstance(node, ast.AsyncFunctionDef) and not name.startswith("_") and name != "fetch")


class SyntheticBody:
    """What a synthetic answer says: JSON naming who answered, padded with spaces to the drawn size.

    ``{"service": "app", "environment": "canary", "version": "42"}``, a newline, then spaces:
    printable, valid JSON (trailing whitespace is allowed), and exactly the drawn number of bytes,
    so the model's sizes, and every byte count downstream, are what the scenario says. A size
    shorter than the JSON gets its first bytes: the size is the measured figure being modelled,
    the text only a label.

    One per environment and version (the actor makes a new one when its version changes): the
    padded text is built once and grown to the largest size drawn, so an answer costs one slice.
    The padding comes after the newline rather than before it for that reason: a newline at the
    end would cost a second copy per answer.
    """

    __slots__ = ("version", "_padded")

    def __init__(self, service: str, environment: str, version: str) -> None:
        self.version = version
        self._padded = json.dumps({"service": service, "environment": environment, "version": version}).encode() + b"\n"

    def of(self, size: int) -> bytes:
        """The body of ``size`` bytes."""
        if len(self._padded) < size:
            self._padded += b" " * (2 * size - len(self._padded))
        return self._padded[:size]


class ModelWorker:
    """A worker whose behaviour is drawn from distributions: CPU, then waiting, then an answer.

    Lets a user model a service they have no code for (or do not want to run) from a few measured
    figures. The environment actor drives the steps (it serves model calls with timers rather than
    a task each); this object holds the distributions and makes the answer. Draws come from the
    environment's own random stream, in a fixed order: CPU, latency, error, size.

    ``logged_scale`` multiplies the request time a replayed log records, which a call that carries
    one is served in instead of a latency draw: 1 for the model as declared, N after a latency
    factor "xN", None once a latency is written in its place (the new one is then the model's).
    """

    __slots__ = ("cpu", "latency", "errors", "error_status", "size", "logged_scale", "_empty", "_json", "_failed")

    def __init__(self, cpu: Distribution, latency: Distribution, errors: float, error_status: int, size: Distribution) -> None:
        self.cpu = cpu
        self.latency = latency
        self.errors = errors
        self.error_status = error_status
        self.size = size
        self.logged_scale: float | None = 1.0
        # Answers are clones of these: copying is cheaper than validating a new Response.
        self._empty = Response(None)
        self._json = Response(None, headers={"content-type": "application/json"})
        self._failed = Response(None, status=error_status)
        for template in (self._empty, self._json, self._failed):  # answers a binding returns are immutable: clones keep it
            freeze(template.headers)

    def respond(self, rng: random.Random, body: SyntheticBody) -> Response:
        if self.errors and rng.random() < self.errors:
            return self._failed.clone()
        size = int(self.size.sample(rng))
        if size <= 0:
            return self._empty.clone()
        # A clone of the JSON 200 given the body: the same Response as ``Response(bytes, headers)``,
        # without validating status and headers again for every answer.
        response = self._json.clone()
        response._body = body.of(size)
        return response
