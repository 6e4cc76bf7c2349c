async def fetch(request, env, ctx):
    raise RuntimeError("boom from the callee")
