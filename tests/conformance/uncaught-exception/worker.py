async def fetch(request, env, ctx):
    raise RuntimeError("the worker failed")
