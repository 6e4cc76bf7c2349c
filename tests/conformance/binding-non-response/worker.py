from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    try:
        answer = await env.CALLEE.fetch(request)
        return Response(f"answered {answer.status}")
    except TypeError:
        return Response("threw TypeError")
    except Exception:
        return Response("threw something else")
