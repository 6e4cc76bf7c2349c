from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    query = f"?{request.query}" if request.query else ""
    thing = request.headers.get("x-thing")
    return Response(f"{request.method} {request.path}{query} x-thing={'null' if thing is None else thing}")
