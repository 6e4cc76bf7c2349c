from edge.platform.fetch import Request, Response


async def fetch(request, env, ctx):
    try:
        request.headers.set("x-added", "1")
        incoming = "set"
    except TypeError:
        incoming = "TypeError"
    copy = Request(request)
    copy.headers.set("x-added", "1")
    return Response(f"incoming: {incoming}; copy: {copy.headers.get('x-added')}")
