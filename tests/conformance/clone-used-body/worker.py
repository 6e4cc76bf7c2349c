from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    first = await request.text()
    try:
        request.clone()
        second = "cloned"
    except TypeError:
        second = "TypeError"
    return Response(f"read {first}; clone after reading: {second}; bodyUsed {str(request.body_used).lower()}")
