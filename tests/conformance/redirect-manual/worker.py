from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    answer = await env.CALLEE.fetch("http://callee.example/start", {"redirect": "manual"})
    return Response(f"{answer.status} {answer.headers.get('location')}")
