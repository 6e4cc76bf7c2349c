from edge.platform.fetch import Request


async def fetch(request, env, ctx):
    return await env.CALLEE.fetch(Request("http://callee.example/", method="POST", body="abc"))
