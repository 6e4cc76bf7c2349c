async def fetch(request, env, ctx):
    depth, goal = (int(part) for part in request.path[1:].split("/"))
    if depth == goal:
        from edge.platform.fetch import Response

        return Response(f"reached {depth}")
    return await env.SELF.fetch(f"http://self.example/{depth + 1}/{goal}")
