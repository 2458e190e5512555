import asyncio
from urllib.parse import urlparse

from workers import Response, WorkerEntrypoint, WorkflowEntrypoint


class SlowFlow(WorkflowEntrypoint):
    async def run(self, event, step):
        seconds = event.payload["seconds"]

        @step.do("fetch")
        async def fetch_data():
            await asyncio.sleep(seconds)
            return [1, 2, 3]

        data = await fetch_data()

        @step.do("sum")
        async def total():
            await asyncio.sleep(seconds)
            return sum(data)

        return {"total": await total()}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path == "/start" and request.method == "POST":
            body = await request.json()
            instance = await self.env.FLOW.create(params={"seconds": body["seconds"]})
            return Response.json({"id": instance.id}, status=201)
        if path.startswith("/status/"):
            instance = await self.env.FLOW.get(path.removeprefix("/status/"))
            return Response.json(await instance.status())
        return Response("not found", status=404)
