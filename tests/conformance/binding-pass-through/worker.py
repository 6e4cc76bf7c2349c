from edge.platform.fetch import Request


async def fetch(request, env, ctx):
    return await env.CALLEE.fetch(Request(request, headers={"x-from-caller": "caller"}))
