from urllib.parse import urlparse

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path == "/check":
            return Response.json(await self.env.AUTH.check("ann"))
        if path == "/forward":
            answer = await self.env.AUTH.fetch(request)
            return Response(await answer.text())
        return Response("api")
