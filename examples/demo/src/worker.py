"""The demo worker, in the shape of a Cloudflare Python Worker: it runs there unchanged."""

from datetime import UTC, datetime
from urllib.parse import urlparse

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        env = self.env
        if path == "/api/health":
            return Response.json(
                {
                    "status": "ok",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "release": getattr(env, "ALCHEMY_RELEASE", None) or env.RELEASE,
                }
            )
        if path == "/":
            return Response(f"{env.GREETING}\n")
        if path.startswith("/kv/"):
            key = path[len("/kv/") :]
            if request.method == "PUT":
                await env.CACHE.put(key, await request.text())
                return Response("stored\n", status=201)
            value = await env.CACHE.get(key)
            return Response(value) if value is not None else Response("not found\n", status=404)
        if path.startswith("/d1/users/"):
            user_id = int(path.rsplit("/", 1)[1])
            row = (
                await env.DB.prepare("SELECT id, name, email FROM users WHERE id = ?")
                .bind(user_id)
                .first()
            )
            await env.DB.prepare("INSERT INTO visits (path) VALUES (?)").bind(path).run()
            return Response.json(row) if row is not None else Response("no such user\n", status=404)
        if path.startswith("/r2/"):
            key = path[len("/r2/") :]
            if request.method == "PUT":
                obj = await env.FILES.put(
                    key, await request.text(), {"httpMetadata": {"contentType": "text/plain"}}
                )
                return Response.json(
                    {"key": obj.key, "size": obj.size, "etag": obj.etag}, status=201
                )
            obj = await env.FILES.get(key)
            if obj is None:
                return Response("not found\n", status=404)
            return Response(await obj.text(), headers={"etag": obj.httpEtag})
        return Response("not found\n", status=404)
