from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        async def nothing():
            pass

        self.ctx.waitUntil(nothing())
        return Response(f"{self.env.GREETING}, {request.path}", headers={"x-greeting": self.env.GREETING})
