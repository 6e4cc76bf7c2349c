from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("the callee")

    async def greet(self, name):
        return f"hello {name}"

    async def fail(self):
        raise RuntimeError("boom from rpc")
