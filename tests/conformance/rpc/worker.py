from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        said = [await self.env.CALLEE.greet("edge")]
        try:
            await self.env.CALLEE.fail()
        except Exception as e:
            said.append(f"fail: {e}")
        try:
            await self.env.CALLEE.missing()
        except TypeError:
            said.append("missing: TypeError")
        except Exception:
            said.append("missing: other")
        return Response("; ".join(said))
