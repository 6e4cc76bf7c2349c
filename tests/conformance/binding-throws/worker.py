from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    try:
        answer = await env.CALLEE.fetch(request)
        return Response(f"answered {answer.status}")
    except Exception as e:
        return Response(f"threw: {e}")
