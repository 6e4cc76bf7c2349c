"""The seed's auth service (seed 001): private, reached only through the gateway's AUTH binding."""

from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    await ctx.cpu(env.CPU_PER_REQUEST)
    if request.headers.get("x-custom-token") == env.SECRET_TOKEN:
        return Response("Request allowed", status=200)
    return Response("x-custom-token does not match, request not allowed", status=403)
