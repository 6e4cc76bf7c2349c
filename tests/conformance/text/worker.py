from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    return Response("hello from the worker")
