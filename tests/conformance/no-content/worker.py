from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    return Response(None, status=204, headers={"x-done": "yes"})
