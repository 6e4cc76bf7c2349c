"""The seed's auth service (seed 001): private, reached only through the gateway's AUTH binding."""

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        await self.ctx.cpu(self.env.CPU_PER_REQUEST)
        if request.headers.get("x-custom-token") == self.env.SECRET_TOKEN:
            return Response("Request allowed", status=200)
        return Response("x-custom-token does not match, request not allowed", status=403)
