from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    answer = await env.CALLEE.fetch("http://callee.example/start")
    return Response(f"{answer.status} {str(getattr(answer, 'redirected', False)).lower()} {await answer.text()}")
