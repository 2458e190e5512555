"""WebSockets on the local target: ``WebSocketPair``, 101 responses, and the bridge to the network.

A worker makes a pair (``client, server = WebSocketPair.new()``), keeps the server end
(``server.accept()`` and ``addEventListener``, or a Durable Object's
``ctx.acceptWebSocket(server)``) and returns the client end:
``Response(None, status=101, web_socket=client)``. The runtime then completes the
upgrade with uvicorn and joins the client end to the real connection: what the server
end sends goes to the browser, what the browser sends arrives at the server end, in
order, as events (``message``, ``close``).

Events queue up until someone takes them (``accept()``, ``acceptWebSocket``), as in
workerd. A Durable Object's hibernation handlers (``webSocketMessage``,
``webSocketClose``, ``webSocketError``) run one at a time with the object's other calls.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyodide.ffi import JsException

if TYPE_CHECKING:
    from ._app import WorkerApp

__all__ = ["WebSocket", "WebSocketPair", "WebSocketRequestResponsePair", "serve_websocket"]

_TASKS: set[asyncio.Task[Any]] = set()


class _RefusedUpgrade(logging.Filter):
    """A refused upgrade is answered with the worker's own response (ASGI's denial
    response); uvicorn still reports it as an unfinished handshake, which it is not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


logging.getLogger("uvicorn.error").addFilter(_RefusedUpgrade())


@dataclass(frozen=True, slots=True)
class _Event:
    """What a listener gets: ``type``, and ``data`` or ``code``/``reason``/``wasClean``."""

    type: str
    data: Any = None
    code: int = 1005
    reason: str = ""
    wasClean: bool = True
    error: Any = None

    @property
    def message(self) -> str:
        return "" if self.error is None else str(self.error)


def _background(coro: Awaitable[Any]) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return task


def _report(what: str, exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    sys.stderr.write(f"{what} raised {type(exc).__name__}: {exc}\n{text}")
    sys.stderr.flush()


async def _call(fn: Callable[..., Any], *args: Any) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


class WebSocket:
    """One end of a :class:`WebSocketPair`: ``accept()``, ``send(data)``, ``close(code,
    reason)``, ``addEventListener(type, fn)``, ``readyState``, and the hibernation
    extras ``serializeAttachment(value)`` / ``deserializeAttachment()``.

    Example::

        client, server = WebSocketPair.new()
        server.accept()
        server.addEventListener("message", lambda event: server.send(event.data))
        return Response(None, status=101, web_socket=client)
    """

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3
    _js_name = "WebSocket"

    def __init__(self) -> None:
        self._peer: WebSocket | None = None
        self._events: asyncio.Queue[_Event] = asyncio.Queue()
        self._listeners: dict[str, list[Callable[..., Any]]] = {}
        self._taken = False  # someone consumes the events (accept, hibernation, the network)
        self._attachment: Any = None
        self._tags: list[str] = []
        self._consumer: asyncio.Task[Any] | None = None
        self.readyState = WebSocket.OPEN
        self.url: str | None = None
        self.protocol = ""
        self.extensions = ""

    def __repr__(self) -> str:
        states = ("CONNECTING", "OPEN", "CLOSING", "CLOSED")
        return f"WebSocket({states[self.readyState]})"

    # ------------------------------------------------------------------ the JS API

    def accept(self) -> None:
        """Start receiving events on this end (its listeners are called in order)."""
        self._take("accept()")
        self._consumer = _background(self._dispatch_to_listeners())

    def addEventListener(self, kind: str, listener: Callable[..., Any]) -> None:
        """Call ``listener(event)`` for ``"message"``, ``"close"`` or ``"error"`` events."""
        self._listeners.setdefault(kind, []).append(listener)

    def removeEventListener(self, kind: str, listener: Callable[..., Any]) -> None:
        """Stop calling ``listener`` for ``kind`` events."""
        if listener in self._listeners.get(kind, []):
            self._listeners[kind].remove(listener)

    def send(self, message: Any) -> None:
        """Send text (``str``) or binary data (``bytes``, ``ArrayBuffer``) to the other end."""
        if not self._taken:
            raise JsException(
                "You must call one of accept() or state.acceptWebSocket() on this WebSocket"
                " before sending messages.",
                "TypeError",
            )
        if self.readyState >= WebSocket.CLOSING:
            raise JsException("Can't call WebSocket send() after close().", "TypeError")
        if isinstance(message, str):
            data: str | bytes = message
        elif isinstance(message, bytes | bytearray | memoryview):
            data = bytes(message)
        else:
            to_py = getattr(message, "to_py", None)
            data = bytes(to_py()) if callable(to_py) else str(message)
        if self._peer is not None:
            self._peer._deliver(_Event("message", data))

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection (``code`` 1000 by default, with an optional ``reason``)."""
        if self.readyState == WebSocket.CLOSED:
            return
        if code is not None and not (code == 1000 or 3000 <= code <= 4999):
            raise JsException(f"Invalid WebSocket close code: {code}.", "InvalidAccessError")
        self.readyState = WebSocket.CLOSED
        if self._peer is not None and self._peer.readyState != WebSocket.CLOSED:
            self._peer._deliver(
                _Event("close", code=1000 if code is None else code, reason=reason or "")
            )
        self._events.put_nowait(_Event("_stop"))  # this end is done: its consumer ends

    def serializeAttachment(self, value: Any) -> None:
        """Keep a copy of ``value`` with this WebSocket (survives hibernation)."""
        self._attachment = copy.deepcopy(value)

    def deserializeAttachment(self) -> Any:
        """A copy of what :meth:`serializeAttachment` kept (None if nothing)."""
        return copy.deepcopy(self._attachment)

    # ------------------------------------------------------------------ internals

    def _take(self, how: str) -> None:
        if self._taken:
            raise JsException(
                f"{how}: this WebSocket was already accepted (call accept() or"
                " acceptWebSocket() once).",
                "TypeError",
            )
        self._taken = True

    def _deliver(self, event: _Event) -> None:
        if event.type == "close":
            self.readyState = WebSocket.CLOSED  # the other end is gone
        self._events.put_nowait(event)

    async def _dispatch_to_listeners(self) -> None:
        while True:
            event = await self._events.get()
            if event.type == "_stop":
                return
            for listener in list(self._listeners.get(event.type, [])):
                try:
                    await _call(listener, event)
                except Exception as exc:
                    _report(f"a WebSocket {event.type!r} listener", exc)
            if event.type == "close":
                return

    def _hibernate_into(self, run: Callable[[_Event], Awaitable[None]], tags: list[str]) -> None:
        """Deliver events through ``run`` (a Durable Object's handlers, serialized)."""
        self._take("acceptWebSocket()")
        self._tags = list(tags)

        async def pump() -> None:
            while True:
                event = await self._events.get()
                if event.type == "_stop":
                    return
                try:
                    await run(event)
                except Exception as exc:
                    _report(f"the Durable Object's webSocket handler for {event.type!r}", exc)
                if event.type == "close":
                    return

        self._consumer = _background(pump())


class WebSocketPair:
    """Two connected WebSockets: ``client, server = WebSocketPair.new()`` (also
    ``pair[0]``, ``pair[1]`` and ``pair.object_values()``)."""

    _js_name = "WebSocketPair"

    def __init__(self) -> None:
        client, server = WebSocket(), WebSocket()
        client._peer, server._peer = server, client
        self._ends = (client, server)

    @classmethod
    def new(cls) -> WebSocketPair:
        """``new WebSocketPair()``."""
        return cls()

    def __getitem__(self, index: int) -> WebSocket:
        return self._ends[index]

    def __iter__(self) -> Any:
        return iter(self._ends)

    def __len__(self) -> int:
        return 2

    def object_values(self) -> tuple[WebSocket, WebSocket]:
        """``Object.values(pair)``: ``(client, server)``."""
        return self._ends

    def to_py(self) -> tuple[WebSocket, WebSocket]:
        return self._ends


class WebSocketRequestResponsePair:
    """A message and its automatic answer (``ctx.setWebSocketAutoResponse(pair)``): the
    runtime answers ``request`` with ``response`` without calling ``webSocketMessage``."""

    _js_name = "WebSocketRequestResponsePair"

    def __init__(self, request: str, response: str) -> None:
        self.request = request
        self.response = response

    @classmethod
    def new(cls, request: str, response: str) -> WebSocketRequestResponsePair:
        """``new WebSocketRequestResponsePair(request, response)``."""
        return cls(request, response)


# --------------------------------------------------------------------------- Durable Objects


class Hibernation:
    """A Durable Object's accepted WebSockets (``ctx.acceptWebSocket`` and friends)."""

    def __init__(self, instance: Callable[[], Any], lock: Callable[[], asyncio.Lock]) -> None:
        self._instance = instance
        self._lock = lock
        self._sockets: list[WebSocket] = []
        self.auto_response: WebSocketRequestResponsePair | None = None
        self._answered: dict[int, float] = {}  # id(ws) -> ms of the last automatic answer

    def answered_at(self, ws: WebSocket) -> float | None:
        return self._answered.get(id(ws))

    def accept(self, ws: WebSocket, tags: list[str] | None = None) -> None:
        if not isinstance(ws, WebSocket):
            raise JsException("acceptWebSocket() needs the server end of a WebSocketPair.")
        self._sockets.append(ws)

        async def run(event: _Event) -> None:
            auto = self.auto_response
            if auto is not None and event.type == "message" and event.data == auto.request:
                ws.send(auto.response)  # answered without waking the object
                self._answered[id(ws)] = time.time() * 1000
                return
            obj = self._instance()
            async with self._lock():
                if event.type == "message":
                    handler = getattr(obj, "webSocketMessage", None)
                    if handler is not None:
                        await _call(handler, ws, event.data)
                elif event.type == "close":
                    if ws in self._sockets:
                        self._sockets.remove(ws)
                    handler = getattr(obj, "webSocketClose", None)
                    if handler is not None:
                        await _call(handler, ws, event.code, event.reason, event.wasClean)
                elif event.type == "error":
                    handler = getattr(obj, "webSocketError", None)
                    if handler is not None:
                        await _call(handler, ws, event.error)

        ws._hibernate_into(run, list(tags or []))

    def sockets(self, tag: str | None = None) -> list[WebSocket]:
        self._sockets = [ws for ws in self._sockets if ws.readyState != WebSocket.CLOSED]
        return [
            ws
            for ws in self._sockets
            if ws.readyState == WebSocket.OPEN and (tag is None or tag in ws._tags)
        ]

    def tags(self, ws: WebSocket) -> list[str]:
        if ws not in self._sockets:
            raise JsException("getTags() of a WebSocket this object did not accept.", "TypeError")
        return list(ws._tags)


# --------------------------------------------------------------------------- the network bridge


async def serve_websocket(app: WorkerApp, scope: Any, receive: Any, send: Any) -> None:
    """An ASGI ``websocket`` connection: ask the worker's ``fetch``, then either join the
    connection to the WebSocket it returned, or refuse with the response it gave."""
    import js

    from ._app import _as_js_response, _report, _short

    message = await receive()
    if message["type"] != "websocket.connect":
        return
    name = app.config["name"]
    http_scope = {
        **scope,
        "type": "http",
        "method": "GET",
        "scheme": "https" if scope.get("scheme") == "wss" else "http",
    }

    async def no_body() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    request = js.Request._from_asgi(http_scope, no_body)
    fetch = app._fetch
    if fetch is None:
        await _refuse(send, scope, 500, [], b"Handler does not export a fetch() function.\n")
        return
    try:
        result = fetch(request)
        if inspect.isawaitable(result):
            result = await result
        response = _as_js_response(result)
    except (Exception, SystemExit) as exc:
        _report(name, f"WebSocket upgrade {scope['path']}", exc)
        await _refuse(send, scope, 500, [], _short(exc))
        return
    client = getattr(response, "_web_socket", None)
    status, pairs, body = response._parts()
    if client is None:
        if status == 101:
            problem = "returned status 101 without a WebSocket"
        else:
            problem = f"answered {status} instead of accepting it"
        sys.stderr.write(
            f"[worker {name}] a WebSocket upgrade to {scope['path']} was refused: the worker"
            f" ({app.config['entry']}) {problem}. Fix: make a pair with"
            " `client, server = WebSocketPair.new()` (from js import WebSocketPair), accept"
            " the server end, and return Response(None, status=101, web_socket=client)\n"
        )
        sys.stderr.flush()
        data = body if isinstance(body, bytes) else b""
        if not isinstance(body, bytes) and body is not None:
            data = await body._read_all()
        if status == 101:
            await _refuse(send, scope, 500, [], b"Worker returned status 101 without a WebSocket\n")
        else:
            await _refuse(send, scope, status, pairs, data)
        return
    subprotocol = None
    headers = []
    for key, value in pairs:
        if key == "sec-websocket-protocol":
            subprotocol = value
        elif key not in ("upgrade", "connection", "sec-websocket-accept", "content-length"):
            headers.append((key.encode("latin-1"), value.encode("latin-1")))
    await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": headers})
    await _bridge(client, receive, send)


async def _refuse(
    send: Any, scope: Any, status: int, pairs: list[tuple[str, str]], body: bytes
) -> None:
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in pairs
        if k not in ("content-length", "transfer-encoding")
    ]
    if not any(k == b"content-type" for k, _ in headers):
        headers.append((b"content-type", b"text/plain;charset=UTF-8"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


async def _bridge(client: WebSocket, receive: Any, send: Any) -> None:
    """Join the client end of a pair to the ASGI connection until either side closes."""
    client._taken = True

    async def outgoing() -> None:
        while True:
            event = await client._events.get()
            if event.type == "message":
                data = event.data
                if isinstance(data, str):
                    await send({"type": "websocket.send", "text": data})
                else:
                    await send({"type": "websocket.send", "bytes": bytes(data)})
            elif event.type == "close":
                await send({"type": "websocket.close", "code": event.code, "reason": event.reason})
                return

    async def outgoing_or_error() -> None:
        try:
            await outgoing()
        except Exception as exc:  # the connection broke under a send: tell the server end
            peer = client._peer
            if peer is not None and peer.readyState != WebSocket.CLOSED:
                peer._deliver(_Event("error", error=exc))
                peer._deliver(_Event("close", code=1006, reason="", wasClean=False))

    async def incoming() -> None:
        import js

        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                data: Any = (
                    text if text is not None else js.ArrayBuffer(message.get("bytes") or b"")
                )
                if client._peer is not None and client._peer.readyState == WebSocket.OPEN:
                    client._peer._deliver(_Event("message", data))
            elif message["type"] == "websocket.disconnect":
                code = int(message.get("code") or 1005)
                client.readyState = WebSocket.CLOSED
                peer = client._peer
                if peer is not None and peer.readyState != WebSocket.CLOSED:
                    peer._deliver(
                        _Event(
                            "close",
                            code=code,
                            reason=str(message.get("reason") or ""),
                            wasClean=code != 1006,
                        )
                    )
                return

    tasks = [asyncio.ensure_future(outgoing_or_error()), asyncio.ensure_future(incoming())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
