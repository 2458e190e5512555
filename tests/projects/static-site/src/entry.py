from urllib.parse import urlparse

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path == "/api/hello":
            return Response.json({"message": self.env.GREETING, "method": str(request.method)})
        if path == "/api/page":
            # The worker answers with a file of the site, through the binding.
            page = await self.env.ASSETS.fetch(request.url.replace("/api/page", "/about"))
            return Response(await page.text(), headers={"x-from": "worker"})
        if path.startswith("/api/"):
            return Response.json({"error": f"no route {path}"}, status=404)
        return Response("the worker saw " + path)
