"""Seed 004's hooks service: private RPC methods the API gateway calls around its integration.

``before`` is a pre_process hook: it refuses a request without the API key by raising an error
with a ``status`` and a ``code``, which the gateway answers as its JSON error (401). ``after`` is a
post_process hook: what it returns replaces the integration's result in the answer.
"""

from workers import Response, WorkerEntrypoint


class Unauthorized(Exception):
    status = 401
    code = "unauthorized"


class Default(WorkerEntrypoint):
    async def before(self, request, context):
        await self.ctx.cpu(self.env.CPU_PER_CHECK)
        if request.headers.get("authorization") != f"Bearer {self.env.API_KEY}":
            raise Unauthorized("missing or wrong API key")
        return {"caller": "key-1"}

    async def after(self, request, context):
        await self.ctx.cpu(self.env.CPU_PER_CHECK)
        return {**context["result"], "audited": True}

    async def fetch(self, request):
        return Response("hooks is reached through RPC only", status=404)
