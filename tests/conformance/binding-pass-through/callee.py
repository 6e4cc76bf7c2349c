from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    return Response(
        f"callee saw {request.method} {request.path} x-from-caller={request.headers.get('x-from-caller')}",
        status=201,
        headers={"x-from-callee": "callee"},
    )
