from urllib.parse import urlparse

from js import HTMLRewriter
from pyodide.ffi import to_js
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path == "/text":
            return Response("hello")
        if path == "/json":
            return Response.json({"hello": "world", "n": 1})
        if path == "/bytes":
            return Response(bytes([0, 1, 2, 255]))
        if path == "/buffer":
            return Response(to_js(bytes([104, 105])).buffer)
        if path == "/row":
            row = await self.env.DB.prepare("SELECT * FROM users WHERE id = ?").bind(1).first()
            return Response.json(row)
        if path == "/all":
            res = await self.env.DB.prepare("SELECT name FROM users ORDER BY id").all()
            raw = await self.env.DB.prepare("SELECT id, name FROM users ORDER BY id").raw()
            return Response.json(
                {
                    "names": [row["name"] for row in res["results"]],
                    "rows_read": res["meta"]["rows_read"],
                    "raw": raw,
                }
            )
        if path == "/url":
            return Response(request.url)
        if path == "/js":
            js_request = request.js_object
            return Response(f"{js_request.method} {js_request.url}")
        if path == "/ai":
            answer = await self.env.AI.run("@cf/meta/llama-3.1-8b-instruct", {"prompt": "hi"})
            return Response.json(answer)
        if path == "/vectors":
            return Response.json(await self.env.VECTORS.query([0.1, 0.2]))
        if path == "/rewrite":
            return HTMLRewriter.new().on("a", object()).transform(Response("<a></a>"))
        return Response("not found", status=404)
