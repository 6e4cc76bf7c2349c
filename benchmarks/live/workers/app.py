"""The chain's last hop and, alone, the single-worker baseline, as benchmarks/workerd/app.js.

A constant answer, so that what is measured is the runtime and its bindings, not the worker's work.
"""

from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    return Response("Hello from app")
