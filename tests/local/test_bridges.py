"""The framework bridges (``asgi``, ``workers.asgi``, ``workers.wsgi``), ``run_sync``,
``from workers import env`` and the bindings only Cloudflare serves, in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_runtime import d1, exercise


def test_asgi_fetch_serves_fastapi_with_env_in_the_scope(tmp_path: Path) -> None:
    source = """
        from fastapi import FastAPI, Request
        from pydantic import BaseModel
        from workers import WorkerEntrypoint

        app = FastAPI()

        class Item(BaseModel):
            name: str
            price: float

        @app.get("/env")
        async def env(req: Request):
            return {"message": req.scope["env"].MESSAGE, "path": req.url.path,
                    "q": req.query_params.get("q")}

        @app.post("/items/")
        async def create(item: Item):
            return item

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                import asgi
                return await asgi.fetch(app, request.js_object, self.env)
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        got = await client.get("/env?q=1")
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/json"
        assert got.content == b'{"message":"hi","path":"/env","q":"1"}'
        posted = await client.post("/items/", json={"name": "a", "price": 2})
        assert posted.json() == {"name": "a", "price": 2.0}
        bad = await client.post("/items/", json={"name": "a"})
        assert bad.status_code == 422

    exercise(tmp_path, source, check, {"MESSAGE": {"type": "plain_text", "value": "hi"}})


def test_asgi_request_that_was_read_or_rebuilt_is_translated(tmp_path: Path) -> None:
    source = """
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
        from js import Request as JsRequest
        from workers import WorkerEntrypoint, asgi

        async def echo(request):
            body = await request.body()
            return PlainTextResponse(f"{request.method} {request.url.path} {body.decode()} "
                                     f"{request.headers.get('x-tag')}")

        app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                rebuilt = JsRequest.new(request.url, method="POST",
                                        headers={"x-tag": "t"}, body=await request.text())
                return await asgi.fetch(app, rebuilt, self.env)
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        got = await client.post("/echo", content=b"payload")
        assert got.text == "POST /echo payload t"
        assert got.headers["content-type"] == "text/plain; charset=utf-8"

    exercise(tmp_path, source, check)


def test_asgi_streams_a_body_sent_in_parts_and_runs_lifespan_per_request(
    tmp_path: Path,
) -> None:
    source = """
        import asgi
        from workers import WorkerEntrypoint

        EVENTS = []

        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    EVENTS.append(message["type"])
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    else:
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            await send({"type": "http.response.start", "status": 201,
                        "headers": [(b"x-parts", b"3")]})
            for part in (b"a", b"b"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b"c"})

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return await asgi.fetch(app, request, self.env)
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        for _ in range(2):
            got = await client.get("/")
            assert (got.status_code, got.content, got.headers["x-parts"]) == (201, b"abc", "3")
        assert app.module.EVENTS == ["lifespan.startup", "lifespan.shutdown"] * 2

    exercise(tmp_path, source, check)


def test_wsgi_flask_reaches_d1_through_run_sync_and_module_level_env(tmp_path: Path) -> None:
    source = """
        from flask import Flask, jsonify, request as flask_request
        from pyodide.ffi import run_sync
        from workers import WorkerEntrypoint, env, wsgi

        app = Flask(__name__)

        @app.post("/notes")
        def add():
            title = flask_request.get_json()["title"]
            res = run_sync(env.DB.prepare("INSERT INTO notes (title) VALUES (?)")
                           .bind(title).run())
            return jsonify(id=res["meta"]["last_row_id"]), 201

        @app.get("/notes")
        def notes():
            rows = run_sync(env.DB.prepare("SELECT id, title FROM notes").raw())
            return jsonify(rows=rows, via=flask_request.environ["workers.env"] is env)

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                await self.env.DB.exec(
                    "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, title TEXT)"
                )
                return await wsgi.fetch(app, request, self.env)
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        added = await client.post("/notes", json={"title": "one"})
        assert (added.status_code, added.json()) == (201, {"id": 1})
        listed = await client.get("/notes")
        assert listed.json() == {"rows": [[1, "one"]], "via": True}
        assert listed.headers["content-type"] == "application/json"

    exercise(tmp_path, source, check, {"DB": d1(tmp_path)})


def test_run_sync_on_the_event_loop_runs_what_does_not_wait_and_refuses_what_would(
    tmp_path: Path,
) -> None:
    source = """
        import asyncio
        from pyodide.ffi import run_sync
        from workers import Response, WorkerEntrypoint

        def count(env):
            return run_sync(env.DB.prepare("SELECT 41 + 1 AS n").first())["n"]

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/sleep"):
                    run_sync(asyncio.sleep(0.01))
                return Response(str(count(self.env)))
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        assert (await client.get("/")).text == "42"
        refused = await client.get("/sleep")
        assert refused.status_code == 500
        assert "run_sync() was called on the event loop's thread" in refused.text

    exercise(tmp_path, source, check, {"DB": d1(tmp_path)})


def test_cloudflare_only_bindings_fail_on_first_use_and_nothing_else(tmp_path: Path) -> None:
    source = """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/ai"):
                    return Response.json(await self.env.AI.run("model", {}))
                return Response(repr(self.env.AI))
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        failed = await client.get("/ai")
        assert failed.status_code == 500
        assert "env.AI.run: AI is a Workers AI binding" in failed.text
        assert "deploy the worker to Cloudflare" in failed.text
        fine = await client.get("/")
        assert fine.text == "<Workers AI binding 'AI' (runs only on Cloudflare)>"

    exercise(tmp_path, source, check, {"AI": {"type": "remote_only", "service": "ai"}})


@pytest.mark.parametrize("module", ["asgi", "wsgi"])
def test_a_worker_module_named_like_a_runtime_module_is_refused(
    tmp_path: Path, module: str
) -> None:
    from alchemy_nb.cloudflare.local.runtime import WorkerLoadError, create_app

    from .test_runtime import worker_config, write_worker

    entry = write_worker(tmp_path, "x = 1\n", name=f"{module}.py")
    with pytest.raises(WorkerLoadError, match=f"module named '{module}'"):
        create_app(worker_config(entry))


def test_d1_rows_answer_dict_methods_too(tmp_path: Path) -> None:
    source = """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                res = await self.env.DB.prepare("SELECT 1 AS id, 'a' AS name").all()
                row = res["results"][0]
                return Response.json({
                    "values": list(row.values()), "keys": list(row), "len": len(row),
                    "items": dict(row.items()), "get": [row.get("name"), row.get("x", 5)],
                    "attr": row.name, "last": res["meta"]["last_row_id"],
                })
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        assert (await client.get("/")).json() == {
            "values": [1, "a"],
            "keys": ["id", "name"],
            "len": 2,
            "items": {"id": 1, "name": "a"},
            "get": ["a", 5],
            "attr": "a",
            "last": 0,
        }

    exercise(tmp_path, source, check, {"DB": d1(tmp_path)})


def test_module_level_env_is_bound_while_the_module_imports(tmp_path: Path) -> None:
    source = """
        from workers import Response, WorkerEntrypoint, env

        GREETING = env.MESSAGE.upper()  # the top level reads a var, as on Cloudflare

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                row = await env.DB.prepare("SELECT 2 AS n").first()
                return Response(f"{GREETING} {row['n']} {env is self.env}")
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        assert (await client.get("/")).text == "HI 2 True"

    bindings = {"MESSAGE": {"type": "plain_text", "value": "hi"}, "DB": d1(tmp_path)}
    exercise(tmp_path, source, check, bindings)
