from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    response = Response("with headers", headers={"x-one": "1"})
    response.headers.set("x-two", "2")
    response.headers.append("x-one", "again")
    response.headers.set("content-type", "text/x-custom")
    return response
