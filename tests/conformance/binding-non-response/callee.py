async def fetch(request, env, ctx):
    return "not a Response"
