from edge.platform.fetch import Response


async def fetch(request, env, ctx):
    async def later():
        await ctx.sleep(0.01)

    ctx.wait_until(later())
    return Response("answered before the work ended")
