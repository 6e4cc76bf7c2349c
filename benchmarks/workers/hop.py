"""One hop of the scale benchmark's chains: a little CPU, then the next service if there is one."""


async def fetch(request, env, ctx):
    await ctx.cpu(ctx.random.expovariate(10_000.0))  # 100us on average
    following = getattr(env, "NEXT", None)
    if following is None:
        return await request_done()
    return await following.fetch(request)


async def request_done():
    from edge.platform.fetch import Response

    return Response("ok")
