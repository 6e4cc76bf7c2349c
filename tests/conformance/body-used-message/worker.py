from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        await request.text()
        try:
            await request.text()
            return Response("read twice")
        except TypeError as e:
            return Response(f"TypeError: {e}")
