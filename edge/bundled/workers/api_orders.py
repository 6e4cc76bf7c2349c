"""Seed 004's target service: the RPC methods the API gateway's paths integrate (``get``, ``run``).

They return plain values; the gateway wraps them as the reference gateway does: a dict is the
``data`` of its success envelope, and one with ``statusCode`` and ``error`` is an error envelope
with that status (an unknown order: 404).
"""

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def get(self, request, context):
        await self.ctx.cpu(self.env.CPU_PER_CALL)
        await self.ctx.sleep(self.ctx.random.expovariate(1 / 0.002))  # the order store
        order_id = context["params"]["id"]
        if not order_id.isdigit():
            return {"statusCode": 404, "error": "order_not_found", "message": f"no order {order_id!r}"}
        return {"id": int(order_id)}

    async def run(self, request, context):
        await self.ctx.cpu(self.env.CPU_PER_CALL)
        order = await request.json()
        await self.ctx.sleep(self.ctx.random.expovariate(1 / 0.004))
        return {"id": 1000 + self.ctx.random.randrange(1000), "sku": order["sku"], "qty": order["qty"]}

    async def fetch(self, request):
        return Response("orders is reached through RPC only", status=404)
