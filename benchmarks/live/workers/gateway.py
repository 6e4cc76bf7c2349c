"""The chain's gateway, as benchmarks/workerd/gateway.js: only a request that auth allows reaches app.

The clone is needed because auth's fetch consumes the request body.
"""


async def fetch(request, env, ctx):
    auth = await env.AUTH.fetch(request.clone())
    if auth.status != 200:
        return auth
    return await env.APP.fetch(request)
