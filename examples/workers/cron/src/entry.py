import json

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def scheduled(self, controller, env, ctx):
        count = int(await env.RUNS.get("count") or 0) + 1
        await env.RUNS.put("count", str(count))
        await env.RUNS.put(
            "last", json.dumps({"cron": controller.cron, "time": controller.scheduledTime})
        )

    async def fetch(self):  # no request parameter: it is still called
        last = await self.env.RUNS.get("last")
        count = int(await self.env.RUNS.get("count") or 0)
        return Response.json({"runs": count, "last": json.loads(last) if last else None})
