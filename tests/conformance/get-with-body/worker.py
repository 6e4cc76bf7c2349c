from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    text = await request.text()
    return Response(f"{request.method} {len(text)}: {text}")
