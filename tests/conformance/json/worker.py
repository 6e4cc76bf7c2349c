from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    return Response.json({"a": 1, "b": [True, None], "c": "é"})
