from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    return Response(f"method {request.method}")
