"""Seed 004's hooks service: the private RPC method the API gateway calls before its integration.

``before`` is a pre_process hook: as on the reference gateway, the request goes on only when it
returns exactly ``True``; a Response it returns is the answer (here a 401 for a missing or wrong
API key).
"""

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def before(self, request, context):
        await self.ctx.cpu(self.env.CPU_PER_CHECK)
        if request.headers.get("authorization") != f"Bearer {self.env.API_KEY}":
            return Response.json({"message": "missing or wrong API key"}, status=401)
        return True

    async def fetch(self, request):
        return Response("hooks is reached through RPC only", status=404)
