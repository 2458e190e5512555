"""The local stand-in for Pyodide's ``pyodide.ffi``: JavaScript values seen from Python.

On Cloudflare a Python Worker runs in Pyodide, and JavaScript values reach Python as
``JsProxy`` objects. Locally there is no JavaScript, so the values the runtime hands
to a worker (D1 rows, KV list results, parsed JSON, ...) are plain Python data wrapped
in small classes that behave the way a ``JsProxy`` does where worker code relies on it:
attribute access, item access and ``.to_py()``.

Example::

    from pyodide.ffi import to_js
    from js import Object

    init = to_js({"status": 201}, dict_converter=Object.fromEntries)
    init.status  # 201
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any, NoReturn, SupportsIndex

__all__ = [
    "JsArray",
    "JsBuffer",
    "JsException",
    "JsMap",
    "JsNull",
    "JsObject",
    "JsProxy",
    "can_run_sync",
    "create_once_callable",
    "create_proxy",
    "destroy_proxies",
    "jsnull",
    "run_sync",
    "to_js",
]


class JsProxy:
    """The base class of every value that stands for a JavaScript object.

    ``isinstance(value, JsProxy)`` tells worker code that a value came "from
    JavaScript" and may need ``.to_py()`` to become plain Python data.
    """

    __slots__ = ()
    _js_name = "Object"

    @property
    def typeof(self) -> str:
        """What JavaScript's ``typeof`` would say: ``"object"``."""
        return "object"

    @property
    def js_id(self) -> int:
        """An identity number, stable for the object's lifetime."""
        return id(self)

    @property
    def constructor(self) -> _Constructor:
        """The JavaScript constructor; ``value.constructor.name`` is e.g. ``"Object"``."""
        return _Constructor(type(self)._js_name)

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> Any:
        """Convert to plain Python data (dicts, lists, ...), recursively."""
        return self


class _Constructor:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"[Function: {self.name}]"


class JsNull(JsProxy):
    """JavaScript's ``null`` (the single instance is :data:`jsnull`); falsy, ``to_py()`` is None."""

    __slots__ = ()
    _instance: JsNull | None = None

    def __new__(cls) -> JsNull:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "jsnull"

    def __str__(self) -> str:
        return "null"

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> None:
        """``None``."""
        return


jsnull = JsNull()
"""JavaScript's ``null``. Locally, JavaScript APIs return ``None`` for null, as on Cloudflare."""


class _PropertyOrDictMethod:
    """``obj.keys`` is the object's ``keys`` property when it has one (a KV list result:
    ``(await env.KV.list()).keys``), else ``dict.keys`` of its properties, and so on."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        data = obj._js
        if self.name in data:
            return data[self.name]
        return getattr(data, self.name)


class JsObject(JsProxy):
    """A plain JavaScript object (``{...}``): properties by attribute and by item.

    ``row.name`` and ``row["name"]`` both read a property; ``row.to_py()`` returns a
    ``dict`` (and ``keys()``, ``values()``, ``items()``, ``get()``, iteration and ``len``
    work as on a dict, unless the object has a property of that name). A property whose
    name is also a method here (``to_py``, ``typeof``) is reachable by item access.

    Example::

        row = await env.DB.prepare("SELECT id, name FROM users").first()
        row.name, row["id"], row.to_py()
    """

    __slots__ = ("_js",)
    _js: dict[str, Any]

    def __init__(self, properties: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        data: dict[str, Any] = dict(properties) if properties is not None else {}
        if kwargs:
            data.update(kwargs)
        object.__setattr__(self, "_js", data)

    @classmethod
    def _wrap(cls, data: dict[str, Any]) -> JsObject:
        """Wrap ``data`` without copying it (the runtime's fast path)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "_js", data)
        return obj

    def __getattr__(self, name: str) -> Any:
        if name == "_js" or name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._js[name]
        except KeyError:
            raise AttributeError(
                f"JavaScript object has no property {name!r}"
                f" (it has: {', '.join(map(repr, self._js)) or 'none'})"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._js[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._js[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._js[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._js[key] = value

    def __delitem__(self, key: str) -> None:
        del self._js[key]

    def __contains__(self, key: object) -> bool:
        return key in self._js

    # What the Python SDK's objects (D1 results converted with to_py) answer too, so code
    # written for either (``row.values()``, ``for key in row``) runs.

    def __iter__(self) -> Iterator[str]:
        return iter(self._js)

    def __len__(self) -> int:
        return len(self._js)

    keys = _PropertyOrDictMethod("keys")
    values = _PropertyOrDictMethod("values")
    items = _PropertyOrDictMethod("items")
    get = _PropertyOrDictMethod("get")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._js})

    def __repr__(self) -> str:
        return f"JsObject({self._js!r})"

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> dict[str, Any]:
        """A ``dict`` of the properties, converted recursively."""
        if depth == 0:
            return dict(self._js)
        return {k: _to_py(v, depth - 1) for k, v in self._js.items()}

    def as_object_map(self) -> JsMap:
        """A ``Mapping`` view of the properties (``keys()``, ``items()``, ``get()``...)."""
        return JsMap._wrap(self._js)

    def object_keys(self) -> JsArray:
        """``Object.keys(this)``."""
        return JsArray(self._js)

    def object_values(self) -> JsArray:
        """``Object.values(this)``."""
        return JsArray(self._js.values())

    def object_entries(self) -> JsArray:
        """``Object.entries(this)``."""
        return JsArray(JsArray(item) for item in self._js.items())


class JsMap(JsProxy):
    """A JavaScript ``Map`` (what ``to_js(dict)`` makes without a ``dict_converter``).

    It is a read/write ``Mapping``: ``m["k"]``, ``m.get("k")``, ``m.keys()``, and the JS
    methods ``get``, ``set``, ``has``, ``delete``, ``size``.
    """

    __slots__ = ("_js",)
    _js_name = "Map"
    _js: dict[Any, Any]

    def __init__(self, entries: Iterable[Any] | Mapping[Any, Any] | None = None) -> None:
        if entries is None:
            self._js = {}
        elif isinstance(entries, Mapping):
            self._js = dict(entries)
        else:
            self._js = dict(tuple(e) for e in entries)

    @classmethod
    def _wrap(cls, data: dict[Any, Any]) -> JsMap:
        obj = object.__new__(cls)
        obj._js = data
        return obj

    @classmethod
    def new(cls, entries: Iterable[Any] | Mapping[Any, Any] | None = None) -> JsMap:
        """``new Map(entries)``."""
        return cls(entries)

    def __getitem__(self, key: Any) -> Any:
        return self._js[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._js[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._js[key]

    def __contains__(self, key: object) -> bool:
        return key in self._js

    def __iter__(self) -> Iterator[Any]:
        return iter(self._js)

    def __len__(self) -> int:
        return len(self._js)

    def __repr__(self) -> str:
        return f"JsMap({self._js!r})"

    def get(self, key: Any, default: Any = None) -> Any:
        """The value for ``key``, or ``default`` (JS: ``undefined`` → ``None``)."""
        return self._js.get(key, default)

    def set(self, key: Any, value: Any) -> JsMap:
        """Set ``key`` to ``value``; returns the map."""
        self._js[key] = value
        return self

    def has(self, key: Any) -> bool:
        """Whether ``key`` is present."""
        return key in self._js

    def delete(self, key: Any) -> bool:
        """Remove ``key``; whether it was present."""
        return self._js.pop(key, _MISSING) is not _MISSING

    @property
    def size(self) -> int:
        """The number of entries."""
        return len(self._js)

    def keys(self) -> Iterable[Any]:
        """The keys, in insertion order."""
        return self._js.keys()

    def values(self) -> Iterable[Any]:
        """The values, in insertion order."""
        return self._js.values()

    def items(self) -> Iterable[tuple[Any, Any]]:
        """The ``(key, value)`` pairs, in insertion order."""
        return self._js.items()

    def entries(self) -> Iterator[JsArray]:
        """JS ``entries()``: ``[key, value]`` pairs."""
        return (JsArray(item) for item in self._js.items())

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> dict[Any, Any]:
        """A ``dict``, converted recursively."""
        if depth == 0:
            return dict(self._js)
        return {k: _to_py(v, depth - 1) for k, v in self._js.items()}


class JsArray(list[Any], JsProxy):
    """A JavaScript ``Array``: a Python ``list`` that also has ``length``, ``push`` and ``to_py()``.

    Example::

        rows = (await env.DB.prepare("SELECT * FROM users").all()).results
        len(rows), rows[0].name, rows.to_py()
    """

    __slots__ = ()
    _js_name = "Array"

    @property
    def length(self) -> int:
        """The number of items."""
        return len(self)

    def push(self, *items: Any) -> int:
        """Append items; returns the new length."""
        self.extend(items)
        return len(self)

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> list[Any]:
        """A ``list``, converted recursively."""
        if depth == 0:
            return list(self)
        return [_to_py(v, depth - 1) for v in self]

    def __repr__(self) -> str:
        return f"JsArray({list.__repr__(self)})"


class JsBuffer(bytes, JsProxy):
    """A JavaScript ``ArrayBuffer`` / ``Uint8Array``: immutable bytes with the Pyodide methods.

    It *is* ``bytes`` (so ``buf.decode()`` and ``bytes(buf)`` work), and it has what
    Pyodide's ``JsBuffer`` has: ``to_bytes()``, ``to_memoryview()``, ``to_string()``,
    ``byteLength``.

    Example::

        buf = await env.KV.get("blob", type="arrayBuffer")
        data = buf.to_bytes()
    """

    __slots__ = ()
    _js_name = "ArrayBuffer"

    @property
    def byteLength(self) -> int:
        """The size in bytes."""
        return len(self)

    @property
    def length(self) -> int:
        """The number of elements (bytes)."""
        return len(self)

    def to_bytes(self) -> bytes:
        """A plain ``bytes`` copy."""
        return bytes(self)

    def to_memoryview(self) -> memoryview:
        """A ``memoryview`` of the bytes."""
        return memoryview(bytes(self))

    def to_string(self, encoding: str | None = None) -> str:
        """The bytes decoded as ``encoding`` (UTF-8 by default)."""
        return bytes(self).decode(encoding or "utf-8", errors="replace")

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> memoryview:
        """A ``memoryview``, as Pyodide returns for buffers."""
        return self.to_memoryview()

    def slice(self, start: SupportsIndex = 0, end: SupportsIndex | None = None) -> JsBuffer:
        """``slice(start, end)``, a new buffer."""
        return type(self)(bytes(self)[start:end])

    def __repr__(self) -> str:
        return f"{type(self)._js_name}({bytes.__repr__(self)})"


class JsException(Exception):
    """An error thrown by a JavaScript API (a D1 error, an R2 error, ...).

    ``str(error)`` reads ``"Error: <message>"`` as in Pyodide; ``error.message`` is the
    message alone and ``error.name`` the JavaScript error class.
    """

    def __init__(self, message: str, name: str = "Error") -> None:
        self.message = message
        self.name = name
        super().__init__(f"{name}: {message}")

    @property
    def js_error(self) -> JsObject:
        """The JavaScript error object (``name``, ``message``)."""
        return JsObject({"name": self.name, "message": self.message})


_MISSING: Any = object()


def _to_py(value: Any, depth: int = -1) -> Any:
    if isinstance(value, JsProxy):
        return value.to_py(depth=depth)
    return value


def to_js(
    obj: Any,
    *,
    depth: int = -1,
    pyproxies: Any = None,
    create_pyproxies: bool = True,
    dict_converter: Callable[[Iterable[JsArray]], Any] | None = None,
    default_converter: Callable[[Any, Callable[[Any], Any], Callable[[Any, Any], None]], Any]
    | None = None,
    eager_converter: Any = None,
) -> Any:
    """Convert Python data to "JavaScript" values, as Pyodide's ``to_js`` does.

    Dicts become a ``Map`` unless ``dict_converter`` is given; the idiom
    ``to_js(value, dict_converter=Object.fromEntries)`` makes plain objects. Lists
    and tuples become arrays, bytes become a ``Uint8Array``; JavaScript values pass
    through unchanged.

    Example::

        init = to_js({"headers": {"x": "1"}}, dict_converter=Object.fromEntries)
    """

    def convert(value: Any, level: int) -> Any:
        if value is None or isinstance(value, str | int | float | JsProxy):
            return value
        if level == 0:
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return _uint8array(bytes(value))
        if isinstance(value, Mapping):
            entries = [JsArray((k, convert(v, level - 1))) for k, v in value.items()]
            if dict_converter is not None:
                return dict_converter(entries)
            return JsMap((e[0], e[1]) for e in entries)
        if isinstance(value, list | tuple | set | frozenset):
            return JsArray(convert(v, level - 1) for v in value)
        if default_converter is not None:
            return default_converter(value, lambda v: convert(v, level - 1), lambda a, b: None)
        return value

    return convert(obj, depth)


def _uint8array(data: bytes) -> JsBuffer:
    # js.Uint8Array subclasses JsBuffer; ffi must not import js, so look it up lazily.
    js = sys.modules.get("js")
    cls = getattr(js, "Uint8Array", JsBuffer) if js is not None else JsBuffer
    result: JsBuffer = cls(data)
    return result


def create_proxy(obj: Any, *, capture_this: bool = False, roundtrip: bool = True) -> Any:
    """Pyodide keeps a Python object alive for JavaScript; locally it is the object itself."""
    return obj


def create_once_callable(obj: Callable[..., Any], *, _may_syncify: bool = False) -> Any:
    """Pyodide wraps a callable for one JavaScript call; locally it is the callable itself."""
    return obj


def destroy_proxies(pyproxies: Any) -> None:
    """Pyodide releases proxies; locally there is nothing to release."""


def _json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for JavaScript values: what ``JSON.stringify`` would write."""
    if isinstance(value, JsObject | JsMap):
        return value._js
    if isinstance(value, JsNull):
        return None
    if isinstance(value, JsBuffer):
        return {str(i): b for i, b in enumerate(value)}
    to_json = getattr(value, "toJSON", None)
    if callable(to_json):
        return to_json()
    return _not_serializable(value)


def _not_serializable(value: Any) -> NoReturn:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# --------------------------------------------------------------------------- run_sync

_loop: list[asyncio.AbstractEventLoop] = []  # the worker's event loop, set when it serves


def _serving_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """The runtime tells ``run_sync`` which loop the worker's bindings live on."""
    _loop[:] = [loop] if loop is not None else []


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def can_run_sync() -> bool:
    """Whether :func:`run_sync` can be used here (locally: always)."""
    return True


def run_sync(awaitable: Awaitable[Any]) -> Any:
    """Wait for ``awaitable`` from synchronous code and return its result.

    On Cloudflare this suspends the WebAssembly stack. Locally: from a thread other
    than the worker's event loop (where ``workers.wsgi`` runs a Django or Flask app),
    the awaitable runs on the worker's loop and this thread waits for it; on the loop's
    own thread, an awaitable that completes without waiting (a D1 query, a KV read) runs
    right away, and one that would wait raises an error saying what to do.

    Example::

        from pyodide.ffi import run_sync

        def count_users(env):
            return run_sync(env.DB.prepare("SELECT count(*) AS n FROM users").first())["n"]
    """
    coro: Coroutine[Any, Any, Any] = (
        awaitable if asyncio.iscoroutine(awaitable) else _await(awaitable)
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = _loop[0] if _loop else None
        if loop is not None and loop.is_running() and not loop.is_closed():
            return asyncio.run_coroutine_threadsafe(coro, loop).result()
        return asyncio.run(coro)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError(
        "run_sync() was called on the event loop's thread with an awaitable that has to"
        " wait (for I/O or a timer), which would block the worker. Await it instead, or run"
        " the synchronous code in a thread (workers.wsgi.fetch does this for WSGI apps)"
    )
