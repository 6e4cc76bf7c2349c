"""The benchmark chain's gateway: exp(1ms) of its own work, then AUTH, then APP."""


async def fetch(request, env, ctx):
    await ctx.sleep(ctx.random.expovariate(1000.0))
    await env.AUTH.fetch(request)
    return await env.APP.fetch(request)
