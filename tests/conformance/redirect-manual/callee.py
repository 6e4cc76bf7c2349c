from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    if request.path == "/start":
        return Response.redirect("http://callee.example/final", 302)
    return Response(f"final at {request.path}")
