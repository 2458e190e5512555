"""The local stand-in for Cloudflare's ``asgi`` module: serve an ASGI app (FastAPI,
Starlette) from a worker's fetch handler.

As on Cloudflare::

    from fastapi import FastAPI, Request
    from workers import WorkerEntrypoint

    app = FastAPI()

    @app.get("/env")
    async def env(req: Request):
        return {"message": req.scope["env"].MESSAGE}

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            import asgi
            return await asgi.fetch(app, request.js_object, self.env)

Each call runs one ASGI lifespan cycle around the request (startup, the request,
shutdown), as Cloudflare's bridge does (skipped for a Starlette or FastAPI app whose
lifespan has no handler, where it would do nothing); the bindings are in ``scope["env"]``. A request
that arrives unchanged from the runtime reuses the server's own ASGI scope and body
stream (nothing is copied); any other request is translated from its URL and headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import js

__all__ = ["ASGI", "entrypoint", "fetch", "request_to_scope", "websocket"]

ASGI = {"spec_version": "2.0", "version": "3.0"}
NULL_BODY_STATUSES = frozenset({101, 103, 204, 205, 304})
logger = logging.getLogger("asgi")

Message = dict[str, Any]


def request_to_scope(req: Any, env: Any, ws: bool = False) -> dict[str, Any]:
    """The ASGI scope of ``req`` with ``env`` in ``scope["env"]``."""
    request = js._bridged_request(req, "asgi")
    original = getattr(request, "_scope", None)
    if original is not None and request._url is None and request._headers is None and not ws:
        scope = dict(original)  # unchanged since it arrived: the server's scope is exact
        scope["env"] = env
        scope["http_version"] = "1.1"
        scope["asgi"] = ASGI
        return scope
    url = js.URL(request.url)
    return {
        "asgi": ASGI,
        "type": "websocket" if ws else "http",
        "http_version": "1.1",
        "method": request.method,
        "scheme": url.protocol[:-1],
        "path": unquote(url.pathname),
        "raw_path": url.pathname.encode(),
        "query_string": url.search[1:].encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers],
        "env": env,
    }


def _default_lifespan(app: Any) -> bool:
    """Whether ``app`` is a Starlette/FastAPI app whose lifespan does nothing (no
    ``lifespan=``, no startup or shutdown handler): running it would change nothing."""
    router = getattr(app, "router", None)
    context = getattr(router, "lifespan_context", None)
    return (
        context is not None
        and type(context).__name__ == "_DefaultLifespan"
        and not getattr(router, "on_startup", True)
        and not getattr(router, "on_shutdown", True)
    )


async def _start_application(app: Any) -> Callable[[], Awaitable[None]]:
    """One lifespan startup; returns the matching shutdown (a no-op without lifespan)."""
    if _default_lifespan(app):
        return _nothing
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    inbox.put_nowait({"type": "lifespan.startup"})
    startup: asyncio.Future[bool] = loop.create_future()
    stopped: asyncio.Future[None] = loop.create_future()

    async def send(message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete" and not startup.done():
            startup.set_result(True)
        elif kind == "lifespan.startup.failed" and not startup.done():
            startup.set_exception(
                RuntimeError(message.get("message") or "ASGI lifespan startup failed")
            )
        elif kind == "lifespan.shutdown.complete" and not stopped.done():
            stopped.set_result(None)
        elif kind == "lifespan.shutdown.failed" and not stopped.done():
            stopped.set_exception(
                RuntimeError(message.get("message") or "ASGI lifespan shutdown failed")
            )

    async def run() -> None:
        try:
            await app({"type": "lifespan", "asgi": ASGI, "state": {}}, inbox.get, send)
        except Exception as exc:
            if not startup.done():  # no lifespan support: serve without it
                startup.set_result(False)
                return
            logger.exception("Exception in ASGI lifespan application", exc_info=exc)
        if not startup.done():
            startup.set_result(False)
        if not stopped.done():
            stopped.set_result(None)

    task = asyncio.ensure_future(run())
    if not await startup:
        await task
        return _nothing

    async def shutdown() -> None:
        inbox.put_nowait({"type": "lifespan.shutdown"})
        await stopped
        await task

    return shutdown


async def _nothing() -> None:
    return None


async def _process(app: Any, request: js.Request, env: Any) -> js.Response:
    scope = request_to_scope(request, env)
    finished = asyncio.Event()
    receive = _receive(request, finished)
    loop = asyncio.get_running_loop()
    result: asyncio.Future[js.Response] = loop.create_future()
    start: Message = {}
    chunks: asyncio.Queue[bytes | None] | None = None

    async def send(message: Message) -> None:
        nonlocal chunks, start
        kind = message["type"]
        if kind == "http.response.start":
            start = message
            return
        if kind != "http.response.body" or not start:
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if chunks is not None:
            if body:
                chunks.put_nowait(bytes(body))
            if not more:
                chunks.put_nowait(None)
                finished.set()
            return
        status = int(start["status"])
        headers = js.Headers._trusted(
            [
                (k.decode("latin-1").lower(), v.decode("latin-1"))
                for k, v in start.get("headers", ())
            ]
        )
        if more:  # a streamed body: later chunks flow through a queue
            chunks = asyncio.Queue()
            if body:
                chunks.put_nowait(bytes(body))
            stream = js.ReadableStream(_drain(chunks))
            result.set_result(js.Response._make(stream, status, "", headers))
            return
        data = None if status in NULL_BODY_STATUSES else bytes(body)
        result.set_result(js.Response._make(data, status, "", headers))
        finished.set()

    async def run() -> None:
        try:
            await app(scope, receive, send)
            if not result.done():
                raise RuntimeError("The application did not generate a response")
        except Exception as exc:
            if not result.done():
                result.set_exception(exc)
            else:
                logger.exception("Exception in ASGI application after response started")
                if chunks is not None:
                    chunks.put_nowait(None)
            finished.set()

    task = asyncio.ensure_future(run())
    try:
        response = await result
    except Exception:
        await task
        raise
    if chunks is None:
        await task
    else:
        _background.add(task)
        task.add_done_callback(_background.discard)
    return response


_background: set[asyncio.Future[Any]] = set()


def _receive(request: js.Request, finished: asyncio.Event) -> Callable[[], Awaitable[Message]]:
    raw = getattr(request, "_receive", None)
    if raw is not None and request._body is None and not request._body_used:
        # The body was not touched: the app reads it straight from the server.
        request._receive = None
        request._body_used = True
        sent_disconnect = False

        async def passthrough() -> Message:
            nonlocal sent_disconnect
            if sent_disconnect:
                await finished.wait()
                return {"type": "http.disconnect"}
            message: Message = await raw()
            if message["type"] == "http.request" and not message.get("more_body", False):
                sent_disconnect = True
            return message

        return passthrough
    pending: list[Message] | None = None

    async def buffered() -> Message:
        nonlocal pending
        if pending is None:
            body = request.body
            data = await body._read_all() if body is not None else b""
            pending = [{"type": "http.request", "body": data, "more_body": False}]
        if pending:
            return pending.pop()
        await finished.wait()
        return {"type": "http.disconnect"}

    return buffered


async def _drain(chunks: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while True:
        chunk = await chunks.get()
        if chunk is None:
            return
        yield chunk


async def fetch(app: Any, req: Any, env: Any, ctx: Any = None) -> js.Response:
    """Serve ``req`` with the ASGI application ``app``; ``env`` becomes ``scope["env"]``."""
    request = js._bridged_request(req, "asgi")
    shutdown = await _start_application(app)
    try:
        return await _process(app, request, env)
    except Exception:
        logger.exception("ASGI request failed")
        raise
    finally:
        await shutdown()


async def websocket(app: Any, req: Any, env: Any = None) -> js.Response:
    """Serve a WebSocket upgrade with ``app`` over a ``WebSocketPair``, as Cloudflare does."""
    pair_type = getattr(js, "WebSocketPair", None)
    if pair_type is None:
        raise NotImplementedError("asgi.websocket(): this local runtime has no WebSocketPair")
    client, server = pair_type.new().object_values()
    server.accept()
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})

    def on_message(event: Any) -> None:
        data = event.data
        key = "text" if isinstance(data, str) else "bytes"
        inbox.put_nowait({"type": "websocket.receive", key: data if key == "text" else bytes(data)})

    def on_close(event: Any) -> None:
        inbox.put_nowait({"type": "websocket.disconnect", "code": event.code})

    server.addEventListener("message", on_message)
    server.addEventListener("close", on_close)

    async def send(message: Message) -> None:
        if message["type"] == "websocket.send":
            payload = message.get("text")
            server.send(payload if payload is not None else message.get("bytes", b""))
        elif message["type"] == "websocket.close":
            server.close(message.get("code", 1000), message.get("reason", ""))

    task = asyncio.ensure_future(app(request_to_scope(req, env, ws=True), inbox.get, send))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return js.Response.new(None, status=101, webSocket=client)


def entrypoint(app: Any) -> type:
    """A ``Default`` entry point class serving ``app`` (WebSocket upgrades included)."""
    from workers import WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request: Any) -> js.Response:
            if (request.headers.get("upgrade") or "").lower() == "websocket":
                return await websocket(app, request, self.env)
            return await fetch(app, request, self.env, self.ctx)

    return Default


def __getattr__(name: str) -> Any:
    if name == "env":  # a FastAPI dependency giving the bindings: `env = Depends(asgi.env)`
        from fastapi import Depends, Request

        async def env(request: Request) -> Any:
            return request.scope["env"]

        return Depends(env)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
