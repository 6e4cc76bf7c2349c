"""The seed's gateway (seeds 001/002): the only public service. It asks AUTH, then hands over to APP.

The first call gets a clone: a request body can be read once, and the original still has to travel
to APP afterwards.
"""


async def fetch(request, env, ctx):
    await ctx.cpu(env.CPU_PER_REQUEST)
    auth = await env.AUTH.fetch(request.clone())
    if auth.status != 200:
        return auth  # 403 "x-custom-token does not match, request not allowed"
    return await env.APP.fetch(request)
