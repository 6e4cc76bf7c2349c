from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        await self.ctx.cpu("80ms")  # the same work, declared: over the 50 ms budget
        return Response("computed true")
