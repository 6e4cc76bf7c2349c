from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    status = int(request.path[1:])
    return Response(f"status {status}", status=status)
