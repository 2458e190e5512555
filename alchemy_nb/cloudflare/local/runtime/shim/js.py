"""The local stand-in for Pyodide's ``js`` module: the JavaScript globals a worker uses.

Cloudflare's Python Workers reach the Workers runtime through ``from js import ...``.
Locally there is no JavaScript engine, so this module implements, in Python, the
globals that worker code uses: ``Response``, ``Request``, ``Headers``, ``URL``,
``URLSearchParams``, ``Object``, ``JSON``, ``console``, ``fetch``, ``Date``,
``ArrayBuffer``/``Uint8Array``, ``ReadableStream``, ``crypto``, ``TextEncoder``/
``TextDecoder``, ``encodeURIComponent``/``decodeURIComponent``, ``atob``/``btoa``.

JavaScript constructors are called as in Pyodide, with ``.new(...)``; keyword arguments
become the options object (``Response.new("hi", status=201)``).

Example::

    from js import Response, URL, Object
    from pyodide.ffi import to_js

    async def on_fetch(request, env):
        url = URL.new(request.url)
        name = url.searchParams.get("name") or "world"
        init = to_js({"headers": {"x-hello": name}}, dict_converter=Object.fromEntries)
        return Response.new(f"hello {name}", init)
"""

from __future__ import annotations

import asyncio
import base64
import json as _json
import re
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import MethodType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit

from pyodide.ffi import (
    JsArray,
    JsBuffer,
    JsException,
    JsMap,
    JsNull,
    JsObject,
    JsProxy,
    _json_default,
)

if TYPE_CHECKING:  # loaded on first use, by __getattr__ at the end
    from alchemy_nb.cloudflare.local.runtime._websockets import (
        WebSocket,
        WebSocketPair,
        WebSocketRequestResponsePair,
    )

__all__ = [
    "HTMLRewriter",
    "JSON",
    "URL",
    "Array",
    "ArrayBuffer",
    "Date",
    "Error",
    "Headers",
    "Map",
    "Object",
    "ReadableStream",
    "Request",
    "Response",
    "TextDecoder",
    "TextEncoder",
    "URLSearchParams",
    "Uint8Array",
    "WebSocket",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "atob",
    "btoa",
    "console",
    "crypto",
    "decodeURIComponent",
    "encodeURIComponent",
    "fetch",
]

TEXT_PLAIN = "text/plain;charset=UTF-8"
"""What Cloudflare sends as ``Content-Type`` for a string body: exactly this, no space."""

FORM_URLENCODED = "application/x-www-form-urlencoded;charset=UTF-8"
NULL_BODY_STATUSES = frozenset({101, 204, 205, 304})
_MISSING: Any = object()


# --------------------------------------------------------------------------- values


def _jsify(value: Any) -> Any:
    """Python data as JavaScript would hand it back: dicts → objects, lists → arrays."""
    if isinstance(value, dict):
        return JsObject._wrap({k: _jsify(v) for k, v in value.items()})
    if isinstance(value, list):
        return JsArray(_jsify(v) for v in value)
    return value


def _to_py(value: Any) -> Any:
    return value.to_py() if isinstance(value, JsProxy) else value


_COMPACT_JSON = _json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _stringify(value: Any, indent: int | str | None = None) -> str:
    if indent is None:
        return _COMPACT_JSON.encode(value)
    return _json.dumps(
        value,
        default=_json_default,
        ensure_ascii=False,
        separators=(",", ":") if indent is None else (",", ": "),
        indent=indent,
    )


def _options(init: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A JavaScript options argument (dict, JS object, Map or keywords) as a plain dict."""
    if init is None or isinstance(init, JsNull):
        options: dict[str, Any] = {}
    elif isinstance(init, JsObject | JsMap):
        options = dict(init._js)
    elif isinstance(init, Mapping):
        options = dict(init)
    else:
        raise TypeError(f"expected an options object, got {type(init).__name__}")
    if kwargs:
        options.update(kwargs)
    return options


class Object:
    """JavaScript's ``Object``: ``fromEntries``, ``keys``, ``values``, ``entries``, ``assign``."""

    @staticmethod
    def new() -> JsObject:
        """``{}``."""
        return JsObject()

    @staticmethod
    def fromEntries(entries: Any) -> JsObject:
        """An object from ``[key, value]`` pairs (the usual ``to_js`` ``dict_converter``)."""
        if isinstance(entries, JsMap | JsObject):
            return JsObject._wrap(dict(entries._js))
        if isinstance(entries, Mapping):
            return JsObject._wrap(dict(entries))
        return JsObject._wrap({str(k): v for k, v in (tuple(e) for e in entries)})

    @staticmethod
    def keys(obj: Any) -> JsArray:
        """The object's own property names."""
        return JsArray(_props(obj))

    @staticmethod
    def values(obj: Any) -> JsArray:
        """The object's own property values."""
        return JsArray(_props(obj).values())

    @staticmethod
    def entries(obj: Any) -> JsArray:
        """The object's own ``[key, value]`` pairs."""
        return JsArray(JsArray(item) for item in _props(obj).items())

    @staticmethod
    def assign(target: JsObject, *sources: Any) -> JsObject:
        """Copy the sources' properties onto ``target``; returns ``target``."""
        for source in sources:
            if source is not None:
                target._js.update(_props(source))
        return target


def _props(obj: Any) -> dict[str, Any]:
    if isinstance(obj, JsObject | JsMap):
        return obj._js
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, list):
        return {str(i): v for i, v in enumerate(obj)}
    raise TypeError(f"{type(obj).__name__} is not a JavaScript object")


class JSON:
    """JavaScript's ``JSON``: ``JSON.stringify(value)`` (compact) and ``JSON.parse(text)``."""

    @staticmethod
    def stringify(value: Any, replacer: Any = None, space: int | str | None = None) -> str:
        """Compact JSON, as JavaScript writes it (non-ASCII kept as is)."""
        return _stringify(value, space or None)

    @staticmethod
    def parse(text: str | bytes) -> Any:
        """Parse JSON into JavaScript-like values (objects with attribute access)."""
        try:
            return _jsify(_json.loads(text))
        except ValueError as exc:
            raise JsException(f"Unexpected token in JSON: {exc}", "SyntaxError") from None


class _Console:
    """JavaScript's ``console``: ``log``/``info``/``debug`` to stdout, ``warn``/``error``
    to stderr."""

    @staticmethod
    def _format(args: tuple[Any, ...]) -> str:
        parts = []
        for arg in args:
            if isinstance(arg, str):
                parts.append(arg)
            elif isinstance(arg, JsObject | JsArray | JsMap):
                try:
                    parts.append(_stringify(arg))
                except (TypeError, ValueError):
                    parts.append(repr(arg))
            elif arg is None:
                parts.append("undefined")
            elif isinstance(arg, bool):
                parts.append("true" if arg else "false")
            else:
                parts.append(str(arg))
        return " ".join(parts)

    def log(self, *args: Any) -> None:
        """Print to stdout."""
        print(self._format(args), flush=True)

    info = log
    debug = log
    trace = log

    def warn(self, *args: Any) -> None:
        """Print to stderr."""
        print(self._format(args), file=sys.stderr, flush=True)

    error = warn


console = _Console()


class Date(JsProxy):
    """JavaScript's ``Date``: milliseconds since the epoch, UTC.

    ``Date.new()`` is now, ``Date.new(ms)``, ``Date.new("2024-01-01T00:00:00Z")``;
    ``getTime()``, ``toISOString()``, ``toUTCString()``; ``to_py()`` is a ``datetime``.
    """

    __slots__ = ("_ms",)
    _js_name = "Date"

    def __init__(self, ms: float) -> None:
        self._ms = float(ms)

    @classmethod
    def new(cls, value: Any = None) -> Date:
        """A date: now, from milliseconds, from an ISO string, a ``datetime`` or a ``Date``."""
        if value is None:
            return cls(time.time() * 1000)
        return cls(_to_ms(value))

    @staticmethod
    def now() -> float:
        """Milliseconds since the epoch, now."""
        return float(int(time.time() * 1000))

    def getTime(self) -> float:
        """Milliseconds since the epoch."""
        return self._ms

    valueOf = getTime

    def toISOString(self) -> str:
        """``2024-01-01T00:00:00.000Z``."""
        dt = self.to_py()
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(self._ms) % 1000:03d}Z"

    toJSON = toISOString

    def toUTCString(self) -> str:
        """``Mon, 01 Jan 2024 00:00:00 GMT`` (the HTTP date format)."""
        return self.to_py().strftime("%a, %d %b %Y %H:%M:%S GMT")

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> datetime:
        """An aware ``datetime`` in UTC."""
        return datetime.fromtimestamp(self._ms / 1000, tz=UTC)

    def __repr__(self) -> str:
        return f"Date({self.toISOString()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Date) and other._ms == self._ms

    def __hash__(self) -> int:
        return hash(self._ms)

    def __lt__(self, other: Date) -> bool:
        return self._ms < other._ms


def _to_ms(value: Any) -> float:
    """Milliseconds since the epoch from a Date, datetime, number or ISO/HTTP date string."""
    if isinstance(value, Date):
        return value._ms
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp() * 1000
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return _to_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            from email.utils import parsedate_to_datetime

            return _to_ms(parsedate_to_datetime(value))
    raise TypeError(f"cannot make a Date from {type(value).__name__}")


class ArrayBuffer(JsBuffer):
    """JavaScript's ``ArrayBuffer``: bytes (see :class:`pyodide.ffi.JsBuffer`)."""

    __slots__ = ()
    _js_name = "ArrayBuffer"

    @classmethod
    def new(cls, size_or_data: int | bytes = 0) -> ArrayBuffer:
        """``new ArrayBuffer(size)`` (zero-filled), or a buffer holding ``data``."""
        if isinstance(size_or_data, int):
            return cls(bytes(size_or_data))
        return cls(bytes(size_or_data))


class Uint8Array(JsBuffer):
    """JavaScript's ``Uint8Array``: bytes (see :class:`pyodide.ffi.JsBuffer`)."""

    __slots__ = ()
    _js_name = "Uint8Array"

    @classmethod
    def new(cls, value: int | bytes | Iterable[int] = 0) -> Uint8Array:
        """``new Uint8Array(length | buffer | numbers)``."""
        if isinstance(value, int):
            return cls(bytes(value))
        return cls(bytes(value))

    @property
    def buffer(self) -> ArrayBuffer:
        """The ``ArrayBuffer`` under the array (``to_js(data).buffer`` as a body)."""
        return ArrayBuffer(bytes(self))


Map = JsMap


class Array:
    """JavaScript's ``Array``: ``Array.new(...)``, ``Array.from_(iterable)``, ``Array.isArray``."""

    @staticmethod
    def new(*items: Any) -> JsArray:
        """An array of ``items``."""
        return JsArray(items)

    @staticmethod
    def from_(iterable: Iterable[Any]) -> JsArray:
        """``Array.from(iterable)``."""
        return JsArray(iterable)

    @staticmethod
    def isArray(value: Any) -> bool:
        """Whether ``value`` is an array."""
        return isinstance(value, list)


class Error:
    """JavaScript's ``Error``: ``raise Error.new("message")``."""

    @staticmethod
    def new(message: str = "") -> JsException:
        """An error to raise."""
        return JsException(message)


class _Crypto:
    """The Web Crypto globals most workers use: ``randomUUID`` and ``getRandomValues``."""

    def randomUUID(self) -> str:
        """A random (version 4) UUID string."""
        return str(uuid.uuid4())

    def getRandomValues(self, array: bytes) -> Uint8Array:
        """Random bytes as long as ``array`` (a new array: bytes are immutable in Python)."""
        return Uint8Array(secrets.token_bytes(len(array)))


crypto = _Crypto()


class TextEncoder:
    """JavaScript's ``TextEncoder`` (UTF-8)."""

    encoding = "utf-8"

    @classmethod
    def new(cls) -> TextEncoder:
        """A UTF-8 encoder."""
        return cls()

    def encode(self, text: str = "") -> Uint8Array:
        """The UTF-8 bytes of ``text``."""
        return Uint8Array(text.encode())


class TextDecoder:
    """JavaScript's ``TextDecoder``."""

    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding

    @classmethod
    def new(cls, encoding: str = "utf-8") -> TextDecoder:
        """A decoder for ``encoding``."""
        return cls(encoding)

    def decode(self, data: bytes | None = None) -> str:
        """``data`` decoded; invalid sequences become U+FFFD."""
        return bytes(data or b"").decode(self.encoding, errors="replace")


def encodeURIComponent(value: Any) -> str:
    """JavaScript's ``encodeURIComponent``."""
    return quote(str(value), safe="-_.!~*'()")


def decodeURIComponent(value: str) -> str:
    """JavaScript's ``decodeURIComponent``."""
    return unquote(value, errors="strict")


def btoa(data: str) -> str:
    """Base64 of a binary string."""
    return base64.b64encode(data.encode("latin-1")).decode("ascii")


def atob(data: str) -> str:
    """A binary string from base64."""
    return base64.b64decode(data).decode("latin-1")


# --------------------------------------------------------------------------- Headers

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HTTP_WHITESPACE = " \t\r\n"


def _header_name(name: Any) -> str:
    name = str(name)
    if _TOKEN.fullmatch(name) is None:
        raise TypeError(f"Invalid header name: {name!r}")
    return name.lower()


def _header_value(value: Any) -> str:
    text = str(value).strip(_HTTP_WHITESPACE)
    if "\r" in text or "\n" in text or "\x00" in text:
        raise TypeError(f"Invalid header value: {text!r}")
    if not text.isascii():
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            raise TypeError(
                f"Invalid header value {text!r}: header values must be ISO-8859-1"
            ) from None
    return text


class Headers(JsProxy):
    """JavaScript's ``Headers``: case-insensitive HTTP headers.

    JS methods: ``get``, ``set``, ``append``, ``has``, ``delete``, ``getSetCookie``,
    ``entries``/``keys``/``values``, ``forEach``; iterating yields ``(name, value)``
    pairs. Python conveniences: ``headers["Content-Type"]``, ``"x" in headers``,
    ``items()``, ``to_py()``.

    Example::

        headers = Headers.new({"content-type": "application/json"})
        headers.get("Content-Type")  # "application/json"
    """

    __slots__ = ("_list",)
    _js_name = "Headers"
    _list: list[tuple[str, str]]

    def __init__(self, init: Any = None) -> None:
        self._list = []
        if init is None or isinstance(init, JsNull):
            return
        if isinstance(init, Headers):
            self._list = list(init._list)
            return
        if isinstance(init, JsObject | JsMap):
            pairs: Iterable[Any] = init._js.items()
        elif isinstance(init, Mapping) or (hasattr(init, "items") and callable(init.items)):
            pairs = init.items()
        else:
            pairs = init
        append = self._list.append
        for pair in pairs:
            name, value = pair
            append((_header_name(name), _header_value(value)))

    @classmethod
    def new(cls, init: Any = None) -> Headers:
        """``new Headers(init)``: from a dict, a JS object, ``[name, value]`` pairs or Headers."""
        return cls(init)

    @classmethod
    def _trusted(cls, pairs: list[tuple[str, str]]) -> Headers:
        """Headers from already-lowercased, already-valid pairs (no copy, no checks)."""
        obj = object.__new__(cls)
        obj._list = pairs
        return obj

    def get(self, name: str) -> str | None:
        """All values of ``name`` joined by ``", "``, or None."""
        key = name.lower()
        values = [v for k, v in self._list if k == key]
        if not values:
            return None
        return values[0] if len(values) == 1 else ", ".join(values)

    def getAll(self, name: str) -> list[str]:
        """Every value of ``name`` (Cloudflare's non-standard ``getAll``)."""
        key = name.lower()
        return [v for k, v in self._list if k == key]

    def getSetCookie(self) -> JsArray:
        """Every ``Set-Cookie`` value, uncombined."""
        return JsArray(v for k, v in self._list if k == "set-cookie")

    def has(self, name: str) -> bool:
        """Whether ``name`` is present."""
        key = name.lower()
        return any(k == key for k, _ in self._list)

    def set(self, name: str, value: Any) -> None:
        """Replace every value of ``name`` with ``value``."""
        key = _header_name(name)
        text = _header_value(value)
        for i, (k, _) in enumerate(self._list):
            if k == key:
                self._list[i] = (key, text)
                self._list[i + 1 :] = [p for p in self._list[i + 1 :] if p[0] != key]
                return
        self._list.append((key, text))

    def append(self, name: str, value: Any) -> None:
        """Add a value for ``name``, keeping the existing ones."""
        self._list.append((_header_name(name), _header_value(value)))

    def delete(self, name: str) -> None:
        """Remove every value of ``name``."""
        key = name.lower()
        self._list = [p for p in self._list if p[0] != key]

    def entries(self) -> Iterator[tuple[str, str]]:
        """``(name, value)`` pairs, sorted by name, values of one name combined (JS order)."""
        combined: dict[str, list[str]] = {}
        cookies: list[str] = []
        for k, v in self._list:
            if k == "set-cookie":
                cookies.append(v)
            else:
                combined.setdefault(k, []).append(v)
        items = [(k, ", ".join(vs)) for k, vs in combined.items()]
        items.extend(("set-cookie", c) for c in cookies)
        items.sort(key=lambda kv: kv[0])
        return iter(items)

    __iter__ = entries

    def keys(self) -> Iterator[str]:
        """The header names, sorted."""
        return (k for k, _ in self.entries())

    def values(self) -> Iterator[str]:
        """The values, in name order."""
        return (v for _, v in self.entries())

    def items(self) -> list[tuple[str, str]]:
        """``(name, value)`` pairs, as ``entries()``."""
        return list(self.entries())

    def forEach(self, callback: Callable[..., Any]) -> None:
        """Call ``callback(value, name)`` for each header."""
        for k, v in self.entries():
            callback(v, k)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> dict[str, str]:
        """A ``dict`` of the combined values."""
        return dict(self.entries())

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


# --------------------------------------------------------------------------- URLs


class URLSearchParams(JsProxy):
    """JavaScript's ``URLSearchParams``: ``get``, ``getAll``, ``has``, ``set``, ``append``,
    ``delete``, ``sort``, ``toString``; iterating yields ``(name, value)`` pairs."""

    __slots__ = ("_owner", "_pairs")
    _js_name = "URLSearchParams"

    def __init__(self, init: Any = None, _owner: URL | None = None) -> None:
        self._owner = _owner
        if init is None:
            self._pairs: list[tuple[str, str]] = []
        elif isinstance(init, str):
            self._pairs = parse_qsl(init.removeprefix("?"), keep_blank_values=True)
        elif isinstance(init, URLSearchParams):
            self._pairs = list(init._pairs)
        elif isinstance(init, JsObject | JsMap | Mapping):
            self._pairs = [(str(k), str(v)) for k, v in _props(init).items()]
        else:
            self._pairs = [(str(k), str(v)) for k, v in init]

    @classmethod
    def new(cls, init: Any = None) -> URLSearchParams:
        """``new URLSearchParams(init)``: from a query string, a dict or pairs."""
        return cls(init)

    def _changed(self) -> None:
        if self._owner is not None:
            self._owner._query = self.toString()

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None."""
        for k, v in self._pairs:
            if k == name:
                return v
        return None

    def getAll(self, name: str) -> JsArray:
        """Every value of ``name``."""
        return JsArray(v for k, v in self._pairs if k == name)

    def has(self, name: str) -> bool:
        """Whether ``name`` is present."""
        return any(k == name for k, _ in self._pairs)

    def set(self, name: str, value: Any) -> None:
        """Replace the values of ``name`` with one ``value``."""
        value = str(value)
        out: list[tuple[str, str]] = []
        done = False
        for k, v in self._pairs:
            if k == name:
                if not done:
                    out.append((k, value))
                    done = True
            else:
                out.append((k, v))
        if not done:
            out.append((name, value))
        self._pairs = out
        self._changed()

    def append(self, name: str, value: Any) -> None:
        """Add a value for ``name``."""
        self._pairs.append((name, str(value)))
        self._changed()

    def delete(self, name: str) -> None:
        """Remove every value of ``name``."""
        self._pairs = [p for p in self._pairs if p[0] != name]
        self._changed()

    def sort(self) -> None:
        """Sort by name (stable)."""
        self._pairs.sort(key=lambda p: p[0])
        self._changed()

    @property
    def size(self) -> int:
        """The number of pairs."""
        return len(self._pairs)

    def entries(self) -> Iterator[tuple[str, str]]:
        """``(name, value)`` pairs in order."""
        return iter(list(self._pairs))

    __iter__ = entries

    def keys(self) -> Iterator[str]:
        """The names, in order."""
        return (k for k, _ in list(self._pairs))

    def values(self) -> Iterator[str]:
        """The values, in order."""
        return (v for _, v in list(self._pairs))

    def toString(self) -> str:
        """The ``application/x-www-form-urlencoded`` serialization (no ``?``)."""
        return urlencode(self._pairs, safe="*", quote_via=_quote_form)

    __str__ = toString

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> dict[str, str]:
        """A ``dict`` (the first value of each name)."""
        out: dict[str, str] = {}
        for k, v in self._pairs:
            out.setdefault(k, v)
        return out

    def __repr__(self) -> str:
        return f"URLSearchParams({self.toString()!r})"


def _quote_form(value: str, safe: str = "", encoding: Any = None, errors: Any = None) -> str:
    return quote(value, safe=safe + " ", encoding=encoding, errors=errors).replace(" ", "+")


_DEFAULT_PORTS = {"http:": "80", "https:": "443", "ws:": "80", "wss:": "443"}
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = "/%:@!$&'()*+,;=-._~?"
_UNSAFE_PATH = re.compile(r"[^A-Za-z0-9/%:@!$&'()*+,;=\-._~]").search
_UNSAFE_QUERY = re.compile(r"[^A-Za-z0-9/%:@!$&'()*+,;=\-._~?]").search


class URL(JsProxy):
    """JavaScript's ``URL``: ``URL.new(url[, base])`` with ``href``, ``origin``, ``protocol``,
    ``host``, ``hostname``, ``port``, ``pathname``, ``search``, ``hash`` and ``searchParams``.

    Example::

        url = URL.new(request.url)
        url.pathname, url.searchParams.get("q")
    """

    __slots__ = (
        "_fragment",
        "_host",
        "_params",
        "_password",
        "_path",
        "_port",
        "_query",
        "_scheme",
        "_username",
    )
    _js_name = "URL"

    def __init__(self, url: Any, base: Any = None) -> None:
        text = url if type(url) is str else str(url)
        if base is not None:
            text = urljoin(str(base), text)
        scheme, netloc, path, query, fragment = urlsplit(text.strip())
        userinfo, _, hostport = netloc.rpartition("@")
        if hostport.startswith("["):
            host, _, rest = hostport.partition("]")
            host += "]"
            port = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port = hostport.partition(":")
        if (
            not scheme
            or (port and not port.isdigit())
            or (not host and scheme in ("http", "https", "ws", "wss"))
        ):
            raise JsException(f"Invalid URL string: {text}", "TypeError")
        self._scheme = scheme.lower() + ":"
        username, _, password = userinfo.partition(":")
        self._username = username
        self._password = password
        self._host = host.lower()
        self._port = str(int(port)) if port else ""
        if _DEFAULT_PORTS.get(self._scheme) == self._port:
            self._port = ""
        if not path and self._scheme in _DEFAULT_PORTS:
            path = "/"
        self._path = quote(path, safe=_PATH_SAFE) if _UNSAFE_PATH(path) else path
        self._query = quote(query, safe=_QUERY_SAFE) if _UNSAFE_QUERY(query) else query
        self._fragment = fragment
        self._params: URLSearchParams | None = None

    @classmethod
    def new(cls, url: Any, base: Any = None) -> URL:
        """Parse ``url`` (relative to ``base`` if given); a bad URL raises ``TypeError``."""
        return cls(url, base)

    @staticmethod
    def canParse(url: Any, base: Any = None) -> bool:
        """Whether ``URL.new(url, base)`` would succeed."""
        try:
            URL(url, base)
        except JsException:
            return False
        return True

    @property
    def protocol(self) -> str:
        """``"https:"``."""
        return self._scheme

    @property
    def username(self) -> str:
        """The user name, or ``""``."""
        return self._username

    @property
    def password(self) -> str:
        """The password, or ``""``."""
        return self._password

    @property
    def hostname(self) -> str:
        """The host without the port."""
        return self._host

    @hostname.setter
    def hostname(self, value: str) -> None:
        self._host = value.lower()

    @property
    def port(self) -> str:
        """The port as a string, ``""`` for the scheme's default."""
        return self._port

    @port.setter
    def port(self, value: Any) -> None:
        self._port = "" if _DEFAULT_PORTS.get(self._scheme) == str(value) else str(value)

    @property
    def host(self) -> str:
        """``hostname[:port]``."""
        return f"{self._host}:{self._port}" if self._port else self._host

    @host.setter
    def host(self, value: str) -> None:
        hostname, _, port = value.partition(":")
        self._host = hostname.lower()
        self.port = port

    @property
    def origin(self) -> str:
        """``protocol//host``."""
        return f"{self._scheme}//{self.host}"

    @property
    def pathname(self) -> str:
        """The path, percent-encoded, starting with ``/``."""
        return self._path

    @pathname.setter
    def pathname(self, value: str) -> None:
        value = quote(str(value), safe=_PATH_SAFE)
        self._path = value if value.startswith("/") else "/" + value

    @property
    def search(self) -> str:
        """``"?a=1"`` or ``""``."""
        return f"?{self._query}" if self._query else ""

    @search.setter
    def search(self, value: str) -> None:
        self._query = quote(str(value).removeprefix("?"), safe=_QUERY_SAFE)
        self._params = None

    @property
    def searchParams(self) -> URLSearchParams:
        """The query as :class:`URLSearchParams`, linked to this URL."""
        if self._params is None:
            self._params = URLSearchParams(self._query, _owner=self)
        return self._params

    @property
    def hash(self) -> str:
        """``"#frag"`` or ``""``."""
        return f"#{self._fragment}" if self._fragment else ""

    @hash.setter
    def hash(self, value: str) -> None:
        self._fragment = str(value).removeprefix("#")

    @property
    def href(self) -> str:
        """The whole URL."""
        auth = ""
        if self._username or self._password:
            auth = self._username + (f":{self._password}" if self._password else "") + "@"
        return f"{self._scheme}//{auth}{self.host}{self._path}{self.search}{self.hash}"

    def toString(self) -> str:
        """The whole URL (``href``)."""
        return self.href

    toJSON = toString
    __str__ = toString

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> str:
        """The whole URL as a string."""
        return self.href

    def __repr__(self) -> str:
        return f"URL({self.href!r})"


# --------------------------------------------------------------------------- streams


class ReadableStream(JsProxy):
    """A body stream: ``async for chunk in stream``, ``stream.getReader().read()``.

    Locally a stream is a source of ``bytes`` chunks (bytes, an iterable or an async
    iterable). It can be read once.
    """

    __slots__ = ("_length", "_locked", "_source")
    _js_name = "ReadableStream"

    def __init__(
        self,
        source: bytes | Iterable[bytes] | AsyncIterable[bytes],
        length: int | None = None,
    ) -> None:
        self._source: bytes | Iterable[bytes] | AsyncIterable[bytes] | None = source
        if length is None and isinstance(source, bytes | bytearray):
            length = len(source)
        self._length = length
        self._locked = False

    @classmethod
    def new(cls, source: bytes | Iterable[bytes] | AsyncIterable[bytes] = b"") -> ReadableStream:
        """A stream over bytes or an (async) iterable of bytes chunks."""
        return cls(source)

    @property
    def locked(self) -> bool:
        """Whether the stream has been (or is being) read."""
        return self._locked

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self._locked or self._source is None:
            raise JsException("This ReadableStream is currently locked to a reader.", "TypeError")
        self._locked = True
        source, self._source = self._source, None
        if isinstance(source, bytes | bytearray):
            if source:
                yield bytes(source)
        elif isinstance(source, AsyncIterable):
            async for chunk in source:
                yield bytes(chunk)
        else:
            for chunk in source:
                yield bytes(chunk)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _read_all(self) -> bytes:
        source = self._source
        if isinstance(source, bytes) and not self._locked:
            self._locked = True
            self._source = None
            return source
        return b"".join([chunk async for chunk in self._chunks()])

    def getReader(self) -> _StreamReader:
        """A reader: ``await reader.read()`` gives ``{done, value}`` until done."""
        return _StreamReader(self._chunks())

    async def cancel(self, reason: Any = None) -> None:
        """Drop the rest of the stream."""
        self._locked = True
        self._source = None

    def __repr__(self) -> str:
        return "ReadableStream()"


class _StreamReader(JsProxy):
    __slots__ = ("_iterator",)
    _js_name = "ReadableStreamDefaultReader"

    def __init__(self, iterator: AsyncIterator[bytes]) -> None:
        self._iterator = iterator

    async def read(self) -> JsObject:
        """``{done: False, value: Uint8Array}`` per chunk, then ``{done: True}``."""
        try:
            chunk = await anext(self._iterator)
        except StopAsyncIteration:
            return JsObject._wrap({"done": True, "value": None})
        return JsObject._wrap({"done": False, "value": Uint8Array(chunk)})

    def releaseLock(self) -> None:
        """No-op."""

    async def cancel(self, reason: Any = None) -> None:
        """Stop reading."""


def _body_of(body: Any) -> tuple[bytes | ReadableStream | None, str | None]:
    """A Response/Request body and the content type it implies."""
    if body is None or isinstance(body, JsNull):
        return None, None
    if isinstance(body, str):
        return body.encode(), TEXT_PLAIN
    if isinstance(body, bytes):
        return body, None
    if isinstance(body, bytearray | memoryview):
        return bytes(body), None
    if isinstance(body, ReadableStream):
        return body, None
    if isinstance(body, URLSearchParams):
        return body.toString().encode(), FORM_URLENCODED
    as_body = getattr(body, "_as_body", None)  # FormData, Blob, R2 objects...
    if callable(as_body):
        result: tuple[bytes | ReadableStream | None, str | None] = as_body()
        return result
    raise TypeError(
        f"Unsupported type in Response: {type(body).__name__}. A body is str, bytes,"
        " a ReadableStream or URLSearchParams; for JSON use Response.json(data)"
    )


class _Body(JsProxy):
    """What Request and Response share: a body read once, as text, JSON or bytes."""

    __slots__ = ("_body", "_body_used", "_headers")
    _body: bytes | ReadableStream | None
    _body_used: bool
    _headers: Headers | None

    async def _consume(self) -> bytes:
        if self._body_used:
            raise JsException(
                "Body has already been used. It can only be used once."
                " Use tee() first if you need to read it twice.",
                "TypeError",
            )
        body = self._body
        if body is None:
            return b""
        self._body_used = True
        if isinstance(body, bytes):
            return body
        return await body._read_all()

    @property
    def bodyUsed(self) -> bool:
        """Whether the body has been read."""
        return self._body_used

    @property
    def body(self) -> ReadableStream | None:
        """The body as a stream, or None when there is no body."""
        body = self._body
        if body is None:
            return None
        if isinstance(body, bytes):
            stream = ReadableStream(body)
            self._body = stream
            return stream
        return body

    async def text(self) -> str:
        """The body decoded as UTF-8."""
        return (await self._consume()).decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body parsed as JSON, into JavaScript-like values."""
        return JSON.parse(await self._consume())

    async def arrayBuffer(self) -> ArrayBuffer:
        """The body as an ``ArrayBuffer``."""
        return ArrayBuffer(await self._consume())

    async def bytes(self) -> Uint8Array:
        """The body as a ``Uint8Array``."""
        return Uint8Array(await self._consume())


# --------------------------------------------------------------------------- Request

_CF_PROPERTIES: dict[str, Any] = {
    "asn": 0,
    "asOrganization": "local",
    "colo": "LCL",
    "country": "XX",
    "city": "Local",
    "continent": "XX",
    "region": "",
    "regionCode": "",
    "timezone": "UTC",
    "latitude": "0",
    "longitude": "0",
    "postalCode": "",
    "httpProtocol": "HTTP/1.1",
    "tlsVersion": "",
    "clientTcpRtt": 0,
}


class Request(_Body):
    """JavaScript's ``Request``: ``method``, ``url``, ``headers``, ``cf`` and the body methods
    (``await text()``, ``json()``, ``arrayBuffer()``, ``bytes()``).

    A bare ``on_fetch(request, env)`` receives one of these; ``Default.fetch`` and
    ``@handler`` functions receive the Python ``workers.Request`` around it.
    """

    __slots__ = ("_method", "_receive", "_redirect", "_scope", "_url")
    _js_name = "Request"
    _scope: dict[str, Any] | None

    def __init__(self, input: Any, init: Any = None, **kwargs: Any) -> None:
        options = _options(init, kwargs)
        if not isinstance(input, str | URL | Request):
            input = getattr(input, "js_object", input)  # a workers.Request
        if isinstance(input, Request):
            self._method = input.method
            self._url: str | None = input.url
            self._headers = Headers(input.headers)
            # An incoming request's body is still with the server: take it as a stream.
            self._body = input.body if input._receive is not None else input._body
            self._redirect = input._redirect
        else:
            url = input.href if isinstance(input, URL) else str(input)
            self._url = URL(url).href
            self._method = "GET"
            self._headers = Headers()
            self._body = None
            self._redirect = "follow"
        self._scope = None
        self._receive: Callable[[], Any] | None = None
        self._body_used = False
        if "method" in options and options["method"] is not None:
            self._method = str(options["method"]).upper()
        if options.get("headers") is not None:
            self._headers = Headers(options["headers"])
        if options.get("redirect") is not None:
            self._redirect = str(options["redirect"])
        if options.get("body") is not None:
            if self._method in ("GET", "HEAD"):
                raise JsException(
                    "Request with a GET or HEAD method cannot have a body.", "TypeError"
                )
            self._body, content_type = _body_of(options["body"])
            if content_type and not self._headers.has("content-type"):
                self._headers.append("content-type", content_type)

    @classmethod
    def new(cls, input: Any, init: Any = None, **kwargs: Any) -> Request:
        """``new Request(url | request, {method, headers, body, redirect})``."""
        return cls(input, init, **kwargs)

    @classmethod
    def _from_asgi(cls, scope: dict[str, Any], receive: Callable[[], Any]) -> Request:
        """An incoming request; URL and headers are built only when first read."""
        obj = object.__new__(cls)
        obj._scope = scope
        obj._method = scope["method"]
        obj._url = None
        obj._headers = None
        obj._receive = receive
        obj._body = None
        obj._body_used = False
        obj._redirect = "manual"
        return obj

    @property
    def method(self) -> str:
        """``"GET"``, ``"POST"``, ..."""
        return self._method

    @property
    def url(self) -> str:
        """The full URL, with scheme, host and port."""
        url = self._url
        if url is None:
            url = self._url = _asgi_url(self._scope or {})
        return url

    @property
    def headers(self) -> Headers:
        """The request headers."""
        headers = self._headers
        if headers is None:
            scope = self._scope or {}
            headers = self._headers = Headers._trusted(
                [
                    (k.decode("latin-1").lower(), v.decode("latin-1").strip(_HTTP_WHITESPACE))
                    for k, v in scope.get("headers", ())
                ]
            )
        return headers

    @property
    def redirect(self) -> str:
        """``"follow"`` or ``"manual"``."""
        return self._redirect

    @property
    def cf(self) -> JsObject:
        """Cloudflare's request properties; locally fixed placeholder values."""
        return JsObject(_CF_PROPERTIES)

    @property
    def body(self) -> ReadableStream | None:
        """The body as a stream, or None for a request without one."""
        if self._receive is not None and self._body is None:
            if not self._may_have_body():
                return None
            self._body = ReadableStream(_asgi_body(self._receive))
            self._receive = None
        return super().body

    def _may_have_body(self) -> bool:
        for k, v in (self._scope or {}).get("headers", ()):
            if k == b"content-length":
                return v.strip() != b"0"
            if k == b"transfer-encoding":
                return True
        return False

    async def _consume(self) -> bytes:
        receive = self._receive
        if receive is not None and self._body is None:
            self._receive = None
            data = b"".join([chunk async for chunk in _asgi_body(receive)])
            self._body = data if data else None
        return await super()._consume()

    def clone(self) -> Request:
        """A copy whose body can be read separately (the body is read into memory)."""
        if self._body_used:
            raise JsException("Body has already been used.", "TypeError")
        if self._receive is not None:
            raise JsException(
                "clone() of an incoming request is only possible after reading its body"
                " locally; read it once with await request.text() instead.",
                "TypeError",
            )
        if isinstance(self._body, ReadableStream):
            raise JsException("clone() of a streamed body is not supported locally.", "TypeError")
        copy = Request(self)
        copy._body = self._body
        return copy

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url})"


def _bridged_request(req: Any, bridge: str) -> Request:
    """The ``Request`` a framework bridge (``asgi``, ``wsgi``) was handed: the worker's
    request itself or its ``js_object``; anything else is refused naming ``bridge``."""
    if isinstance(req, Request):
        return req
    inner = getattr(req, "js_object", None)
    if isinstance(inner, Request):
        return inner
    raise TypeError(
        f"{bridge}.fetch() takes the worker's request (request or request.js_object), "
        f"not {type(req).__name__}"
    )


def _asgi_url(scope: dict[str, Any]) -> str:
    host = None
    for k, v in scope.get("headers", ()):
        if k == b"host":
            host = v.decode("latin-1")
            break
    if host is None:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    raw_path = scope.get("raw_path")
    path = (
        raw_path.decode("latin-1") if raw_path else quote(scope.get("path", "/"), safe=_PATH_SAFE)
    )
    query = scope.get("query_string")
    url = f"{scope.get('scheme', 'http')}://{host}{path}"
    return f"{url}?{query.decode('latin-1')}" if query else url


async def _asgi_body(receive: Callable[[], Any]) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise JsException("The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


# --------------------------------------------------------------------------- Response


def _response_json(cls: type[Response], data: Any, init: Any = None, **kwargs: Any) -> Response:
    """``Response.json(data, init)``: ``JSON.stringify(data)`` as ``application/json``."""
    options = _options(init, kwargs)
    headers = Headers(options.get("headers"))
    if not headers.has("content-type"):
        headers.append("content-type", "application/json")
    response = cls.__new__(cls)
    response._init(
        _stringify(data),
        options.get("status"),
        options.get("statusText"),
        headers,
        copy_headers=False,
    )
    return response


class _StaticOrInstance:
    """``Response.json(data)`` (static: make a JSON response) vs ``response.json()`` (read)."""

    def __init__(self, static: Callable[..., Any], instance: Callable[..., Any]) -> None:
        self._static = static
        self._instance = instance

    def __get__(self, obj: Any, owner: type | None = None) -> Callable[..., Any]:
        if obj is None:
            return MethodType(self._static, owner)
        return self._instance.__get__(obj, owner)  # type: ignore[no-any-return]


class Response(_Body):
    """JavaScript's ``Response``: ``Response.new(body, {status, statusText, headers})``,
    ``Response.json(data, init)``, ``Response.redirect(url, status)``.

    A string body gets ``content-type: text/plain;charset=UTF-8``, exactly as on
    Cloudflare. Read: ``status``, ``statusText``, ``ok``, ``headers``, ``await text()``.

    Example::

        return Response.new("created", status=201, headers={"x-id": "1"})
    """

    __slots__ = ("_status", "_status_text", "_url", "_web_socket")
    _js_name = "Response"

    def __init__(self, body: Any = None, init: Any = None, **kwargs: Any) -> None:
        if isinstance(init, Response):
            options: dict[str, Any] = {
                "status": init._status,
                "statusText": init._status_text,
                "headers": init.headers,
            }
            options.update(kwargs)
        else:
            options = _options(init, kwargs)
        self._init(body, options.get("status"), options.get("statusText"), options.get("headers"))
        self._web_socket = options.get("webSocket")

    def _init(
        self, body: Any, status: Any, status_text: Any, headers: Any, *, copy_headers: bool = True
    ) -> None:
        code = 200 if status is None else int(status)
        if not 200 <= code <= 599 and code != 101:
            raise JsException(
                f"Responses may only be constructed with status codes in the range"
                f" 200 to 599, inclusive (got {code}).",
                "RangeError",
            )
        data, content_type = _body_of(body)
        if data is not None and code in NULL_BODY_STATUSES:
            raise JsException(
                f"Response with null body status ({code}) cannot have a body.", "TypeError"
            )
        self._status = code
        self._status_text = "" if status_text is None else str(status_text)
        if headers is None:
            self._headers = Headers._trusted([])
        elif not copy_headers and isinstance(headers, Headers):
            self._headers = headers
        else:
            self._headers = Headers(headers)
        if content_type is not None and not self._headers.has("content-type"):
            self._headers._list.append(("content-type", content_type))
        self._body = data
        self._body_used = False
        self._url = ""

    @classmethod
    def _make(
        cls,
        body: bytes | ReadableStream | None,
        status: int,
        status_text: str,
        headers: Headers,
        url: str = "",
    ) -> Response:
        """A response from parts already checked (fetch results, the runtime's own)."""
        obj = object.__new__(cls)
        obj._status = status
        obj._status_text = status_text
        obj._headers = headers
        obj._body = body
        obj._body_used = False
        obj._url = url
        return obj

    @classmethod
    def new(cls, body: Any = None, init: Any = None, **kwargs: Any) -> Response:
        """``new Response(body, init)``."""
        return cls(body, init, **kwargs)

    async def _json_instance(self) -> Any:
        return JSON.parse(await self._consume())

    json = _StaticOrInstance(_response_json, _json_instance)
    """``Response.json(data, init)`` makes a JSON response; ``await response.json()`` reads one."""

    @classmethod
    def redirect(cls, url: Any, status: int = 302) -> Response:
        """A redirect to ``url`` (status 301, 302, 303, 307 or 308)."""
        if status not in (301, 302, 303, 307, 308):
            raise JsException(f"Invalid redirect status {status}.", "RangeError")
        return cls._make(None, status, "", Headers._trusted([("location", str(url))]))

    @classmethod
    def error(cls) -> Response:
        """A network-error response (status 0)."""
        return cls._make(None, 0, "", Headers._trusted([]))

    @property
    def status(self) -> int:
        """The status code."""
        return self._status

    @property
    def statusText(self) -> str:
        """The status text (``""`` unless set)."""
        return self._status_text

    @property
    def ok(self) -> bool:
        """Whether the status is 200-299."""
        return 200 <= self._status <= 299

    @property
    def headers(self) -> Headers:
        """The response headers (mutable)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers._trusted([])
        return headers

    @property
    def url(self) -> str:
        """The URL a fetched response came from, else ``""``."""
        return self._url

    @property
    def redirected(self) -> bool:
        """Always False locally."""
        return False

    @property
    def type(self) -> str:
        """``"default"`` (``"error"`` for ``Response.error()``)."""
        return "error" if self._status == 0 else "default"

    @property
    def webSocket(self) -> Any:
        """The client end of a ``WebSocketPair`` (a ``101`` response), else None."""
        return getattr(self, "_web_socket", None)

    def clone(self) -> Response:
        """A copy whose body can be read separately."""
        if self._body_used:
            raise JsException("Body has already been used.", "TypeError")
        if isinstance(self._body, ReadableStream):
            raise JsException("clone() of a streamed body is not supported locally.", "TypeError")
        return Response._make(
            self._body, self._status, self._status_text, Headers(self.headers), self._url
        )

    def _parts(self) -> tuple[int, list[tuple[str, str]], bytes | ReadableStream | None]:
        """Status, header pairs and body, for the local runtime to send."""
        headers = self._headers
        return self._status, headers._list if headers is not None else [], self._body

    def __repr__(self) -> str:
        return f"Response({self._status})"


# --------------------------------------------------------------------------- fetch

_clients: dict[int, Any] = {}


def _http_client() -> Any:
    loop = asyncio.get_running_loop()
    client = _clients.get(id(loop))
    if client is None:
        try:
            import httpx
        except ModuleNotFoundError:
            raise JsException(
                "fetch() needs httpx locally: pip install 'alchemy-nb[local]'"
            ) from None
        client = httpx.AsyncClient(timeout=None, trust_env=False)
        _clients[id(loop)] = client
    return client


async def _aclose_clients() -> None:
    """Close the ``fetch`` client of the running event loop (the runtime calls this)."""
    client = _clients.pop(id(asyncio.get_running_loop()), None)
    if client is not None:
        await client.aclose()


async def fetch(resource: Any, init: Any = None, **kwargs: Any) -> Response:
    """JavaScript's ``fetch(resource, init)``: an outbound HTTP request.

    Example::

        response = await fetch("http://127.0.0.1:8788/api", method="POST", body="x")
    """
    if isinstance(resource, Request) and init is None and not kwargs:
        request = resource
    else:
        inner = getattr(resource, "js_object", resource)  # a workers.Request
        request = Request(inner, init, **kwargs)
    return await _send(request)


_DROPPED_RESPONSE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


async def _send(request: Request) -> Response:
    client = _http_client()
    body = await request._consume() if request._body is not None else None
    try:
        result = await client.request(
            request.method,
            request.url,
            headers=list(request.headers._list),
            content=body,
            follow_redirects=request.redirect == "follow",
        )
    except Exception as exc:
        raise JsException(f"Network connection lost. ({type(exc).__name__}: {exc})") from exc
    # httpx already decoded the body, so its encoding headers no longer describe it.
    headers = Headers._trusted(
        [
            (k.lower(), v)
            for k, v in result.headers.multi_items()
            if k.lower() not in _DROPPED_RESPONSE_HEADERS
        ]
    )
    data = result.content
    status = result.status_code
    return Response._make(
        data if data or status not in NULL_BODY_STATUSES else None,
        status,
        result.reason_phrase,
        headers,
        str(result.url),
    )


class HTMLRewriter:
    """Cloudflare's streaming HTML rewriter runs only on Cloudflare: using it locally
    raises an error saying so (the worker still starts)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from alchemy_nb.cloudflare.local.runtime._remote import (
            RemoteOnlyError,
            remote_only_message,
        )

        raise RemoteOnlyError(remote_only_message("HTMLRewriter (outbound HTML rewriting)"))

    @classmethod
    def new(cls, *args: Any, **kwargs: Any) -> HTMLRewriter:
        """``new HTMLRewriter()``."""
        return cls(*args, **kwargs)


# --------------------------------------------------------------------------- WebSockets


def __getattr__(name: str) -> Any:
    """``WebSocketPair`` and ``WebSocket`` come from the runtime, loaded on first use (a
    worker that never touches them does not load the runtime)."""
    if name in ("WebSocket", "WebSocketPair", "WebSocketRequestResponsePair"):
        from alchemy_nb.cloudflare.local.runtime import _websockets

        value = getattr(_websockets, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
