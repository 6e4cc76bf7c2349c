"""The seed's gateway (seeds 001/002): the only public service. It asks AUTH, then hands over to APP.

Written as a Cloudflare Python Worker (``from workers import ...``): it runs on edge unchanged.
The first call gets a clone: a request body can be read once, and the original still has to travel
to APP afterwards. ``self.ctx.cpu`` is edge's: it tells the model what the work costs.
"""

from workers import WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        await self.ctx.cpu(self.env.CPU_PER_REQUEST)
        auth = await self.env.AUTH.fetch(request.clone())
        if auth.status != 200:
            return auth  # 403 "x-custom-token does not match, request not allowed"
        return await self.env.APP.fetch(request)
