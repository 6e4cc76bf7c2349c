"""Private auth, as benchmarks/workerd/auth.js: checks x-custom-token against the SECRET_TOKEN secret."""

from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    if request.headers.get("x-custom-token") == env.SECRET_TOKEN:
        return Response("Request allowed", status=200)
    return Response("x-custom-token does not match, request not allowed", status=403)
