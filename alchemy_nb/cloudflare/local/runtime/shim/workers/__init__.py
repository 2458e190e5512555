"""The local stand-in for Cloudflare's ``workers`` module (the Python Workers SDK).

A worker written for Cloudflare imports from here and runs unchanged locally::

    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            row = await self.env.DB.prepare("SELECT 1 AS one").first()
            return Response.json(row)

The names, signatures and behaviours mirror Cloudflare's module: ``Response``
(``Response(body, status=, headers=)``, ``Response.json(data, status=, headers=)``),
``Request`` (``method``, ``url``, ``headers``, ``await text()``/``json()``/``bytes()``,
``js_object``), the base classes ``WorkerEntrypoint``, ``DurableObject`` and
``WorkflowEntrypoint``, the ``@handler`` decorator, ``fetch``, ``FormData``, ``Blob``.
"""

from __future__ import annotations

import functools
import json as _json
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPMethod, HTTPStatus
from http.client import HTTPMessage
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, quote

import js
from pyodide.ffi import JsObject, JsProxy, _json_default, to_js

__all__ = [
    "Blob",
    "Context",
    "DurableObject",
    "FetchResponse",
    "File",
    "FormData",
    "Request",
    "Response",
    "WorkerEntrypoint",
    "WorkflowEntrypoint",
    "env",
    "fetch",
    "handler",
    "import_from_javascript",
    "python_from_rpc",
    "python_to_rpc",
    "waitUntil",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_METHODS: dict[str, HTTPMethod] = {m.value: m for m in HTTPMethod}
_PY_JSON = _json.JSONEncoder(default=_json_default)
_JS_JSON = _json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


class Context(Protocol):
    """The execution context a handler gets (``self.ctx``): ``waitUntil(awaitable)``."""

    def waitUntil(self, other: Awaitable[Any]) -> None:
        """Keep the worker alive until ``other`` finishes, after the response is sent."""


# --------------------------------------------------------------------------- Blob, FormData


class Blob:
    """Bytes with a content type: ``Blob([b"a", "b"], content_type="text/plain")``."""

    def __init__(
        self, blob_parts: Any, content_type: str | None = None, endings: Any = None
    ) -> None:
        if isinstance(blob_parts, str | bytes | bytearray | memoryview | Blob):
            blob_parts = [blob_parts]
        chunks: list[bytes] = []
        for part in blob_parts:
            if isinstance(part, Blob):
                chunks.append(part._data)
                if content_type is None and len(blob_parts) == 1:
                    content_type = part.content_type
            elif isinstance(part, str):
                chunks.append(part.encode())
            else:
                chunks.append(bytes(part))
        self._data = b"".join(chunks)
        self._type = content_type or ""

    @property
    def size(self) -> int:
        """The size in bytes."""
        return len(self._data)

    @property
    def content_type(self) -> str:
        """The content type, or ``""``."""
        return self._type

    @property
    def js_object(self) -> Blob:
        """The blob itself (locally there is no separate JavaScript object)."""
        return self

    async def text(self) -> str:
        """The bytes decoded as UTF-8."""
        return self._data.decode("utf-8", errors="replace")

    async def bytes(self) -> bytes:
        """The bytes."""
        return self._data

    def slice(
        self, start: int | None = None, end: int | None = None, content_type: str | None = None
    ) -> Blob:
        """A new blob of ``[start:end]``."""
        return Blob([self._data[start:end]], content_type)

    def _as_body(self) -> tuple[bytes, str | None]:
        return self._data, self._type or None


class File(Blob):
    """A :class:`Blob` with a file name."""

    def __init__(
        self,
        blob_parts: Any,
        filename: str,
        content_type: str | None = None,
        endings: Any = None,
        last_modified: int | None = None,
    ) -> None:
        super().__init__(blob_parts, content_type)
        self._name = filename
        self._last_modified = last_modified or int(js.Date.now())

    @property
    def name(self) -> str:
        """The file name."""
        return self._name

    @property
    def last_modified(self) -> int:
        """Milliseconds since the epoch."""
        return self._last_modified


FormDataValue = str | Blob


class FormData(MutableMapping[str, FormDataValue]):
    """Form fields: ``form["name"]``, ``form.get_all("tag")``, ``form.append(...)``.

    ``await request.form_data()`` parses urlencoded and multipart bodies; a FormData
    given as a body is sent as ``multipart/form-data``.
    """

    def __init__(self, form_data: dict[str, FormDataValue] | FormData | None = None) -> None:
        self._items: list[tuple[str, FormDataValue]] = []
        if isinstance(form_data, FormData):
            self._items = list(form_data._items)
        elif form_data:
            self._items = list(form_data.items())

    def __getitem__(self, key: str) -> FormDataValue:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __setitem__(self, key: str, value: FormDataValue) -> None:
        self._items = [(k, v) for k, v in self._items if k != key]
        self._items.append((key, value))

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._items = [(k, v) for k, v in self._items if k != key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._items))

    def __len__(self) -> int:
        return len(dict.fromkeys(k for k, _ in self._items))

    def append(self, key: str, value: FormDataValue, filename: str | None = None) -> None:
        """Add a value, keeping existing ones of the same name."""
        if filename is not None and isinstance(value, Blob) and not isinstance(value, File):
            value = File([value], filename, value.content_type)
        self._items.append((key, value))

    def delete(self, key: str) -> None:
        """Remove every value of ``key``."""
        self._items = [(k, v) for k, v in self._items if k != key]

    def get_all(self, key: str) -> list[FormDataValue]:
        """Every value of ``key``."""
        return [v for k, v in self._items if k == key]

    @property
    def js_object(self) -> FormData:
        """The form itself."""
        return self

    def _as_body(self) -> tuple[bytes, str]:
        boundary = "----alchemy-nb-" + js.crypto.randomUUID().replace("-", "")
        out: list[bytes] = []
        for key, value in self._items:
            name = quote(key, safe=" ")
            out.append(f"--{boundary}\r\n".encode())
            if isinstance(value, Blob):
                filename = value.name if isinstance(value, File) else "blob"
                out.append(
                    f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: {value.content_type or 'application/octet-stream'}"
                    "\r\n\r\n".encode()
                )
                out.append(value._data)
            else:
                out.append(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
                out.append(str(value).encode())
            out.append(b"\r\n")
        out.append(f"--{boundary}--\r\n".encode())
        return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _parse_form(content_type: str, data: bytes) -> FormData:
    form = FormData()
    if content_type.startswith("application/x-www-form-urlencoded"):
        for k, v in parse_qsl(data.decode("utf-8", errors="replace"), keep_blank_values=True):
            form.append(k, v)
        return form
    if content_type.startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + data)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            raw = payload if isinstance(payload, bytes) else b""
            filename = part.get_filename()
            if filename is not None:
                form.append(name, File([raw], filename, part.get_content_type()))
            else:
                charset = part.get_content_charset() or "utf-8"
                form.append(name, raw.decode(charset, errors="replace"))
        return form
    raise TypeError(f"Unsupported content type for form data: {content_type or '(none)'}")


# --------------------------------------------------------------------------- Request


class Request:
    """An HTTP request, as a fetch handler receives it.

    ``method`` (an ``http.HTTPMethod``, equal to ``"GET"`` etc.), ``url`` (full URL),
    ``headers`` (an ``http.client.HTTPMessage``: case-insensitive ``.get(name)``),
    ``await text()``, ``await json()``, ``await bytes()``, ``await form_data()``, and
    ``js_object`` (the JavaScript ``Request``).

    Example::

        async def fetch(self, request):
            if request.method == "POST":
                data = await request.json()
    """

    __slots__ = ("_js_request", "_message")

    def __init__(self, input: Request | str | js.Request, **other_options: Any) -> None:
        if isinstance(input, js.Request):
            if other_options:
                raise ValueError("Expected no options when constructing Request from a js.Request")
            self._js_request = input
        else:
            method = other_options.get("method")
            if isinstance(method, HTTPMethod):
                other_options["method"] = method.value
            source = input._js_request if isinstance(input, Request) else input
            self._js_request = js.Request.new(source, None, **other_options)
        self._message: HTTPMessage | None = None

    @classmethod
    def _wrap(cls, js_request: js.Request) -> Request:
        obj = object.__new__(cls)
        obj._js_request = js_request
        obj._message = None
        return obj

    def __repr__(self) -> str:
        return f"Request(method={self._js_request.method!r}, url={self._js_request.url!r})"

    @property
    def js_object(self) -> js.Request:
        """The JavaScript ``Request`` (for ``from js import ...`` APIs)."""
        return self._js_request

    @property
    def method(self) -> HTTPMethod | str:
        """The method as ``http.HTTPMethod`` (a ``str``: ``request.method == "GET"``)."""
        method = self._js_request.method
        return _METHODS.get(method, method)

    @property
    def url(self) -> str:
        """The full URL, e.g. ``http://127.0.0.1:8787/api?x=1``."""
        return self._js_request.url

    @property
    def headers(self) -> HTTPMessage:
        """The headers as ``http.client.HTTPMessage``: ``.get(name)`` is case-insensitive."""
        message = self._message
        if message is None:
            message = self._message = HTTPMessage()
            for key, value in self._js_request.headers._list:
                message[key] = value
        return message

    @property
    def body(self) -> js.ReadableStream | None:
        """The body as a stream, or None."""
        return self._js_request.body

    @property
    def body_used(self) -> bool:
        """Whether the body has been read."""
        return self._js_request.bodyUsed

    @property
    def cf(self) -> JsObject:
        """Cloudflare's request properties (placeholders locally)."""
        return self._js_request.cf

    @property
    def redirect(self) -> str:
        """The redirect mode."""
        return self._js_request.redirect

    def _raise_if_failed(self) -> None:
        if self._js_request.bodyUsed:
            raise OSError("Body already used")

    async def text(self) -> str:
        """The body as text (UTF-8)."""
        self._raise_if_failed()
        return await self._js_request.text()

    async def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON into plain Python data."""
        self._raise_if_failed()
        return _json.loads(await self._js_request.text(), **kwargs)

    async def bytes(self) -> bytes:
        """The body as ``bytes``."""
        self._raise_if_failed()
        return bytes(await self._js_request.arrayBuffer())

    async def buffer(self) -> js.ArrayBuffer:
        """The body as an ``ArrayBuffer``."""
        self._raise_if_failed()
        return await self._js_request.arrayBuffer()

    arrayBuffer = buffer

    async def form_data(self) -> FormData:
        """The body parsed as a form (urlencoded or multipart)."""
        self._raise_if_failed()
        content_type = self._js_request.headers.get("content-type") or ""
        return _parse_form(content_type, bytes(await self._js_request.arrayBuffer()))

    formData = form_data

    async def blob(self) -> Blob:
        """The body as a :class:`Blob`."""
        self._raise_if_failed()
        content_type = self._js_request.headers.get("content-type")
        return Blob([bytes(await self._js_request.arrayBuffer())], content_type)

    def clone(self) -> Request:
        """A copy whose body can be read separately."""
        self._raise_if_failed()
        return Request._wrap(self._js_request.clone())


# --------------------------------------------------------------------------- Response


class _JsonMethod:
    """``Response.json(data)`` makes a response; ``await response.json()`` reads one."""

    def __get__(self, obj: FetchResponse | None, owner: type[FetchResponse]) -> Any:
        if obj is None:
            return owner.from_json
        return obj._read_json


class FetchResponse:
    """A response whose body can be read: ``status``, ``ok``, ``headers``, ``await text()``."""

    __slots__ = ("_js_response",)
    _js_response: js.Response

    @classmethod
    def _wrap(cls, js_response: js.Response) -> Response:
        obj = object.__new__(Response)
        obj._js_response = js_response
        return obj

    @property
    def js_object(self) -> js.Response:
        """The JavaScript ``Response``."""
        return self._js_response

    @property
    def status(self) -> int:
        """The status code."""
        return self._js_response.status

    @property
    def ok(self) -> bool:
        """Whether the status is 200-299."""
        return self._js_response.ok

    @property
    def status_text(self) -> str:
        """The status text."""
        return self._js_response.statusText

    @property
    def url(self) -> str:
        """The URL a fetched response came from, else ``""``."""
        return self._js_response.url

    @property
    def headers(self) -> js.Headers:
        """The headers: ``headers["content-type"]``, ``.get(name)`` (case-insensitive)."""
        return self._js_response.headers

    @property
    def body(self) -> js.ReadableStream | None:
        """The body as a stream, or None."""
        return self._js_response.body

    @property
    def web_socket(self) -> Any:
        """The client end of a ``WebSocketPair`` (a ``101`` response), else None."""
        return self._js_response.webSocket

    @property
    def body_used(self) -> bool:
        """Whether the body has been read."""
        return self._js_response.bodyUsed

    def _raise_if_failed(self) -> None:
        if self._js_response.bodyUsed:
            raise OSError("Body already used")

    async def text(self) -> str:
        """The body as text."""
        self._raise_if_failed()
        return await self._js_response.text()

    async def _read_json(self, **kwargs: Any) -> Any:
        self._raise_if_failed()
        return _json.loads(await self._js_response.text(), **kwargs)

    json = _JsonMethod()

    async def bytes(self) -> bytes:
        """The body as ``bytes``."""
        self._raise_if_failed()
        return bytes(await self._js_response.arrayBuffer())

    async def buffer(self) -> js.ArrayBuffer:
        """The body as an ``ArrayBuffer``."""
        self._raise_if_failed()
        return await self._js_response.arrayBuffer()

    arrayBuffer = buffer

    async def form_data(self) -> FormData:
        """The body parsed as a form."""
        self._raise_if_failed()
        content_type = self._js_response.headers.get("content-type") or ""
        return _parse_form(content_type, bytes(await self._js_response.arrayBuffer()))

    formData = form_data

    def clone(self) -> Response:
        """A copy whose body can be read separately."""
        return FetchResponse._wrap(self._js_response.clone())

    def replace_body(self, body: Any) -> Response:
        """A response with the same status and headers and a new body."""
        return FetchResponse._wrap(js.Response.new(body, self._js_response))

    @staticmethod
    def from_json(
        data: Any,
        status: HTTPStatus | int = HTTPStatus.OK,
        status_text: str = "",
        headers: Any = None,
    ) -> Response:
        """A JSON response (``application/json``), as ``Response.json(data, ...)``."""
        # A JavaScript value goes through JS's Response.json (compact); Python data
        # through json.dumps(data), as Cloudflare's SDK does.
        text = (_JS_JSON if isinstance(data, JsProxy) else _PY_JSON).encode(data)
        js_headers = js.Headers(headers)
        if not js_headers.has("content-type"):
            js_headers._list.append(("content-type", "application/json"))
        js_response = js.Response.__new__(js.Response)
        js_response._init(text, int(status), status_text, js_headers, copy_headers=False)
        return FetchResponse._wrap(js_response)

    @staticmethod
    def redirect(url: str, status: HTTPStatus | int = HTTPStatus.FOUND) -> Response:
        """A redirect to ``url``."""
        return FetchResponse._wrap(js.Response.redirect(url, int(status)))

    def __repr__(self) -> str:
        parts = [f"status={self.status}"]
        content_type = self._js_response.headers.get("content-type")
        if content_type:
            parts.append(f"content_type={content_type!r}")
        return f"Response({', '.join(parts)})"


class Response(FetchResponse):
    """An HTTP response: ``Response(body, status=200, headers=None)``.

    ``body`` is ``str`` (sent as ``text/plain;charset=UTF-8``), ``bytes``, ``None``, a
    ``FormData``, a ``ReadableStream`` (e.g. an R2 object's ``body``) or a JavaScript
    ``Response``. ``headers`` is a dict, a list of pairs or ``Headers``.

    Example::

        Response("hello")
        Response(None, status=204)
        Response.json({"ok": True}, status=201, headers={"x-id": "7"})
    """

    __slots__ = ()

    def __init__(
        self,
        body: Any = None,
        status: HTTPStatus | int | None = None,
        status_text: str = "",
        headers: Any = None,
        web_socket: Any = None,
    ) -> None:
        if isinstance(body, js.Response):
            if status is not None or status_text or headers is not None:
                raise ValueError(
                    "Expected no options when constructing Response from a js.Response"
                )
            self._js_response = body
            return
        js_response = js.Response.__new__(js.Response)
        if web_socket is not None:  # the client end of a WebSocketPair: a 101 upgrade
            status = 101 if status is None else status
        js_response._init(body, None if status is None else int(status), status_text, headers)
        js_response._web_socket = web_socket
        self._js_response = js_response


# --------------------------------------------------------------------------- entry points


class WorkerEntrypoint:
    """Base class of a worker's entry point: ``class Default(WorkerEntrypoint)``.

    The runtime makes one instance per event with ``self.ctx`` (``waitUntil``) and
    ``self.env`` (the bindings), then calls ``fetch(self, request)`` or
    ``scheduled(self, controller, env, ctx)``.
    """

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


class DurableObject:
    """Base class of a Durable Object: ``self.ctx.storage`` and ``self.env``."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


class WorkflowEntrypoint:
    """Base class of a Workflow: ``async def run(self, event, step)``."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


def handler(func: _F) -> _F:
    """Mark ``on_fetch``-style handlers: the request arrives as :class:`Request`
    instead of the JavaScript request.

    Example::

        @handler
        async def on_fetch(request, env):
            return Response(await request.text())
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], js.Request):
            args = (Request._wrap(args[0]), *args[1:])
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


async def fetch(resource: str | Request | js.Request, **other_options: Any) -> Response:
    """An outbound HTTP request: ``await fetch(url, method="POST", body=..., headers=...)``."""
    if isinstance(resource, Request):
        resource = resource.js_object
    method = other_options.get("method")
    if isinstance(method, HTTPMethod):
        other_options["method"] = method.value
    return FetchResponse._wrap(await js.fetch(resource, None, **other_options))


def python_from_rpc(obj: Any) -> Any:
    """JavaScript values to Python ones (``to_py``); other values unchanged."""
    if isinstance(obj, js.Response):
        return FetchResponse._wrap(obj)
    if isinstance(obj, js.Request):
        return Request._wrap(obj)
    return obj.to_py() if isinstance(obj, JsProxy) else obj


def python_to_rpc(value: Any) -> Any:
    """Python values to JavaScript ones (``to_js``)."""
    if hasattr(value, "js_object"):
        return value.js_object
    return to_js(value, dict_converter=js.Object.fromEntries)


# --------------------------------------------------------------------------- cloudflare:workers


class _Runtime:
    """What the local runtime installs: the current ``env`` and ``waitUntil``."""

    env: Any = None
    wait_until: Callable[[Awaitable[Any]], None] | None = None


_runtime = _Runtime()


def _wait_until(awaitable: Awaitable[Any]) -> None:
    if _runtime.wait_until is None:
        raise RuntimeError("waitUntil() is only available while a worker is running")
    _runtime.wait_until(awaitable)


def import_from_javascript(module_name: str) -> Any:
    """Import a JavaScript module; locally only ``"cloudflare:workers"`` (env, waitUntil)."""
    if module_name == "cloudflare:workers":
        return JsObject({"env": _runtime.env, "waitUntil": _wait_until})
    raise ImportError(f"Failed to import '{module_name}': not available in the local runtime")


def __getattr__(name: str) -> Any:
    if name == "env":
        if _runtime.env is None:
            raise ImportError("workers.env is only available inside a running worker")
        return _runtime.env
    if name == "waitUntil":
        return _wait_until
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
