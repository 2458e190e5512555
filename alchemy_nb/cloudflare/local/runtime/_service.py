"""Service bindings: ``env.OTHER.fetch(request)`` and ``await env.OTHER.method(...)`` (RPC).

``fetch`` goes over HTTP to the other worker's local URL. Its path and query are kept,
its origin replaced, and its ``Host`` header kept, so the other worker sees the URL the
caller used, as on Cloudflare.

An RPC call (any other attribute) is a ``POST`` to the other worker's
``/cdn-cgi/alchemy-nb/rpc`` carrying the method name and its arguments as JSON (bytes
too), with the stage's RPC token: the other worker runs
``getattr(Entrypoint(ctx, env), method)(*args)`` on its ``Default`` class (or the
binding's ``entrypoint``) and sends the result back; an exception comes back as a
``JsException`` with the same message. Without the token, that path is an ordinary
request to the worker, so nothing is reachable from outside that Cloudflare would hide.

A binding to a worker outside the app (by script name) finds it in the local dev
registry when it is called; a worker that does not run is an error naming the binding.
"""

from __future__ import annotations

import base64
import hmac
import inspect
import json
import sys
import traceback
from typing import Any

import js
import workers
from pyodide.ffi import JsException, JsProxy

__all__ = ["RPC_PATH", "RpcDict", "ServiceBinding", "serve_rpc"]

RPC_PATH = "/cdn-cgi/alchemy-nb/rpc"
_TOKEN_HEADER = "x-alchemy-nb-rpc"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, JsProxy):
        return _encode(value.to_py())
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise JsException(
        f"Could not serialize object of type {type(value).__name__!r} for an RPC call. The"
        " local runtime passes JSON values and bytes between workers.",
        "DataCloneError",
    )


class RpcDict(dict[str, Any]):
    """An object received over RPC: a ``dict`` whose keys are attributes too, as the
    Python Workers SDK gives them (``user["name"]`` and ``user.name``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return RpcDict({k: _decode(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class ServiceBinding:
    """A service binding (``env.OTHER``): ``await env.OTHER.fetch(request | url, init)``
    and RPC, ``await env.OTHER.any_method(*args)``.

    Example::

        response = await self.env.AUTH.fetch("https://auth/check", method="POST", body="x")
        user = await self.env.AUTH.whoami(token)
    """

    __slots__ = ("_entrypoint", "_name", "_service", "_token", "_url")

    def __init__(
        self,
        name: str,
        url: str | None = None,
        *,
        service: str | None = None,
        entrypoint: str | None = None,
        rpc_token: str | None = None,
    ) -> None:
        self._name = name
        self._url = url
        self._service = service
        self._entrypoint = entrypoint
        self._token = rpc_token

    def __repr__(self) -> str:
        return f"ServiceBinding({self._name!r} → {self._url or self._service})"

    def _target(self) -> tuple[str, str]:
        """The other worker's origin and RPC token (looked up by name if need be)."""
        if self._url is not None:
            return js.URL(self._url).origin, self._token or ""
        from .._registry import lookup

        found = lookup(self._service or "")
        if found is None:
            raise self._not_running()
        return js.URL(found["url"]).origin, str(found.get("rpc_token") or "")

    def _not_running(self, detail: str = "") -> JsException:
        worker = repr(self._service) if self._service else "the other worker"
        return JsException(
            f"Service binding {self._name!r} points to worker {worker}, which is not running"
            f" on this machine{detail}. Fix: start it (alchemy-nb dev in its project), or"
            " declare it in this app and bind the Worker resource",
            "Error",
        )

    async def _send(self, request: js.Request) -> js.Response:
        try:
            return await js._send(request)
        except JsException as exc:  # nothing listens there (any more)
            raise self._not_running(f" ({exc.message})") from exc

    async def fetch(self, input: Any, init: Any = None, **kwargs: Any) -> workers.Response:
        """Send ``input`` (a Request, a URL; relative URLs are fine) to the other worker."""
        origin, _ = self._target()
        source = getattr(input, "js_object", input)
        if isinstance(source, str) and not js.URL.canParse(source):
            source = js.URL(source, origin).href
        request = js.Request(source, init, **kwargs)
        original = js.URL(request.url)
        target = f"{origin}{original.pathname}{original.search}"
        outgoing = js.Request(target, None, method=request.method, headers=request.headers)
        outgoing._body = request._body
        if not outgoing.headers.has("host"):
            outgoing.headers.set("host", original.host)
        return workers.FetchResponse._wrap(await self._send(outgoing))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def rpc(*args: Any, **kwargs: Any) -> Any:
            return await self._call(name, args, kwargs)

        rpc.__name__ = name
        return rpc

    async def _call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        origin, token = self._target()
        payload = {
            "method": method,
            "entrypoint": self._entrypoint,
            "args": _encode(list(args)),
            "kwargs": _encode(kwargs),
        }
        request = js.Request(
            origin + RPC_PATH,
            None,
            method="POST",
            body=json.dumps(payload),
            headers={_TOKEN_HEADER: token, "content-type": "application/json"},
        )
        response = await self._send(request)
        text = await response.text()
        try:
            reply = json.loads(text)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or "ok" not in reply:
            raise JsException(
                f"RPC call {method}() through service binding {self._name!r} got no RPC answer"
                f" (status {response.status}): {text[:200]}",
                "Error",
            )
        if not reply["ok"]:
            raise JsException(str(reply.get("message")), str(reply.get("name") or "Error"))
        return _decode(reply.get("value"))


async def serve_rpc(app: Any, scope: Any, receive: Any, send: Any) -> bool:
    """Answer an RPC call to this worker; False when the request is not one (no token)."""
    expected = app.config.get("rpc_token") or ""
    given = ""
    for key, value in scope.get("headers", ()):
        if key == _TOKEN_HEADER.encode():
            given = value.decode("latin-1")
    if scope.get("method") != "POST" or not expected or not hmac.compare_digest(given, expected):
        return False
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    reply = await _run(app, json.loads(b"".join(chunks)))
    body = json.dumps(reply).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return True


async def _run(app: Any, call: dict[str, Any]) -> dict[str, Any]:
    name = call.get("entrypoint") or "Default"
    method = str(call.get("method"))
    cls = getattr(app.module, name, None)
    try:
        if not isinstance(cls, type):
            raise JsException(
                f"Worker {app.config['name']!r} ({app.config['entry']}) has no entrypoint class"
                f" {name!r}",
                "TypeError",
            )
        if method.startswith("_") or method in ("fetch", "constructor"):
            raise JsException(f'The RPC receiver does not implement the method "{method}".')
        fn = getattr(cls(app.ctx, app.env), method, None)
        if fn is None or not callable(fn):
            raise JsException(
                f'The RPC receiver does not implement the method "{method}".', "TypeError"
            )
        result = fn(*_decode(call.get("args") or []), **_decode(call.get("kwargs") or {}))
        if inspect.isawaitable(result):
            result = await result
        return {"ok": True, "value": _encode(result)}
    except Exception as exc:
        if not isinstance(exc, JsException):
            text = "".join(traceback.format_exception(exc))
            sys.stderr.write(f"[worker {app.config['name']}] RPC {method}() raised:\n{text}")
            sys.stderr.flush()
        kind = getattr(exc, "name", None) or type(exc).__name__
        message = getattr(exc, "message", None) or str(exc)
        return {"ok": False, "name": kind, "message": message}
