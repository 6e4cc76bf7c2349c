from workers import Headers, Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        answer = await self.env.CALLEE.fetch(request)
        try:
            answer.headers.set("x-added", "1")
            changed = "set"
        except TypeError:
            changed = "TypeError"
        copy = Response(await answer.bytes(), status=answer.status, headers=Headers(answer.headers))
        copy.headers.set("x-added", "1")
        return Response(f"binding's answer: {changed}; copy: {copy.headers.get('x-added')}")
