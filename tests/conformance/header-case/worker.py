from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(
            "names",
            headers={"X-Mixed-Case": "1", "content-type": "text/plain", "location": "/elsewhere", "Cache-Control": "no-store"},
        )
