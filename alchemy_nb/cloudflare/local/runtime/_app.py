"""The ASGI application that serves one worker.

Per request: the ASGI scope becomes a JavaScript-style ``Request`` (URL and headers
built only if the handler reads them), the handler runs on the event loop, and its
``Response`` goes out as status, headers and body. A handler that raises gets a 500
with a one-line body; the traceback goes to stderr and the process keeps serving.

``GET /cdn-cgi/handler/scheduled?cron=...`` (or ``/__scheduled``) runs the scheduled
handler, as ``wrangler dev`` does.

A worker with static assets answers from its folder first (``_assets.py``); a
``websocket`` connection goes to ``_websockets.py``; a service-binding RPC call from
another local worker (``POST /cdn-cgi/alchemy-nb/rpc`` with the stage's token) to
``_service.py``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from inspect import isawaitable
from pathlib import Path
from types import CoroutineType, ModuleType
from typing import Any
from urllib.parse import parse_qs

import js
import workers
from pyodide.ffi import _serving_loop

from .._config import WorkerConfig
from . import (
    _stateful,  # registers the Durable Object, Workflow and Queue bindings
    _worker_loader,  # registers the worker_loader binding  # noqa: F401
)
from ._assets import AssetServer  # registers the assets binding
from ._env import NEEDS_MODULE, BuiltEnv, Env, Hook, build_env
from ._loader import Handlers, find_handlers, import_worker
from ._service import RPC_PATH, serve_rpc

__all__ = ["ExecutionContext", "ScheduledController", "WorkerApp", "build_app"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SCHEDULED_PATHS = frozenset({"/cdn-cgi/handler/scheduled", "/__scheduled"})
_DROPPED_HEADERS = frozenset({"content-length", "transfer-encoding"})
_TEXT_PLAIN = [(b"content-type", js.TEXT_PLAIN.encode())]
_from_asgi = js.Request._from_asgi
_JsResponse = js.Response
_PyResponse = workers.Response
_FetchResponse = workers.FetchResponse


class ExecutionContext:
    """The ``ctx`` a handler gets: ``waitUntil(awaitable)``, ``passThroughOnException()``."""

    __slots__ = ("_name", "_tasks", "props")

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Future[Any]] = set()
        self.props: dict[str, Any] = {}

    def waitUntil(self, awaitable: Awaitable[Any]) -> None:
        """Run ``awaitable`` to completion in the background, after the response is sent."""
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def passThroughOnException(self) -> None:
        """Accepted for compatibility; there is no origin to pass through to locally."""

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _report(self._name, "a waitUntil() task", task.exception())

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for background tasks, then cancel the rest."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()


class ScheduledController:
    """The ``controller`` of a scheduled event: ``cron``, ``scheduledTime`` (ms), ``noRetry()``."""

    __slots__ = ("cron", "scheduledTime", "type")

    def __init__(self, cron: str, scheduled_time: float) -> None:
        self.cron = cron
        self.scheduledTime = scheduled_time
        self.type = "scheduled"

    def noRetry(self) -> None:
        """Accepted for compatibility; local scheduled events are not retried."""

    def __repr__(self) -> str:
        return f"ScheduledController(cron={self.cron!r}, scheduledTime={self.scheduledTime})"


def _report(name: str, what: str, exc: BaseException | None) -> None:
    if exc is None:
        return
    text = "".join(traceback.format_exception(exc))
    sys.stderr.write(f"[worker {name}] {what} raised {type(exc).__name__}: {exc}\n{text}")
    sys.stderr.flush()


def _short(exc: BaseException) -> bytes:
    message = f"{exc}"
    if len(message) > 500:
        message = message[:500] + "..."
    return f"Worker threw exception: {type(exc).__name__}: {message}\n".encode()


async def _send_plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_TEXT_PLAIN, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _as_js_response(result: Any) -> js.Response:
    kind = type(result)
    if kind is _PyResponse:
        response: js.Response = result._js_response
    elif kind is _JsResponse:
        response = result
    elif isinstance(result, _FetchResponse):
        response = result._js_response
    elif isinstance(result, _JsResponse):
        response = result
    else:
        raise TypeError(
            f"The fetch handler returned {kind.__name__}, not a Response:"
            " return workers.Response(...) (or js.Response.new(...))"
        )
    if response.status == 0:
        raise TypeError("The fetch handler returned Response.error()")
    return response


class WorkerApp:
    """The ASGI3 application serving one worker (made by ``create_app``).

    ``app.env`` is the worker's env, ``app.module`` its module. Closing (ASGI lifespan
    shutdown, or ``await app.aclose()``) waits briefly for ``waitUntil`` tasks and
    closes the bindings.
    """

    def __init__(
        self,
        config: WorkerConfig,
        module: ModuleType,
        env: Env,
        handlers: Handlers,
        ctx: ExecutionContext,
        startup: list[Hook],
        shutdown: list[Hook],
    ) -> None:
        self.config = config
        self.module = module
        self.env = env
        self.ctx = ctx
        self._name = config["name"]
        self._fetch = handlers.fetch
        self._scheduled = handlers.scheduled
        self._startup = startup
        self._shutdown = shutdown
        self._started = False
        self._closed = False
        assets = config.get("assets")
        self.assets = AssetServer(assets) if assets else None

    def __repr__(self) -> str:
        return f"WorkerApp({self._name!r}, {self.config['entry']!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            from ._websockets import serve_websocket

            await serve_websocket(self, scope, receive, send)

    # ---------------------------------------------------------------- HTTP

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        fetch = self._fetch
        if scope["path"] in SCHEDULED_PATHS:
            await self._scheduled_http(scope, send)
            return
        if scope["path"] == RPC_PATH and await serve_rpc(self, scope, receive, send):
            return  # a service-binding RPC call from another local worker
        request = _from_asgi(scope, receive)
        assets = self.assets
        if assets is not None and not assets.worker_first(scope["path"]):
            answer = assets.serve(request, has_worker=fetch is not None)
            if answer is not None:
                await self._respond(answer, send, scope)
                return
        if fetch is None:
            await _send_plain(send, 500, b"Handler does not export a fetch() function.\n")
            return
        try:
            result = fetch(request)
            if type(result) is CoroutineType or isawaitable(result):
                result = await result
            response = _as_js_response(result)
            if response.webSocket is not None:
                raise TypeError(
                    "Worker tried to return a WebSocket in a response to a request which did"
                    ' not contain the header "Upgrade: websocket"'
                )
        except (Exception, SystemExit) as exc:  # a worker's sys.exit() must not stop the server
            _report(self._name, f"{scope['method']} {scope['path']}", exc)
            await _send_plain(send, 500, _short(exc))
            return
        await self._respond(response, send, scope)

    async def _respond(self, response: js.Response, send: Send, scope: Scope) -> None:
        status, pairs, body = response._parts()
        headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in pairs
            if k not in _DROPPED_HEADERS
        ]
        null_body = status in js.NULL_BODY_STATUSES
        if body is None or isinstance(body, bytes):
            if not null_body:
                headers.append((b"content-length", str(len(body or b"")).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body or b""})
            return
        length = body._length
        if length is not None and not null_body:
            headers.append((b"content-length", str(length).encode()))
        started = False
        try:
            chunks = body._chunks()
            first = await anext(chunks, b"")
            await send({"type": "http.response.start", "status": status, "headers": headers})
            started = True
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except Exception as exc:
            _report(self._name, f"{scope['method']} {scope['path']} (response body)", exc)
            if not started:
                await _send_plain(send, 500, _short(exc))

    # ---------------------------------------------------------------- scheduled

    async def run_scheduled(self, cron: str = "", scheduled_time: float | None = None) -> None:
        """Run the scheduled handler once, as a cron trigger would (errors propagate).

        ``scheduled_time`` is milliseconds since the epoch (default: now).
        """
        if self._scheduled is None:
            raise RuntimeError("Handler does not export a scheduled() function.")
        when = int(time.time() * 1000) if scheduled_time is None else scheduled_time
        result = self._scheduled(ScheduledController(cron, when))
        if isawaitable(result):
            await result

    async def _scheduled_http(self, scope: Scope, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        cron = query.get("cron", [""])[0]
        when: float | None = None
        if "time" in query:
            try:
                when = float(query["time"][0])
            except ValueError:
                when = None
            if when is not None and when < 1e11:  # seconds, not milliseconds
                when *= 1000
        if self._scheduled is None:
            await _send_plain(send, 500, b"Handler does not export a scheduled() function.\n")
            return
        try:
            await self.run_scheduled(cron, when)
        except Exception as exc:
            _report(self._name, f"scheduled event (cron {cron!r})", exc)
            await _send_plain(send, 500, _short(exc))
            return
        await _send_plain(send, 200, b"Ran scheduled event")

    # ---------------------------------------------------------------- lifecycle

    async def startup(self) -> None:
        """Run the bindings' startup hooks (once)."""
        if self._started:
            return
        self._started = True
        _serving_loop(asyncio.get_running_loop())  # run_sync() from WSGI threads
        for hook in self._startup:
            result = hook()
            if result is not None:
                await result

    async def aclose(self, timeout: float = 5.0) -> None:
        """Finish ``waitUntil`` tasks (up to ``timeout`` s) and close the bindings (once)."""
        if self._closed:
            return
        self._closed = True
        await self.ctx.drain(timeout)
        for hook in self._shutdown:
            try:
                result = hook()
                if result is not None:
                    await result
            except Exception as exc:
                _report(self._name, "closing a binding", exc)
        await js._aclose_clients()
        if workers._runtime.env is self.env:
            workers._runtime.env = None
            workers._runtime.wait_until = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    _report(self._name, "startup", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(config: WorkerConfig) -> WorkerApp:
    """Import the worker, open its bindings, compile its handlers (see ``create_app``)."""
    # `from workers import env` at the module's top level sees the bindings (all but the
    # Durable Object and Workflow ones, which need the module's classes, come first)
    env = Env({}, {})
    workers._runtime.env = env
    importing = ModuleType(Path(config["entry"]).stem)
    early = build_env(config, importing, into=env, types=lambda t: t not in NEEDS_MODULE)
    try:
        module = import_worker(config)
        late = build_env(config, module, into=env, types=NEEDS_MODULE.__contains__)
    except BaseException:
        workers._runtime.env = None
        _close(early.shutdown)
        raise
    built = BuiltEnv(env, early.startup + late.startup, late.shutdown + early.shutdown)
    ctx = ExecutionContext(config["name"])
    try:
        handlers = find_handlers(module, config, built.env, ctx)
    except BaseException:
        _close(built.shutdown)
        raise
    _add_queue_consumers(config, module, built.env, ctx, built.startup, built.shutdown)
    workers._runtime.env = built.env
    workers._runtime.wait_until = ctx.waitUntil
    return WorkerApp(config, module, built.env, handlers, ctx, built.startup, built.shutdown)


def _close(hooks: list[Hook]) -> None:
    """Run shutdown hooks outside the event loop (an async one is closed, not awaited)."""
    for hook in hooks:
        result = hook()
        if isinstance(result, CoroutineType):
            result.close()


def _add_queue_consumers(
    config: WorkerConfig,
    module: ModuleType,
    env: Env,
    ctx: ExecutionContext,
    startup: list[Hook],
    shutdown: list[Hook],
) -> None:
    """Consume the worker's queues once the server runs (``Default.queue`` / ``on_queue``)."""
    if not config.get("queue_consumers"):
        return
    default = getattr(module, "Default", None)
    entry = default(ctx, env) if isinstance(default, type) else None
    _stateful.queue_handler(config, module, env, entry)  # no handler: fails the load now
    running: list[Any] = []

    def start() -> None:
        running.extend(_stateful.start_queue_consumers(config, module, env, entry))

    def stop() -> None:
        for consumer in running:
            consumer.close()

    startup.append(start)
    shutdown.append(stop)
