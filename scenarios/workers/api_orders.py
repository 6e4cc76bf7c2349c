"""Seed 004's target service: the RPC methods the API gateway's paths integrate (``get``, ``run``).

They return plain values; the gateway wraps them in its JSON envelope. An unknown order is a
deliberate 404 (an error with ``status`` and ``code``), not a failure of the service.
"""

from workers import Response, WorkerEntrypoint


class NotFound(Exception):
    status = 404
    code = "order_not_found"


class Default(WorkerEntrypoint):
    async def get(self, request, context):
        await self.ctx.cpu(self.env.CPU_PER_CALL)
        await self.ctx.sleep(self.ctx.random.expovariate(1 / 0.002))  # the order store
        order_id = context["params"]["id"]
        if not order_id.isdigit():
            raise NotFound(f"no order {order_id!r}")
        return {"id": int(order_id), "caller": context["pre_process"]["caller"]}

    async def run(self, request, context):
        await self.ctx.cpu(self.env.CPU_PER_CALL)
        order = await request.json()
        await self.ctx.sleep(self.ctx.random.expovariate(1 / 0.004))
        return {"id": 1000 + self.ctx.random.randrange(1000), "sku": order["sku"], "qty": order["qty"]}

    async def fetch(self, request):
        return Response("orders is reached through RPC only", status=404)
