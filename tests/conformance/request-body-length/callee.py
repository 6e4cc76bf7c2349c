from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    length, kind = request.headers.get("content-length"), request.headers.get("content-type")
    return Response(f"content-length {'null' if length is None else length}, content-type {'null' if kind is None else kind}: {await request.text()}")
