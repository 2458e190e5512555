"""The local worker runtime: handler forms, requests, responses, errors, env, shims.

Each test writes a worker file into ``tmp_path``, builds the app with ``create_app`` and
drives it through ``httpx.ASGITransport`` (a real uvicorn socket where bytes on the wire
matter). The helpers here are shared by the other ``test_runtime_*`` modules.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from alchemy_nb.cloudflare.local._config import BindingConfig, WorkerConfig
from alchemy_nb.cloudflare.local.runtime import SHIM_PATH, WorkerLoadError, create_app
from alchemy_nb.errors import ConfigError

T = TypeVar("T")
URL = "http://127.0.0.1:8787"


# --------------------------------------------------------------------------- helpers


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def write_worker(folder: Path, source: str, name: str = "worker.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def worker_config(
    entry: Path, bindings: dict[str, Any] | None = None, url: str = URL
) -> WorkerConfig:
    typed: dict[str, BindingConfig] = dict(bindings or {})
    return {
        "app": "demo",
        "stage": "dev",
        "name": "api",
        "script_name": "demo-api-dev",
        "entry": str(entry),
        "compatibility_date": "2025-01-01",
        "compatibility_flags": ["python_workers"],
        "bindings": typed,
        "url": url,
        "version": "v1",
    }


def d1(tmp_path: Path, name: str = "db") -> dict[str, Any]:
    return {"type": "d1", "path": str(tmp_path / f"{name}.sqlite"), "database_name": name}


def kv(tmp_path: Path, name: str = "kv") -> dict[str, Any]:
    return {"type": "kv_namespace", "path": str(tmp_path / f"{name}.sqlite")}


def r2(tmp_path: Path, name: str = "files") -> dict[str, Any]:
    (tmp_path / name).mkdir(exist_ok=True)
    return {"type": "r2_bucket", "path": str(tmp_path / name), "bucket_name": name}


@asynccontextmanager
async def serve(config: WorkerConfig) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(config)
    try:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url=config["url"]) as client:
            yield app, client
    finally:
        await app.aclose()


def exercise(
    tmp_path: Path,
    source: str,
    check: Callable[[Any, httpx.AsyncClient], Awaitable[None]],
    bindings: dict[str, Any] | None = None,
) -> None:
    """Write ``source`` as a worker, serve it, and run ``check(app, client)``."""
    config = worker_config(write_worker(tmp_path / "src", source), bindings)

    async def main() -> None:
        async with serve(config) as (app, client):
            await check(app, client)

    asyncio.run(main())


@asynccontextmanager
async def on_socket(app: Any) -> AsyncIterator[int]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (an ephemeral port); yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port: int = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, ws="none")
    )
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task
        sock.close()


# --------------------------------------------------------------------------- handler forms


def test_default_class_fetch_gets_a_python_request_and_env(tmp_path: Path) -> None:
    source = """
        from workers import Request, Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                assert isinstance(request, Request)
                return Response(f"{request.method} {request.url} {self.env.GREETING}")
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.get("/hello?x=1")
        assert response.status_code == 200
        assert response.text == "GET http://127.0.0.1:8787/hello?x=1 hi"

    exercise(tmp_path, source, check, {"GREETING": {"type": "plain_text", "value": "hi"}})


def test_fetch_without_a_request_parameter_is_called_with_none(tmp_path: Path) -> None:
    source = """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self):
                return Response("no request needed")
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        assert (await client.get("/")).text == "no request needed"

    exercise(tmp_path, source, check)


def test_bare_on_fetch_gets_the_javascript_request(tmp_path: Path) -> None:
    source = """
        import js

        async def on_fetch(request, env):
            assert isinstance(request, js.Request)
            body = await request.text()
            return js.Response.new(
                f"{request.method} {request.headers.get('X-Thing')} {body} {env.NAME}"
            )
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.post("/", content=b"payload", headers={"x-thing": "42"})
        assert response.text == "POST 42 payload local"

    exercise(tmp_path, source, check, {"NAME": {"type": "plain_text", "value": "local"}})


def test_handler_decorated_on_fetch_gets_the_python_request(tmp_path: Path) -> None:
    source = """
        from workers import Request, Response, handler

        @handler
        async def on_fetch(request, env, ctx):
            assert isinstance(request, Request)
            data = await request.json()
            return Response.json({"got": data, "ctx": hasattr(ctx, "waitUntil")})
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.post("/", json={"a": [1, 2]})
        assert response.json() == {"got": {"a": [1, 2]}, "ctx": True}

    exercise(tmp_path, source, check)


def test_sync_on_fetch_with_only_a_request(tmp_path: Path) -> None:
    source = """
        from js import Response

        def on_fetch(request):
            return Response.new("Hello World!")
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.get("/")
        assert response.text == "Hello World!"
        assert response.headers["content-type"] == "text/plain;charset=UTF-8"

    exercise(tmp_path, source, check)


# --------------------------------------------------------------------------- requests


def test_request_surface(tmp_path: Path) -> None:
    source = """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                path = request.url.split("8787", 1)[1]
                if path == "/text":
                    return Response(await request.text())
                if path == "/bytes":
                    return Response(await request.bytes())
                if path == "/buffer":
                    buffer = await request.arrayBuffer()
                    return Response(buffer.to_bytes()[::-1])
                if path == "/js":
                    data = await request.js_object.json()
                    return Response.json({"name": data.name, "py": data.to_py()})
                headers = request.headers
                return Response.json(
                    {
                        "method": request.method,
                        "is_post": request.method == "POST",
                        "lower": headers.get("x-custom"),
                        "upper": headers.get("X-CUSTOM"),
                        "item": headers["X-Custom"],
                        "missing": headers.get("x-missing"),
                        "js": request.js_object.headers.get("X-Custom"),
                    }
                )
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.post("/headers", headers={"X-Custom": "v"})
        assert response.json() == {
            "method": "POST",
            "is_post": True,
            "lower": "v",
            "upper": "v",
            "item": "v",
            "missing": None,
            "js": "v",
        }
        assert (await client.put("/text", content="héllo".encode())).text == "héllo"
        binary = bytes(range(256))
        assert (await client.post("/bytes", content=binary)).content == binary
        assert (await client.post("/buffer", content=b"abc")).content == b"cba"
        response = await client.post("/js", json={"name": "x", "tags": [1]})
        assert response.json() == {"name": "x", "py": {"name": "x", "tags": [1]}}

    exercise(tmp_path, source, check)


# --------------------------------------------------------------------------- responses


RESPONSES = """
    from workers import Response, WorkerEntrypoint
    import js

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            path = js.URL.new(request.url).pathname
            if path == "/text":
                return Response("text")
            if path == "/json":
                return Response.json({"a": 1, "b": [True, None]}, status=201,
                                     headers={"x-extra": "1"})
            if path == "/json-typed":
                return Response.json([1], headers={"content-type": "application/vnd.x+json"})
            if path == "/binary":
                return Response(bytes(range(256)))
            if path == "/empty":
                return Response(None, status=204)
            if path == "/list-headers":
                return Response("ok", headers=[("set-cookie", "a=1"), ("set-cookie", "b=2"),
                                               ("X-Case", "Kept")])
            if path == "/bad-status":
                return Response("x", status=99)
            if path == "/body-on-204":
                return Response("x", status=204)
            if path == "/not-a-response":
                return {"oops": True}
            if path == "/js-json":
                return js.Response.json({"a": 1})
            if path == "/redirect":
                return Response.redirect("https://example.com/", 301)
            return Response("no route", status=404)
"""


def test_response_fidelity(tmp_path: Path) -> None:
    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.get("/text")
        assert (b"content-type", b"text/plain;charset=UTF-8") in response.headers.raw
        assert response.headers["content-length"] == "4"

        response = await client.get("/json")
        assert response.status_code == 201
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-extra"] == "1"
        assert response.content == b'{"a": 1, "b": [true, null]}'  # json.dumps, as Cloudflare

        response = await client.get("/json-typed")
        assert response.headers["content-type"] == "application/vnd.x+json"

        response = await client.get("/binary")
        assert response.content == bytes(range(256))
        assert "content-type" not in response.headers

        response = await client.get("/empty")
        assert response.status_code == 204
        assert response.content == b""
        assert "content-length" not in response.headers

        response = await client.get("/list-headers")
        assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
        assert response.headers["x-case"] == "Kept"

        response = await client.get("/js-json")
        assert response.content == b'{"a":1}'
        assert response.headers["content-type"] == "application/json"

        response = await client.get("/redirect")
        assert response.status_code == 301
        assert response.headers["location"] == "https://example.com/"

    exercise(tmp_path, RESPONSES, check)


def test_bad_responses_are_500s_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.get("/bad-status")
        assert response.status_code == 500
        assert "RangeError" in response.text or "200 to 599" in response.text
        response = await client.get("/body-on-204")
        assert response.status_code == 500
        assert "null body status" in response.text
        response = await client.get("/not-a-response")
        assert response.status_code == 500
        assert "returned dict, not a Response" in response.text

    exercise(tmp_path, RESPONSES, check)
    assert "not a Response" in capsys.readouterr().err


def test_response_header_bytes_on_the_wire(tmp_path: Path) -> None:
    config = worker_config(write_worker(tmp_path / "src", RESPONSES))

    async def main() -> bytes:
        app = create_app(config)
        try:
            async with on_socket(app) as port:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /text HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                await writer.drain()
                data = await reader.read()
                writer.close()
                await writer.wait_closed()
                return data
        finally:
            await app.aclose()

    data = run(main())
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"\r\ncontent-type: text/plain;charset=UTF-8\r\n" in head + b"\r\n"
    assert body == b"text"


def test_a_raising_handler_gives_500_and_the_app_keeps_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/boom"):
                    raise ValueError("kaboom")
                return Response("fine")
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.get("/boom")
        assert response.status_code == 500
        assert response.text == "Worker threw exception: ValueError: kaboom\n"
        assert (await client.get("/ok")).text == "fine"
        assert (await client.get("/boom")).status_code == 500
        assert (await client.get("/ok")).status_code == 200

    exercise(tmp_path, source, check)
    err = capsys.readouterr().err
    assert "[worker api] GET /boom raised ValueError: kaboom" in err
    assert "Traceback" in err
    assert 'raise ValueError("kaboom")' in err


# --------------------------------------------------------------------------- loading


def _load_error(tmp_path: Path, source: str, name: str = "worker.py") -> WorkerLoadError:
    config = worker_config(write_worker(tmp_path / "src", source, name))
    with pytest.raises(WorkerLoadError) as info:
        create_app(config)
    return info.value


def test_a_module_that_fails_to_import(tmp_path: Path) -> None:
    error = _load_error(tmp_path, "import not_a_real_module_xyz\n")
    message = str(error)
    assert isinstance(error, ConfigError)
    assert str(tmp_path / "src" / "worker.py") in message
    assert "ModuleNotFoundError: No module named 'not_a_real_module_xyz'" in message
    assert "line 1" in message
    assert "Fix: add 'not_a_real_module_xyz' to the worker's dependencies" in message


def test_a_module_that_raises_at_import(tmp_path: Path) -> None:
    error = _load_error(tmp_path, "x = 1\nraise RuntimeError('bad config')\n")
    assert "RuntimeError: bad config" in str(error)
    assert "line 2" in str(error)
    assert "Fix: fix the error in the module's top-level code" in str(error)


def test_a_syntax_error(tmp_path: Path) -> None:
    error = _load_error(tmp_path, "def broken(:\n    pass\n")
    assert "SyntaxError" in str(error)
    assert f"Fix: fix the syntax error at {tmp_path / 'src' / 'worker.py'}:1" in str(error)


def test_a_module_without_a_handler(tmp_path: Path) -> None:
    error = _load_error(tmp_path, "def helper():\n    return 1\n")
    assert "has no handler" in str(error)
    assert "class Default(WorkerEntrypoint)" in str(error)
    assert "on_fetch" in str(error)


def test_default_must_be_a_worker_entrypoint(tmp_path: Path) -> None:
    error = _load_error(tmp_path, "class Default:\n    async def fetch(self, request): ...\n")
    assert "not a subclass of WorkerEntrypoint" in str(error)


def test_module_names_that_would_shadow_other_modules(tmp_path: Path) -> None:
    for name in ("json.py", "js.py", "workers.py"):
        error = _load_error(tmp_path / name, "def on_fetch(request): ...\n", name)
        assert "rename" in str(error)


def test_a_missing_entry_file(tmp_path: Path) -> None:
    with pytest.raises(WorkerLoadError, match="no module file"):
        create_app(worker_config(tmp_path / "nope.py"))


def test_a_binding_that_cannot_be_opened(tmp_path: Path) -> None:
    entry = write_worker(tmp_path / "src", "def on_fetch(request): ...\n")
    bad = {"type": "d1", "path": str(tmp_path / "missing" / "db.sqlite"), "database_name": "db"}
    with pytest.raises(WorkerLoadError) as info:
        create_app(worker_config(entry, {"DB": bad}))
    assert "binding 'DB' (d1) could not be opened" in str(info.value)
    assert "Fix: deploy the resource" in str(info.value)


def test_an_unknown_binding_type(tmp_path: Path) -> None:
    entry = write_worker(tmp_path / "src", "def on_fetch(request): ...\n")
    with pytest.raises(WorkerLoadError, match="unknown type 'hyperdrive'"):
        create_app(worker_config(entry, {"H": {"type": "hyperdrive"}}))


def test_sibling_modules_import_from_the_worker_folder(tmp_path: Path) -> None:
    write_worker(
        tmp_path / "src", "def greet(name):\n    return f'hello {name}'\n", "greeting_mod.py"
    )
    source = """
        from greeting_mod import greet
        from workers import Response

        async def on_fetch(request, env):
            return Response(greet("sibling"))
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        assert (await client.get("/")).text == "hello sibling"

    exercise(tmp_path, source, check)


# --------------------------------------------------------------------------- env


def test_env_vars_secrets_and_missing_bindings(tmp_path: Path) -> None:
    source = """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/missing"):
                    return Response(self.env.NOPE)
                env = self.env
                return Response.json([env.MODE, env["TOKEN"], "MODE" in env, sorted(env)])
    """
    bindings = {
        "MODE": {"type": "plain_text", "value": "dev"},
        "TOKEN": {"type": "secret_text", "value": "s3cret"},
    }

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        assert (await client.get("/")).json() == ["dev", "s3cret", True, ["MODE", "TOKEN"]]
        assert "s3cret" not in repr(app.env)
        assert repr(app.env) == "Env(MODE=<plain_text>, TOKEN=<secret_text>)"
        response = await client.get("/missing")
        assert response.status_code == 500
        assert "env has no binding named 'NOPE'" in response.text
        assert "MODE, TOKEN" in response.text

    exercise(tmp_path, source, check, bindings)


def test_bindings_not_implemented_yet_fail_only_when_used(tmp_path: Path) -> None:
    source = """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/use"):
                    stub = self.env.LISTS.get(self.env.LISTS.idFromName("x"))
                return Response("constructed fine")
    """
    bindings = {
        "LISTS": {"type": "durable_object_namespace", "class_name": "L", "path": str(tmp_path)},
        "FLOW": {
            "type": "workflow",
            "class_name": "F",
            "workflow_name": "f",
            "path": str(tmp_path / "wf.sqlite"),
        },
        "JOBS": {"type": "queue", "queue_name": "q", "path": str(tmp_path / "q.sqlite")},
    }

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        assert (await client.get("/")).text == "constructed fine"
        response = await client.get("/use")
        assert response.status_code == 500
        assert "durable_object_namespace binding 'LISTS' is not supported" in response.text
        for name, kind in (("FLOW", "workflow"), ("JOBS", "queue")):
            with pytest.raises(NotImplementedError, match=f"{kind} binding '{name}'"):
                _ = app.env[name].create

    from alchemy_nb.cloudflare.local.runtime import _env

    saved = dict(_env._FACTORIES)
    for kind in ("durable_object_namespace", "workflow", "queue"):
        _env.register_binding_type(
            kind, lambda ctx: _env.UnsupportedBinding(ctx.name, str(ctx.config["type"]))
        )
    try:
        exercise(tmp_path, source, check, bindings)
    finally:
        _env._FACTORIES.clear()
        _env._FACTORIES.update(saved)


# --------------------------------------------------------------------------- scheduled, lifespan


def test_scheduled_handlers_run_from_the_wrangler_endpoint(tmp_path: Path) -> None:
    source = """
        from workers import Response, WorkerEntrypoint

        RAN = []

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(",".join(RAN))

            async def scheduled(self, controller, env, ctx):
                RAN.append(f"{controller.cron}@{int(controller.scheduledTime)}:{env.MODE}")
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.get("/cdn-cgi/handler/scheduled", params={"cron": "*/5 * * * *"})
        assert response.status_code == 200
        assert response.text == "Ran scheduled event"
        await client.get("/__scheduled", params={"cron": "0 0 * * *", "time": "1700000000"})
        await app.run_scheduled("1 2 3 4 5", 5.0)
        first, *rest = (await client.get("/")).text.split(",")
        assert first.startswith("*/5 * * * *@")
        assert first.endswith(":dev")
        assert rest == ["0 0 * * *@1700000000000:dev", "1 2 3 4 5@5:dev"]

    exercise(tmp_path, source, check, {"MODE": {"type": "plain_text", "value": "dev"}})


def test_module_level_on_scheduled_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = """
        async def on_scheduled(controller, env, ctx):
            raise RuntimeError("cron failed " + controller.cron)
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.get("/cdn-cgi/handler/scheduled?cron=x")
        assert response.status_code == 500
        assert "RuntimeError: cron failed x" in response.text
        response = await client.get("/")
        assert response.status_code == 500
        assert response.text == "Handler does not export a fetch() function.\n"

    exercise(tmp_path, source, check)
    assert "scheduled event (cron 'x') raised RuntimeError" in capsys.readouterr().err


def test_no_scheduled_handler(tmp_path: Path) -> None:
    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.get("/cdn-cgi/handler/scheduled")
        assert response.status_code == 500
        assert "does not export a scheduled() function" in response.text

    exercise(tmp_path, RESPONSES, check)


def test_wait_until_tasks_finish_after_the_response(tmp_path: Path) -> None:
    source = """
        import asyncio
        from workers import Response, WorkerEntrypoint

        DONE = []

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                async def later():
                    await asyncio.sleep(0.01)
                    DONE.append("later")
                self.ctx.waitUntil(later())
                return Response("now")
    """

    async def main() -> list[str]:
        config = worker_config(write_worker(tmp_path / "src", source))
        async with serve(config) as (app, client):
            assert (await client.get("/")).text == "now"
            done: list[str] = app.module.DONE
        return done

    assert run(main()) == ["later"]


def test_lifespan_protocol_closes_the_bindings(tmp_path: Path) -> None:
    entry = write_worker(tmp_path / "src", "def on_fetch(request): ...\n")
    app = create_app(worker_config(entry, {"DB": d1(tmp_path)}))

    async def main() -> list[str]:
        sent: list[str] = []
        messages = asyncio.Queue[dict[str, str]]()
        for kind in ("lifespan.startup", "lifespan.shutdown"):
            messages.put_nowait({"type": kind})

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        await app({"type": "lifespan"}, messages.get, send)
        return sent

    assert run(main()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(Exception, match="closed database"):
        run(app.env.DB.prepare("SELECT 1").first())


# --------------------------------------------------------------------------- shims


def test_js_and_pyodide_idioms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = """
        from js import JSON, URL, Headers, Object, Response, console
        from pyodide.ffi import JsProxy, create_proxy, jsnull, to_js

        async def on_fetch(request, env):
            url = URL.new(request.url)
            name = url.searchParams.get("name")
            headers = Headers.new({"x-from": "headers-new"}.items())
            headers.append("x-path", url.pathname)
            init = to_js({"status": 202, "headers": headers}, dict_converter=Object.fromEntries)
            assert init.status == 202 and isinstance(init, JsProxy)
            data = JSON.parse(JSON.stringify({"who": name, "n": [1, 2]}))
            console.log("handled", name, data)
            assert create_proxy(on_fetch) is on_fetch
            assert not jsnull and jsnull.to_py() is None
            payload = {
                "who": data.who,
                "n": data.n.to_py(),
                "hostname": url.hostname,
                "port": url.port,
                "search": url.search,
                "missing": url.searchParams.get("nope"),
                "entries": Object.fromEntries([["a", 1]]).to_py(),
            }
            return Response.new(JSON.stringify(payload), init)
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.get("/p/q", params={"name": "ada lovelace"})
        assert response.status_code == 202
        assert response.headers["x-from"] == "headers-new"
        assert response.headers["x-path"] == "/p/q"
        assert response.json() == {
            "who": "ada lovelace",
            "n": [1, 2],
            "hostname": "127.0.0.1",
            "port": "8787",
            "search": "?name=ada+lovelace",
            "missing": None,
            "entries": {"a": 1},
        }

    exercise(tmp_path, source, check)
    assert 'handled ada lovelace {"who":"ada lovelace","n":[1,2]}' in capsys.readouterr().out


def test_url_parsing() -> None:
    run(_url_checks())


async def _url_checks() -> None:
    from alchemy_nb.cloudflare.local.runtime import install_shim

    install_shim()
    import js

    url = js.URL.new("HTTPS://Example.COM:443/a b/c?x=1&y=two%20words#frag")
    assert url.href == "https://example.com/a%20b/c?x=1&y=two%20words#frag"
    assert (url.protocol, url.host, url.port, url.pathname) == (
        "https:",
        "example.com",
        "",
        "/a%20b/c",
    )
    assert url.searchParams.get("y") == "two words"
    url.searchParams.set("x", "2")
    assert url.search == "?x=2&y=two+words"
    assert js.URL.new("/rel?q=1", "http://h:8080/base").href == "http://h:8080/rel?q=1"
    assert js.URL.new("http://[::1]:9000/").hostname == "[::1]"
    assert not js.URL.canParse("not a url")
    with pytest.raises(Exception, match="Invalid URL"):
        js.URL.new("nope")


def test_service_binding_reaches_another_worker_over_http(tmp_path: Path) -> None:
    other = write_worker(
        tmp_path / "other",
        """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                body = await request.text()
                return Response(f"other saw {request.method} {request.url} [{body}]",
                                headers={"x-other": "yes"})
        """,
        "other_worker.py",
    )
    caller_source = """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/forward"):
                    return await self.env.OTHER.fetch(request)
                reply = await self.env.OTHER.fetch("https://other.internal/check?a=1",
                                                   method="POST", body="ping")
                return Response(f"{reply.status} {reply.headers.get('x-other')} "
                                + await reply.text())
    """

    async def main() -> tuple[str, str]:
        other_app = create_app(worker_config(other))
        try:
            async with on_socket(other_app) as port:
                caller = worker_config(
                    write_worker(tmp_path / "caller", caller_source, "caller_worker.py"),
                    {"OTHER": {"type": "service", "url": f"http://127.0.0.1:{port}"}},
                )
                async with serve(caller) as (_app, client):
                    direct = (await client.get("/")).text
                    forwarded = (await client.post("/forward", content="body!")).text
        finally:
            await other_app.aclose()
        return direct, forwarded

    direct, forwarded = run(main())
    assert direct == "200 yes other saw POST http://other.internal/check?a=1 [ping]"
    assert forwarded == "other saw POST http://127.0.0.1:8787/forward [body!]"


WORKERS_ONLY = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response.json({"hello": "world", "url": request.url})
"""


def test_a_worker_importing_only_workers_runs_without_the_runtime(tmp_path: Path) -> None:
    """The same file imports and runs with only the shim folder: no alchemy_nb module loads."""
    entry = write_worker(tmp_path / "src", WORKERS_ONLY, "entry.py")
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        sys.path[:0] = [{SHIM_PATH!r}, {str(entry.parent)!r}]
        before = set(sys.modules)
        import entry
        added = sorted(set(sys.modules) - before)
        from workers import Request
        response = asyncio.run(entry.Default(None, None).fetch(Request("https://x.dev/p")))
        body = asyncio.run(response.text())
        print(json.dumps({{"added": added, "status": response.status, "body": body,
                          "alchemy": [m for m in sys.modules if m.startswith("alchemy_nb")]}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout)
    assert report["alchemy"] == []
    non_stdlib = {m for m in report["added"] if m.split(".")[0] not in sys.stdlib_module_names}
    assert non_stdlib == {"entry", "workers", "js", "pyodide", "pyodide.ffi"}
    assert report["status"] == 200
    assert json.loads(report["body"]) == {"hello": "world", "url": "https://x.dev/p"}


def test_the_same_file_serves_through_the_runtime(tmp_path: Path) -> None:
    async def check(app: Any, client: httpx.AsyncClient) -> None:
        assert (await client.get("/p")).json() == {"hello": "world", "url": f"{URL}/p"}

    exercise(tmp_path, WORKERS_ONLY, check)


def test_form_data(tmp_path: Path) -> None:
    source = """
        from workers import FormData, Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/echo-form"):
                    form = FormData({"a": "1"})
                    form.append("a", "2")
                    return Response(form)
                form = await request.form_data()
                upload = form.get("file")
                return Response.json({
                    "name": form["name"],
                    "tags": form.get_all("tag"),
                    "file": None if upload is None else [upload.name, await upload.text()],
                })
    """

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.post("/", data={"name": "ada", "tag": ["x", "y"]})
        assert response.json() == {"name": "ada", "tags": ["x", "y"], "file": None}
        response = await client.post(
            "/", data={"name": "bo"}, files={"file": ("notes.txt", b"hello file", "text/plain")}
        )
        assert response.json() == {"name": "bo", "tags": [], "file": ["notes.txt", "hello file"]}
        echoed = await client.get("/echo-form")
        assert echoed.headers["content-type"].startswith("multipart/form-data; boundary=")
        assert echoed.text.count('name="a"') == 2

    exercise(tmp_path, source, check)


def test_outbound_fetch_and_pyfetch(tmp_path: Path) -> None:
    target = write_worker(
        tmp_path / "target",
        """
        from workers import Response

        async def on_fetch(request, env):
            return Response.json({"method": request.method, "body": await request.text()})
        """,
        "target_worker.py",
    )
    source = """
        from pyodide.http import pyfetch
        from workers import Request, Response, WorkerEntrypoint, fetch

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                base = self.env.TARGET
                first = await fetch(base + "/a", method="POST", body="one")
                second = await pyfetch(base + "/b")
                third = await fetch(Request(base + "/c", method="PUT", body="three"))
                return Response.json([await first.json(), await second.json(),
                                      await third.json(), first.status, second.ok])
    """

    async def main() -> Any:
        target_app = create_app(worker_config(target))
        try:
            async with on_socket(target_app) as port:
                config = worker_config(
                    write_worker(tmp_path / "src", source),
                    {"TARGET": {"type": "plain_text", "value": f"http://127.0.0.1:{port}"}},
                )
                async with serve(config) as (_app, client):
                    return (await client.get("/")).json()
        finally:
            await target_app.aclose()

    assert run(main()) == [
        {"method": "POST", "body": "one"},
        {"method": "GET", "body": ""},
        {"method": "PUT", "body": "three"},
        200,
        True,
    ]
