"""The ``workers`` module of Cloudflare's Python Workers, as edge provides it to worker code.

A Python Worker deployed to Cloudflare is written against its SDK: ``from workers import
WorkerEntrypoint, Response``, a ``Default`` class whose ``async def fetch(self, request)`` answers,
``self.env`` for bindings, vars and secrets, ``self.ctx`` for ``waitUntil``, and its other public
methods callable over a service binding (RPC). Worker code that imports ``workers`` gets this
module (``load_worker`` installs it under that name, as the runtime provides it on Cloudflare), so
the ``src/entry.py`` a user deploys runs on edge unchanged; it never has to import
``edge.platform``. The older ``async def on_fetch(request, env)`` style and edge's own ``async def
fetch(request, env, ctx)`` work too.

What the SDK offers beyond this is not modelled (see the README's Workers section): the JavaScript
FFI (``from js import ...``, ``Response.new``), ``fetch`` to the internet, Durable Objects,
Workflows, named entrypoints selected by a binding, and the bindings edge has no model of (KV, R2,
D1, Queues, AI). Names the SDK spells in JavaScript's way are given as well: ``ctx.waitUntil``.
"""

from __future__ import annotations

from typing import Any

from edge.platform.fetch import Headers, Request, Response

__all__ = ["Headers", "Request", "Response", "WorkerEntrypoint"]


class WorkerEntrypoint:
    """The base of a worker's entrypoint class: one instance per call, holding its ``env`` (the
    worker's bindings, vars and secrets) and ``ctx`` (``waitUntil``, and edge's ``cpu`` and
    ``sleep`` with which code tells the model what it costs)."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env
