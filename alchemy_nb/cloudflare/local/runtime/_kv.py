"""KV on SQLite: ``get``, ``getWithMetadata``, ``put``, ``delete``, ``list``.

Keys are opaque strings stored as UTF-8 BLOBs, never used as paths: ``../../etc/x``,
``/abs`` and NUL bytes are just keys. Limits and error messages follow Cloudflare's
(keys up to 512 bytes, values up to 25 MiB, metadata up to 1024 bytes, TTL at least
60 s). Expired keys read as missing and are removed when met.

The table (one per SQLite file)::

    kv(key BLOB PRIMARY KEY, value BLOB, expiration INTEGER NULL, metadata TEXT NULL)

Example::

    await env.KV.put("greeting", "hi", expirationTtl=3600, metadata={"by": "me"})
    await env.KV.get("greeting")                 # "hi"
    (await env.KV.list(prefix="gr")).keys[0].name
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Callable
from typing import Any

from js import ArrayBuffer, ReadableStream, _jsify
from pyodide.ffi import JsArray, JsException, JsMap, JsObject

from ._convert import options, plain
from ._sqlite import connect

__all__ = ["KVNamespace"]

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 25 * 1024 * 1024
MAX_METADATA_BYTES = 1024
MIN_TTL = 60
MAX_LIST_LIMIT = 1000
MAX_BULK_KEYS = 100

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv ("
    " key BLOB PRIMARY KEY, value BLOB NOT NULL, expiration INTEGER, metadata TEXT"
    ") WITHOUT ROWID"
)
_TYPES = ("text", "json", "arrayBuffer", "stream")


def _key(method: str, key: Any) -> bytes:
    if not isinstance(key, str):
        if isinstance(key, int | float) and not isinstance(key, bool):
            key = str(key)
        else:
            raise JsException(
                f"KV {method} failed: keys are strings, not {type(key).__name__}", "TypeError"
            )
    if key == "":
        raise JsException("Key name cannot be empty.", "TypeError")
    if key in (".", ".."):
        raise JsException(f'"{key}" is not allowed as a key name.', "TypeError")
    raw: bytes = key.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_KEY_BYTES:
        raise JsException(
            f"KV {method} failed: 414 UTF-8 encoded length of {len(raw)} exceeds key length"
            f" limit of {MAX_KEY_BYTES}."
        )
    return raw


def _successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class KVNamespace:
    """A KV namespace binding (``env.KV``) over one SQLite file.

    ``now`` is the clock (seconds since the epoch); tests replace it to expire keys.
    """

    __slots__ = ("_conn", "_path", "now")

    def __init__(self, path: str, *, now: Callable[[], float] = time.time) -> None:
        self._path = path
        self.now = now
        self._conn = connect(path, schema=_SCHEMA)

    def __repr__(self) -> str:
        return f"KVNamespace({self._path!r})"

    def close(self) -> None:
        """Close the SQLite connection."""
        self._conn.close()

    # ---------------------------------------------------------------- reads

    def _read(self, raw: bytes) -> tuple[bytes, str | None] | None:
        row = self._conn.execute(
            "SELECT value, expiration, metadata FROM kv WHERE key = ?", (raw,)
        ).fetchone()
        if row is None:
            return None
        value, expiration, metadata = row
        if expiration is not None and expiration <= self.now():
            self._conn.execute("DELETE FROM kv WHERE key = ? AND expiration = ?", (raw, expiration))
            return None
        return value, metadata

    @staticmethod
    def _type(method: str, type_or_options: Any, type: str | None, cache_ttl: Any) -> str:
        if isinstance(type_or_options, str):
            chosen = type_or_options
        else:
            opts = options(type_or_options, {}, f"KV {method}")
            chosen = opts.get("type", "text")
            cache_ttl = opts.get("cacheTtl", cache_ttl)
        if type is not None:
            chosen = type
        if chosen not in _TYPES:
            raise JsException(
                'Unknown response type. Possible types are "text", "arrayBuffer", "json",'
                ' and "stream".',
                "TypeError",
            )
        if cache_ttl is not None and (not isinstance(cache_ttl, int | float) or cache_ttl < 30):
            raise JsException(
                f"KV {method} failed: 400 Invalid cache_ttl of {cache_ttl}."
                " Cache TTL must be at least 30."
            )
        return chosen

    @staticmethod
    def _decode(value: bytes, kind: str) -> Any:
        if kind == "text":
            return value.decode("utf-8", errors="replace")
        if kind == "json":
            try:
                return _jsify(json.loads(value))
            except ValueError as exc:
                raise JsException(f"Unexpected token in JSON: {exc}", "SyntaxError") from None
        if kind == "arrayBuffer":
            return ArrayBuffer(value)
        return ReadableStream(value)

    async def get(
        self,
        key: str | list[str],
        type_or_options: Any = None,
        *,
        type: str | None = None,
        cacheTtl: int | None = None,
    ) -> Any:
        """The value of ``key`` (``type``: ``"text"``, ``"json"``, ``"arrayBuffer"``,
        ``"stream"``), or None when missing or expired.

        Given a list of keys (up to 100), a map of key → value (text or json only).
        """
        kind = self._type("GET", type_or_options, type, cacheTtl)
        if isinstance(key, list | JsArray):
            return self._get_bulk(key, kind, with_metadata=False)
        found = self._read(_key("GET", key))
        if found is None:
            return None
        return self._decode(found[0], kind)

    async def getWithMetadata(
        self,
        key: str | list[str],
        type_or_options: Any = None,
        *,
        type: str | None = None,
        cacheTtl: int | None = None,
    ) -> JsObject | JsMap:
        """``{value, metadata, cacheStatus}``; ``value`` and ``metadata`` are None when missing."""
        kind = self._type("GET_WITH_METADATA", type_or_options, type, cacheTtl)
        if isinstance(key, list | JsArray):
            return self._get_bulk(key, kind, with_metadata=True)
        found = self._read(_key("GET_WITH_METADATA", key))
        if found is None:
            return JsObject._wrap({"value": None, "metadata": None, "cacheStatus": None})
        value, metadata = found
        return JsObject._wrap(
            {
                "value": self._decode(value, kind),
                "metadata": None if metadata is None else _jsify(json.loads(metadata)),
                "cacheStatus": None,
            }
        )

    def _get_bulk(self, keys: list[str], kind: str, *, with_metadata: bool) -> JsMap:
        if kind not in ("text", "json"):
            raise JsException(
                f'KV GET_BULK failed: 400 "{kind}" is not a valid type. Use "json" or "text"',
                "TypeError",
            )
        if len(keys) > MAX_BULK_KEYS:
            raise JsException(
                f"KV GET_BULK failed: 400 You can request a maximum of {MAX_BULK_KEYS} keys"
            )
        out = JsMap()
        for key in keys:
            found = self._read(_key("GET_BULK", key))
            if found is None:
                value: Any = None
            elif with_metadata:
                value = JsObject._wrap(
                    {
                        "value": self._decode(found[0], kind),
                        "metadata": None if found[1] is None else _jsify(json.loads(found[1])),
                    }
                )
            else:
                value = self._decode(found[0], kind)
            out[key] = value
        return out

    # ---------------------------------------------------------------- writes

    async def put(
        self,
        key: str,
        value: Any,
        options_: Any = None,
        *,
        expiration: float | None = None,
        expirationTtl: float | None = None,
        metadata: Any = None,
    ) -> None:
        """Store ``value`` (str, bytes, ArrayBuffer or ReadableStream) under ``key``.

        ``expiration`` is seconds since the epoch, ``expirationTtl`` seconds from now
        (at least 60); ``metadata`` is any JSON-serializable value (up to 1024 bytes).
        """
        raw = _key("PUT", key)
        opts = options(
            options_,
            {"expiration": expiration, "expirationTtl": expirationTtl, "metadata": metadata},
            "KV PUT",
        )
        data = await self._value(value)
        if len(data) > MAX_VALUE_BYTES:
            raise JsException(
                f"KV PUT failed: 413 Value length of {len(data)} exceeds limit of"
                f" {MAX_VALUE_BYTES}."
            )
        expires = self._expiration(opts)
        meta_text = None
        if "metadata" in opts:
            try:
                meta_text = json.dumps(plain(opts["metadata"]), separators=(",", ":"))
            except (TypeError, ValueError) as exc:
                raise JsException(
                    f"KV PUT failed: metadata must be JSON-serializable ({exc})", "TypeError"
                ) from None
            size = len(meta_text.encode())
            if size > MAX_METADATA_BYTES:
                raise JsException(
                    f"KV PUT failed: 413 Metadata length of {size} exceeds limit of"
                    f" {MAX_METADATA_BYTES}."
                )
        self._conn.execute(
            "INSERT OR REPLACE INTO kv (key, value, expiration, metadata) VALUES (?, ?, ?, ?)",
            (raw, data, expires, meta_text),
        )

    @staticmethod
    async def _value(value: Any) -> bytes:
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, ReadableStream):
            return await value._read_all()
        raise JsException(
            "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and"
            f" ReadableStreams as values (got {type(value).__name__}).",
            "TypeError",
        )

    def _expiration(self, opts: dict[str, Any]) -> int | None:
        now = self.now()
        if "expirationTtl" in opts:
            given = opts["expirationTtl"]
            ttl = _number(given)
            if ttl is None or ttl <= 0:
                raise JsException(
                    f"KV PUT failed: 400 Invalid expiration_ttl of {given}. Please specify"
                    " integer greater than 0."
                )
            if ttl < MIN_TTL:
                raise JsException(
                    f"KV PUT failed: 400 Invalid expiration_ttl of {given}. Expiration TTL"
                    f" must be at least {MIN_TTL}."
                )
            return math.floor(now) + int(ttl)
        if "expiration" in opts:
            given = opts["expiration"]
            at = _number(given)
            if at is None or at <= now:
                raise JsException(
                    f"KV PUT failed: 400 Invalid expiration of {given}. Please specify integer"
                    " greater than the current number of seconds since the UNIX epoch."
                )
            if at < now + MIN_TTL:
                raise JsException(
                    f"KV PUT failed: 400 Invalid expiration of {given}. Expiration times must"
                    f" be at least {MIN_TTL} seconds in the future."
                )
            return int(at)
        return None

    async def delete(self, key: str) -> None:
        """Remove ``key`` (nothing happens when it is missing)."""
        self._conn.execute("DELETE FROM kv WHERE key = ?", (_key("DELETE", key),))

    # ---------------------------------------------------------------- list (last: shadows `list`)

    async def list(
        self,
        options_: Any = None,
        *,
        prefix: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JsObject:
        """Keys in byte order: ``{keys: [{name, expiration?, metadata?}], list_complete,
        cursor?}``; pass ``cursor`` back for the next page (up to ``limit``, max 1000)."""
        opts = options(options_, {"prefix": prefix, "limit": limit, "cursor": cursor}, "KV LIST")
        count = opts.get("limit", MAX_LIST_LIMIT)
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            raise JsException(
                f"KV LIST failed: 400 Invalid key_count_limit of {count}. Please specify an"
                " integer greater than 0."
            )
        if count > MAX_LIST_LIMIT:
            raise JsException(
                f"KV LIST failed: 400 Invalid key_count_limit of {count}. Please specify an"
                f" integer less than {MAX_LIST_LIMIT + 1}."
            )
        low = str(opts.get("prefix", "")).encode("utf-8", "surrogatepass")
        high = _successor(low)
        after: bytes | None = None
        if opts.get("cursor"):
            try:
                after = base64.urlsafe_b64decode(str(opts["cursor"]).encode())
            except (binascii.Error, ValueError):
                raise JsException("KV LIST failed: 400 Invalid cursor.") from None
        sql = [
            "SELECT key, expiration, metadata FROM kv WHERE (expiration IS NULL OR expiration > ?)"
        ]
        params: list[Any] = [math.floor(self.now())]
        if after is not None and after >= low:
            sql.append("AND key > ?")
            params.append(after)
        else:
            sql.append("AND key >= ?")
            params.append(low)
        if high is not None:
            sql.append("AND key < ?")
            params.append(high)
        sql.append("ORDER BY key LIMIT ?")
        params.append(count + 1)
        rows = self._conn.execute(" ".join(sql), params).fetchall()
        complete = len(rows) <= count
        keys = JsArray()
        for raw, expiration, metadata in rows[:count]:
            entry: dict[str, Any] = {"name": raw.decode("utf-8", "surrogatepass")}
            if expiration is not None:
                entry["expiration"] = expiration
            if metadata is not None:
                entry["metadata"] = _jsify(json.loads(metadata))
            keys.append(JsObject._wrap(entry))
        result: dict[str, Any] = {"keys": keys, "list_complete": complete, "cacheStatus": None}
        if not complete:
            last: bytes = rows[count - 1][0]
            result["cursor"] = base64.urlsafe_b64encode(last).decode()
        return JsObject._wrap(result)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
