from urllib.parse import urlparse

from workers import Response, WorkerEntrypoint

GREETER = """
import helper
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(helper.greet(self.env.WHO))

    async def add(self, a, b):
        return a + b
"""
HELPER = "def greet(who):\n    return f'hello {who} from a dynamic worker'\n"
LOADS = []


def greeter_code():
    LOADS.append(1)
    return {
        "compatibilityDate": "2025-09-01",
        "mainModule": "main.py",
        "modules": {"main.py": GREETER, "helper.py": {"py": HELPER}},
        "env": {"WHO": "ann"},
    }


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path == "/login":  # fetch through the binding: auth sees this request
            answer = await self.env.AUTH.fetch(request)
            return Response(
                await answer.text(),
                status=answer.status,
                headers={"set-cookie": answer.headers.get("set-cookie") or ""},
            )
        if path == "/whoami":  # RPC with arguments and a result
            user = await self.env.AUTH.verify(request.headers.get("authorization") or "")
            headers = {"x-user": user.user} if user else {}  # attribute access, as on Cloudflare
            return Response.json({"user": user}, headers=headers)
        if path == "/reverse":  # bytes both ways
            return Response(await self.env.AUTH.reverse(await request.bytes()))
        if path == "/explode":  # an exception in the other worker comes back here
            try:
                await self.env.AUTH.explode("do that")
            except Exception as error:
                return Response(str(error), status=502)
        if path == "/stats":  # a named entrypoint, by script name
            return Response.json(await self.env.ADMIN.stats())
        if path == "/billing":  # a worker that does not run: an error naming the binding
            return Response.json(await self.env.BILLING.charge(5))
        if path == "/dynamic":
            worker = self.env.LOADER.get("greeter-v1", greeter_code)
            answer = await worker.getEntrypoint().fetch(request)
            total = await worker.getEntrypoint().add(2, 3)
            return Response(
                await answer.text(), headers={"x-loads": str(len(LOADS)), "x-sum": str(total)}
            )
        return Response("gateway")
