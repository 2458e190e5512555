"""R2 in a folder: ``put``, ``get`` (ranges, ``onlyIf``), ``head``, ``delete``, ``list``, multipart.

Layout of the bucket's folder::

    r2.sqlite             objects, multipart uploads and parts (keys as UTF-8 BLOBs)
    blobs/ab/ab12...      contents, named by their SHA-256 (never by the key)
    tmp/                  contents being written

A key is never used as a path, so ``../../etc/x``, ``/abs`` or NUL bytes are just keys
and nothing is written outside the folder. Identical contents are stored once; a
content file is removed when no object or part refers to it any more. Writes happen
inside a SQLite write transaction, so two processes sharing the bucket stay consistent.

Example::

    await env.FILES.put("a/b.txt", "hi", httpMetadata={"contentType": "text/plain"})
    obj = await env.FILES.get("a/b.txt", range={"offset": 0, "length": 1})
    await obj.text()  # "h"
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

from js import ArrayBuffer, Date, Headers, ReadableStream, Uint8Array, _jsify, _to_ms
from pyodide.ffi import JsArray, JsException, JsObject, JsProxy
from workers import Blob

from ._convert import options, plain
from ._sqlite import connect

__all__ = ["R2Bucket", "R2MultipartUpload", "R2Object", "R2ObjectBody"]

MAX_KEY_BYTES = 1024
MAX_LIST_LIMIT = 1000
MAX_DELETE_KEYS = 1000
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
EAGER_READ_BYTES = 1024 * 1024
CHUNK_BYTES = 256 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    key BLOB PRIMARY KEY,
    version TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    uploaded INTEGER NOT NULL,
    blob TEXT NOT NULL,
    http_metadata TEXT NOT NULL,
    custom_metadata TEXT NOT NULL,
    checksums TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_blob ON objects (blob);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    key BLOB NOT NULL,
    http_metadata TEXT NOT NULL,
    custom_metadata TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    blob TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
CREATE INDEX IF NOT EXISTS parts_blob ON parts (blob);
"""

_OBJECT_COLUMNS = (
    "key, version, size, etag, uploaded, blob, http_metadata, custom_metadata, checksums"
)
_HTTP_FIELDS = {
    "contentType": "content-type",
    "contentLanguage": "content-language",
    "contentDisposition": "content-disposition",
    "contentEncoding": "content-encoding",
    "cacheControl": "cache-control",
}
_CHECKSUMS = ("md5", "sha1", "sha256", "sha384", "sha512")


class R2Error(JsException):
    """An R2 error: ``"<method>: <message> (<code>)"``, as Cloudflare words them."""

    def __init__(self, method: str, message: str, code: int, name: str = "Error") -> None:
        super().__init__(f"{method}: {message} ({code})", name)
        self.code = code


def _key(method: str, key: Any) -> bytes:
    if not isinstance(key, str):
        raise JsException(
            f"Failed to execute '{method}' on 'R2Bucket': parameter 1 is not of type 'string'.",
            "TypeError",
        )
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_KEY_BYTES:
        raise R2Error(method, "The specified object name is not valid.", 10020)
    return raw


def _successor(prefix: bytes) -> bytes | None:
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _strip_etag(value: str) -> str:
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _etag_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [_strip_etag(v) for v in value.split(",") if v.strip()]
    if isinstance(value, JsObject | dict):
        data = plain(value)
        return [_strip_etag(str(data.get("value", "")))]
    return [v for item in value for v in _etag_list(item)]


@dataclass(frozen=True, slots=True)
class _Conditional:
    etag_matches: list[str] | None = None
    etag_does_not_match: list[str] | None = None
    uploaded_before: float | None = None
    uploaded_after: float | None = None
    seconds: bool = False

    def passes(self, etag: str | None, uploaded: float | None) -> bool:
        """RFC 9110's evaluation order: If-Match, If-Unmodified-Since, If-None-Match,
        If-Modified-Since (the date checks only when the etag check is absent)."""
        if etag is None or uploaded is None:
            return self.etag_matches is None
        if self.seconds:
            uploaded = (uploaded // 1000) * 1000
        if self.etag_matches is not None:
            if "*" not in self.etag_matches and etag not in self.etag_matches:
                return False
        elif self.uploaded_before is not None and uploaded > self.uploaded_before:
            return False
        if self.etag_does_not_match is not None:
            if "*" in self.etag_does_not_match or etag in self.etag_does_not_match:
                return False
        elif self.uploaded_after is not None and uploaded <= self.uploaded_after:
            return False
        return True


def _as_headers(value: Any) -> Any:
    """``workers.Request.headers`` (an ``HTTPMessage``) as JavaScript ``Headers``."""
    return Headers(value) if isinstance(value, Message) else value


def _conditional(value: Any) -> _Conditional | None:
    value = _as_headers(value)
    if value is None:
        return None
    if isinstance(value, Headers):

        def http_date(name: str) -> float | None:
            text = value.get(name)
            return None if text is None else parsedate_to_datetime(text).timestamp() * 1000

        if_match = value.get("if-match")
        if_none_match = value.get("if-none-match")
        return _Conditional(
            etag_matches=None if if_match is None else _etag_list(if_match),
            etag_does_not_match=None if if_none_match is None else _etag_list(if_none_match),
            uploaded_before=http_date("if-unmodified-since"),
            uploaded_after=http_date("if-modified-since"),
            seconds=True,
        )
    opts = options(value, {}, "onlyIf")

    def date(name: str) -> float | None:
        return None if name not in opts else _to_ms(opts[name])

    return _Conditional(
        etag_matches=_etag_list(opts["etagMatches"]) if "etagMatches" in opts else None,
        etag_does_not_match=_etag_list(opts["etagDoesNotMatch"])
        if "etagDoesNotMatch" in opts
        else None,
        uploaded_before=date("uploadedBefore"),
        uploaded_after=date("uploadedAfter"),
        seconds=bool(opts.get("secondsGranularity", False)),
    )


def _http_metadata(value: Any) -> dict[str, Any]:
    """``httpMetadata`` (an object or Headers) as stored: camelCase names, ms for expiry."""
    value = _as_headers(value)
    if value is None:
        return {}
    if isinstance(value, Headers):
        out: dict[str, Any] = {}
        for field_name, header in _HTTP_FIELDS.items():
            text = value.get(header)
            if text is not None:
                out[field_name] = text
        expires = value.get("expires")
        if expires is not None:
            with contextlib.suppress(TypeError, ValueError):
                out["cacheExpiry"] = parsedate_to_datetime(expires).timestamp() * 1000
        return out
    data = options(value, {}, "httpMetadata")
    out = {k: str(data[k]) for k in _HTTP_FIELDS if k in data}
    if "cacheExpiry" in data:
        out["cacheExpiry"] = _to_ms(data["cacheExpiry"])
    return out


def _http_metadata_object(stored: dict[str, Any]) -> JsObject:
    data = dict(stored)
    if "cacheExpiry" in data:
        data["cacheExpiry"] = Date(data["cacheExpiry"])
    return JsObject._wrap(data)


class R2Checksums(JsProxy):
    """An object's checksums: ``md5`` (single-part uploads), ``sha1``... as ArrayBuffers;
    ``toJSON()`` gives them as hex strings."""

    __slots__ = ("_hex",)
    _js_name = "R2Checksums"

    def __init__(self, hex_digests: dict[str, str]) -> None:
        self._hex = hex_digests

    def __getattr__(self, name: str) -> Any:
        if name in _CHECKSUMS:
            digest = self._hex.get(name)
            return None if digest is None else ArrayBuffer(bytes.fromhex(digest))
        raise AttributeError(name)

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(name)

    def toJSON(self) -> dict[str, str]:
        """``{"md5": "<hex>", ...}``."""
        return dict(self._hex)

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> dict[str, str]:
        """The checksums as hex strings."""
        return dict(self._hex)

    def __repr__(self) -> str:
        return f"R2Checksums({self._hex!r})"


class R2Object(JsProxy):
    """An object's metadata, as ``head()``, ``put()`` and ``list()`` return it.

    ``key``, ``version``, ``size``, ``etag``, ``httpEtag``, ``uploaded`` (a ``Date``),
    ``httpMetadata``, ``customMetadata``, ``checksums``, ``range``, ``storageClass``;
    ``writeHttpMetadata(headers)`` copies the HTTP metadata onto response headers.
    """

    __slots__ = (
        "checksums",
        "customMetadata",
        "etag",
        "httpEtag",
        "httpMetadata",
        "key",
        "range",
        "size",
        "storageClass",
        "uploaded",
        "version",
    )
    _js_name = "R2Object"

    def __init__(self, row: tuple[Any, ...], *, metadata: bool = True) -> None:
        key, version, size, etag, uploaded, _blob, http_md, custom_md, checksums = row
        self.key: str = key.decode("utf-8", "surrogatepass")
        self.version: str = version
        self.size: int = size
        self.etag: str = etag
        self.httpEtag: str = f'"{etag}"'
        self.uploaded = Date(uploaded)
        self.httpMetadata = _http_metadata_object(json.loads(http_md) if metadata else {})
        self.customMetadata = JsObject._wrap(json.loads(custom_md) if metadata else {})
        self.checksums = R2Checksums(json.loads(checksums))
        self.range: JsObject | None = None
        self.storageClass = "Standard"

    def writeHttpMetadata(self, headers: Any) -> None:
        """Set ``content-type``, ``cache-control``, ... (and ``expires``) on ``headers``
        (a ``Headers``, a dict or an ``HTTPMessage``)."""
        data = self.httpMetadata._js
        values = {header: data[name] for name, header in _HTTP_FIELDS.items() if name in data}
        if "cacheExpiry" in data:
            values["expires"] = data["cacheExpiry"].toUTCString()
        for header, value in values.items():
            if isinstance(headers, Headers):
                headers.set(header, value)
            elif isinstance(headers, dict):
                headers[header] = value
            else:  # HTTPMessage and other message-like mappings
                if header in headers:
                    del headers[header]
                headers[header] = value

    def to_py(self, *, depth: int = -1, default_converter: Any = None) -> dict[str, Any]:
        """The metadata as a dict."""
        return {
            "key": self.key,
            "version": self.version,
            "size": self.size,
            "etag": self.etag,
            "httpEtag": self.httpEtag,
            "uploaded": self.uploaded.to_py(),
            "httpMetadata": self.httpMetadata.to_py(),
            "customMetadata": self.customMetadata.to_py(),
            "checksums": self.checksums.to_py(),
            "range": None if self.range is None else self.range.to_py(),
            "storageClass": self.storageClass,
        }

    def toJSON(self) -> dict[str, Any]:
        """What ``JSON.stringify`` writes for the object."""
        data = self.to_py()
        data["uploaded"] = self.uploaded.toISOString()
        return data

    def __repr__(self) -> str:
        return f"R2Object(key={self.key!r}, size={self.size}, etag={self.etag!r})"


class R2ObjectBody(R2Object):
    """An object with its content, as ``get()`` returns it: the :class:`R2Object` fields
    plus ``body`` (a stream), ``bodyUsed``, ``await text()``, ``json()``,
    ``arrayBuffer()``, ``bytes()``."""

    __slots__ = ("_data", "_length", "_offset", "_path", "_used")
    _js_name = "GetResult"

    def __init__(
        self, row: tuple[Any, ...], path: str, offset: int, length: int, ranged: bool
    ) -> None:
        super().__init__(row)
        self._path = path
        self._offset = offset
        self._length = length
        self._used = False
        self._data = _read_range(path, offset, length) if length <= EAGER_READ_BYTES else None
        if ranged:
            self.range = JsObject._wrap({"offset": offset, "length": length})

    @property
    def bodyUsed(self) -> bool:
        """Whether the body has been read."""
        return self._used

    def _take(self) -> None:
        if self._used:
            raise JsException("Body has already been used. It can only be used once.", "TypeError")
        self._used = True

    @property
    def body(self) -> ReadableStream:
        """The content as a stream; give it to ``Response(obj.body, ...)``."""
        self._take()
        if self._data is not None:
            return ReadableStream(self._data)
        return ReadableStream(_chunks(self._path, self._offset, self._length), self._length)

    def _read(self) -> bytes:
        self._take()
        if self._data is not None:
            return self._data
        return _read_range(self._path, self._offset, self._length)

    async def arrayBuffer(self) -> ArrayBuffer:
        """The content as an ``ArrayBuffer``."""
        return ArrayBuffer(self._read())

    async def bytes(self) -> Uint8Array:
        """The content as a ``Uint8Array``."""
        return Uint8Array(self._read())

    async def text(self) -> str:
        """The content decoded as UTF-8."""
        return self._read().decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The content parsed as JSON, into JavaScript-like values."""
        try:
            return _jsify(json.loads(self._read()))
        except ValueError as exc:
            raise JsException(f"Unexpected token in JSON: {exc}", "SyntaxError") from None

    async def blob(self) -> Blob:
        """The content as a ``workers.Blob`` with the object's content type."""
        return Blob([self._read()], self.httpMetadata._js.get("contentType"))


def _read_range(path: str, offset: int, length: int) -> bytes:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read(length)
    except FileNotFoundError:
        raise JsException(
            "get: the object changed while it was being read; read it again (10001)"
        ) from None


def _chunks(path: str, offset: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as file:
        file.seek(offset)
        remaining = length
        while remaining > 0:
            chunk = file.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


async def _body_bytes(method: str, value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, ReadableStream):
        return await value._read_all()
    if isinstance(value, R2ObjectBody):
        return value._read()
    as_body = getattr(value, "_as_body", None)  # workers.Blob
    if callable(as_body):
        data = as_body()[0]
        if isinstance(data, bytes):
            return data
    raise JsException(
        f"{method}: the value must be a string, ArrayBuffer, ReadableStream, Blob or null"
        f" (got {type(value).__name__})",
        "TypeError",
    )


def _expected_digest(value: Any) -> str:
    if isinstance(value, str):
        return value.lower()
    return bytes(value).hex()


class R2Bucket:
    """An R2 bucket binding (``env.BUCKET``) over one folder."""

    __slots__ = ("_blobs", "_conn", "_name", "_path", "_tmp")

    def __init__(self, path: str, name: str = "BUCKET") -> None:
        self._path = path
        self._name = name
        self._blobs = os.path.join(path, "blobs")
        self._tmp = os.path.join(path, "tmp")
        os.makedirs(self._blobs, exist_ok=True)
        os.makedirs(self._tmp, exist_ok=True)
        self._conn = connect(os.path.join(path, "r2.sqlite"), schema=_SCHEMA)

    def __repr__(self) -> str:
        return f"R2Bucket({self._name!r})"

    def close(self) -> None:
        """Close the SQLite connection."""
        self._conn.close()

    # ---------------------------------------------------------------- content files

    def _blob_path(self, digest: str) -> str:
        return os.path.join(self._blobs, digest[:2], digest)

    def _stage(self, data: bytes) -> tuple[str, str]:
        """Write ``data`` to a temporary file; its path and SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        temp = os.path.join(self._tmp, f"{secrets.token_hex(16)}.tmp")
        with open(temp, "wb") as file:
            file.write(data)
        return temp, digest

    def _publish(self, temp: str, digest: str) -> None:
        """Move a staged file into place (call inside the write transaction)."""
        final = self._blob_path(digest)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(temp, final)

    def _release(self, digest: str) -> None:
        """Remove a content file nothing refers to (call inside the write transaction)."""
        conn = self._conn
        if conn.execute("SELECT 1 FROM objects WHERE blob = ? LIMIT 1", (digest,)).fetchone():
            return
        if conn.execute("SELECT 1 FROM parts WHERE blob = ? LIMIT 1", (digest,)).fetchone():
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._blob_path(digest))

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _row(self, raw_key: bytes) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(
            f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE key = ?", (raw_key,)
        ).fetchone()
        return row

    # ---------------------------------------------------------------- head / get

    async def head(self, key: str) -> R2Object | None:
        """The object's metadata, or None when it does not exist."""
        row = self._row(_key("head", key))
        return None if row is None else R2Object(row)

    async def get(self, key: str, options_: Any = None, **kwargs: Any) -> R2Object | None:
        """The object with its body, or None when it does not exist.

        ``range``: ``{offset, length}``, ``{offset}``, ``{suffix}`` or Headers with
        ``Range``. ``onlyIf``: ``{etagMatches, etagDoesNotMatch, uploadedBefore,
        uploadedAfter}`` or Headers with ``If-*``; when it fails, the object comes back
        without a body.
        """
        raw = _key("get", key)
        opts = options(options_, kwargs, "get")
        row = self._row(raw)
        if row is None:
            return None
        cond = _conditional(opts.get("onlyIf"))
        if cond is not None and not cond.passes(row[3], row[4]):
            return R2Object(row)
        size: int = row[2]
        offset, length, ranged = self._range(opts.get("range"), size)
        return R2ObjectBody(row, self._blob_path(row[5]), offset, length, ranged)

    @staticmethod
    def _range(value: Any, size: int) -> tuple[int, int, bool]:
        value = _as_headers(value)
        if value is None:
            return 0, size, False
        if isinstance(value, Headers):
            header = value.get("range")
            if header is None:
                return 0, size, False
            return (*_parse_range_header(header, size), True)
        spec = plain(options(value, {}, "get"))
        unsatisfiable = R2Error("get", "The requested range is not satisfiable", 10039)
        if "suffix" in spec:
            suffix = int(spec["suffix"])
            if suffix <= 0:
                raise unsatisfiable
            length = min(suffix, size)
            return size - length, length, True
        offset = int(spec.get("offset", 0))
        if offset < 0 or (offset >= size and size > 0) or (size == 0 and offset > 0):
            raise unsatisfiable
        length = int(spec.get("length", size - offset))
        if length < 0:
            raise unsatisfiable
        return offset, min(length, size - offset), True

    # ---------------------------------------------------------------- put / delete

    async def put(
        self, key: str, value: Any, options_: Any = None, **kwargs: Any
    ) -> R2Object | None:
        """Store ``value`` (str, bytes, ArrayBuffer, ReadableStream, Blob or None) as ``key``.

        Options: ``httpMetadata`` (object or Headers), ``customMetadata`` (str → str),
        ``onlyIf`` (the put is skipped, and None returned, when it fails), ``md5`` /
        ``sha1`` / ``sha256`` / ``sha384`` / ``sha512`` (verified). Returns the object.
        """
        raw = _key("put", key)
        opts = options(options_, kwargs, "put")
        data = await _body_bytes("put", value)
        hexes = {"md5": hashlib.md5(data, usedforsecurity=False).hexdigest()}
        for algorithm in _CHECKSUMS:
            if algorithm not in opts:
                continue
            actual = hashlib.new(algorithm, data, usedforsecurity=False).hexdigest()
            if _expected_digest(opts[algorithm]) != actual:
                raise R2Error(
                    "put",
                    f"The {algorithm.upper()} checksum you specified did not match what we"
                    " received.",
                    10037,
                )
            hexes[algorithm] = actual
        http_md = _http_metadata(opts.get("httpMetadata"))
        custom_md = {str(k): str(v) for k, v in plain(opts.get("customMetadata") or {}).items()}
        cond = _conditional(opts.get("onlyIf"))
        temp, digest = self._stage(data)
        try:
            row = (
                raw,
                uuid.uuid4().hex,
                len(data),
                hexes["md5"],
                int(time.time() * 1000),
                digest,
                json.dumps(http_md),
                json.dumps(custom_md),
                json.dumps(hexes),
            )
            with self._write() as conn:
                old = self._row(raw)
                if cond is not None and not cond.passes(
                    None if old is None else old[3], None if old is None else old[4]
                ):
                    return None
                self._publish(temp, digest)
                conn.execute(
                    f"INSERT OR REPLACE INTO objects ({_OBJECT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                if old is not None and old[5] != digest:
                    self._release(old[5])
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return R2Object(row)

    async def delete(self, keys: str | list[str]) -> None:
        """Delete one key or a list of up to 1000 (missing keys are fine)."""
        items = [keys] if isinstance(keys, str) else list(keys)
        if len(items) > MAX_DELETE_KEYS:
            raise R2Error("delete", "Too many keys: at most 1000 per call.", 10001)
        raws = [_key("delete", k) for k in items]
        with self._write() as conn:
            for raw in raws:
                old = conn.execute("SELECT blob FROM objects WHERE key = ?", (raw,)).fetchone()
                if old is None:
                    continue
                conn.execute("DELETE FROM objects WHERE key = ?", (raw,))
                self._release(old[0])

    # ---------------------------------------------------------------- multipart

    async def createMultipartUpload(
        self, key: str, options_: Any = None, **kwargs: Any
    ) -> R2MultipartUpload:
        """Start a multipart upload for ``key`` (options: ``httpMetadata``, ``customMetadata``)."""
        raw = _key("createMultipartUpload", key)
        opts = options(options_, kwargs, "createMultipartUpload")
        upload_id = secrets.token_hex(16)
        http_md = _http_metadata(opts.get("httpMetadata"))
        custom_md = {str(k): str(v) for k, v in plain(opts.get("customMetadata") or {}).items()}
        self._conn.execute(
            "INSERT INTO uploads (upload_id, key, http_metadata, custom_metadata, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (upload_id, raw, json.dumps(http_md), json.dumps(custom_md), int(time.time() * 1000)),
        )
        return R2MultipartUpload(self, key, upload_id)

    def resumeMultipartUpload(self, key: str, uploadId: str) -> R2MultipartUpload:
        """The upload ``uploadId`` of ``key``, to add parts to or complete."""
        _key("resumeMultipartUpload", key)
        return R2MultipartUpload(self, key, str(uploadId))

    def _upload(self, method: str, key: str, upload_id: str) -> tuple[Any, ...]:
        row: tuple[Any, ...] | None = self._conn.execute(
            "SELECT key, http_metadata, custom_metadata FROM uploads WHERE upload_id = ?",
            (upload_id,),
        ).fetchone()
        if row is None or row[0] != _key(method, key):
            raise R2Error(method, "The specified multipart upload does not exist.", 10024)
        return row

    async def _upload_part(self, key: str, upload_id: str, number: int, value: Any) -> JsObject:
        if not isinstance(number, int) or not 1 <= number <= MAX_PARTS:
            raise JsException(
                f"Part number must be between 1 and {MAX_PARTS} (inclusive). Actual value"
                f" was: {number}",
                "TypeError",
            )
        data = await _body_bytes("uploadPart", value)
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        temp, digest = self._stage(data)
        try:
            with self._write() as conn:
                self._upload("uploadPart", key, upload_id)
                old = conn.execute(
                    "SELECT blob FROM parts WHERE upload_id = ? AND part_number = ?",
                    (upload_id, number),
                ).fetchone()
                self._publish(temp, digest)
                conn.execute(
                    "INSERT OR REPLACE INTO parts (upload_id, part_number, size, etag, blob)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (upload_id, number, len(data), etag, digest),
                )
                if old is not None and old[0] != digest:
                    self._release(old[0])
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return JsObject._wrap({"partNumber": number, "etag": etag})

    async def _abort(self, key: str, upload_id: str) -> None:
        with self._write() as conn:
            self._upload("abortMultipartUpload", key, upload_id)
            blobs = [
                r[0]
                for r in conn.execute("SELECT blob FROM parts WHERE upload_id = ?", (upload_id,))
            ]
            conn.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            conn.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
            for digest in set(blobs):
                self._release(digest)

    async def _complete(self, key: str, upload_id: str, uploaded: Any) -> R2Object:
        method = "completeMultipartUpload"
        requested = [plain(p) for p in uploaded]
        raw, http_md, custom_md = self._upload(method, key, upload_id)
        stored = {
            r[0]: r[1:]
            for r in self._conn.execute(
                "SELECT part_number, size, etag, blob FROM parts WHERE upload_id = ?",
                (upload_id,),
            )
        }
        chosen: list[tuple[int, str, str]] = []
        for part in requested:
            number = int(part.get("partNumber", 0))
            found = stored.get(number)
            if found is None or _strip_etag(str(part.get("etag", ""))) != found[1]:
                raise R2Error(
                    method, "One or more of the specified parts could not be found.", 10025
                )
            chosen.append((found[0], found[1], found[2]))
        if not chosen:
            raise R2Error(method, "There was a problem with the multipart upload.", 10048)
        sizes = [size for size, _, _ in chosen]
        if any(size < MIN_PART_BYTES for size in sizes[:-1]):
            raise R2Error(
                method,
                "Your proposed upload is smaller than the minimum allowed object size.",
                10011,
            )
        if len(set(sizes[:-1])) > 1 or (len(sizes) > 1 and sizes[-1] > sizes[0]):
            raise R2Error(method, "There was a problem with the multipart upload.", 10048)
        temp = os.path.join(self._tmp, f"{secrets.token_hex(16)}.tmp")
        hasher = hashlib.sha256()
        try:
            with open(temp, "wb") as out:
                for _size, _etag, digest in chosen:
                    for chunk in _chunks(self._blob_path(digest), 0, _size):
                        hasher.update(chunk)
                        out.write(chunk)
            digest = hasher.hexdigest()
            md5s = b"".join(bytes.fromhex(etag) for _, etag, _ in chosen)
            etag = f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(chosen)}"
            row = (
                raw,
                uuid.uuid4().hex,
                sum(sizes),
                etag,
                int(time.time() * 1000),
                digest,
                http_md,
                custom_md,
                json.dumps({}),
            )
            with self._write() as conn:
                self._upload(method, key, upload_id)
                old = self._row(raw)
                self._publish(temp, digest)
                conn.execute(
                    f"INSERT OR REPLACE INTO objects ({_OBJECT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                part_blobs = [
                    r[0]
                    for r in conn.execute(
                        "SELECT blob FROM parts WHERE upload_id = ?", (upload_id,)
                    )
                ]
                conn.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
                conn.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
                for old_digest in {*part_blobs, *([old[5]] if old is not None else [])}:
                    if old_digest != digest:
                        self._release(old_digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return R2Object(row)

    # ---------------------------------------------------------------- list (last: shadows `list`)

    async def list(self, options_: Any = None, **kwargs: Any) -> JsObject:
        """Objects in key order: ``{objects, truncated, cursor?, delimitedPrefixes}``.

        Options: ``prefix``, ``cursor``, ``limit`` (1-1000), ``delimiter``, ``startAfter``,
        ``include`` (``["httpMetadata", "customMetadata"]``).
        """
        opts = options(options_, kwargs, "list")
        limit = opts.get("limit", MAX_LIST_LIMIT)
        if (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 1 <= limit <= MAX_LIST_LIMIT
        ):
            raise R2Error("list", "MaxKeys params must be positive integer <= 1000.", 10022)
        prefix = str(opts.get("prefix", "")).encode("utf-8", "surrogatepass")
        delimiter = str(opts.get("delimiter", "")).encode("utf-8", "surrogatepass")
        include = set(plain(opts.get("include") or []))
        with_metadata = bool(include & {"httpMetadata", "customMetadata"})
        high = _successor(prefix)

        bound, inclusive = prefix, True
        if "startAfter" in opts:
            after = str(opts["startAfter"]).encode("utf-8", "surrogatepass")
            if after >= prefix:
                bound, inclusive = after, False
        if opts.get("cursor"):
            bound, inclusive = _decode_cursor(str(opts["cursor"]))

        objects = JsArray()
        prefixes = JsArray()
        count = 0
        truncated = False
        cursor: tuple[bytes, bool] | None = None
        while True:
            sql = f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE key {'>=' if inclusive else '>'} ?"
            params: list[Any] = [bound]
            if high is not None:
                sql += " AND key < ?"
                params.append(high)
            batch = limit - count + 1
            rows = self._conn.execute(sql + " ORDER BY key LIMIT ?", [*params, batch]).fetchall()
            seek: tuple[bytes, bool] | None = None
            for row in rows:
                if count == limit:
                    truncated = True
                    break
                raw_key: bytes = row[0]
                position = raw_key.find(delimiter, len(prefix)) if delimiter else -1
                if position >= 0:
                    group = raw_key[: position + len(delimiter)]
                    prefixes.append(group.decode("utf-8", "surrogatepass"))
                    count += 1
                    following = _successor(group)
                    seek = cursor = (following, True) if following is not None else (group, False)
                    if following is None:
                        seek = None
                        rows = []
                    break
                objects.append(_list_object(row, with_metadata, include))
                count += 1
                cursor = (raw_key, False)
            if truncated or (seek is None and len(rows) < batch):
                break
            if seek is not None:
                bound, inclusive = seek
            elif rows:
                bound, inclusive = rows[-1][0], False
            else:
                break
        result: dict[str, Any] = {
            "objects": objects,
            "truncated": truncated,
            "delimitedPrefixes": prefixes,
        }
        if truncated and cursor is not None:
            result["cursor"] = _encode_cursor(*cursor)
        return JsObject._wrap(result)


def _list_object(row: tuple[Any, ...], with_metadata: bool, include: set[str]) -> R2Object:
    obj = R2Object(row, metadata=with_metadata)
    if "httpMetadata" not in include:
        obj.httpMetadata = JsObject()
    if "customMetadata" not in include:
        obj.customMetadata = JsObject()
    return obj


def _encode_cursor(bound: bytes, inclusive: bool) -> str:
    return base64.urlsafe_b64encode((b"\x01" if inclusive else b"\x00") + bound).decode()


def _decode_cursor(cursor: str) -> tuple[bytes, bool]:
    try:
        data = base64.urlsafe_b64decode(cursor.encode())
    except (binascii.Error, ValueError):
        data = b""
    if not data or data[0] not in (0, 1):
        raise R2Error("list", "The specified cursor is not valid.", 10004)
    return data[1:], data[0] == 1


def _parse_range_header(header: str, size: int) -> tuple[int, int]:
    unsatisfiable = R2Error("get", "The requested range is not satisfiable", 10039)
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        raise unsatisfiable
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            suffix = int(last)
            length = min(suffix, size)
            return size - length, length
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        raise unsatisfiable from None
    if start >= size or end < start:
        raise unsatisfiable
    end = min(end, size - 1)
    return start, end - start + 1


class R2MultipartUpload(JsProxy):
    """A multipart upload: ``await uploadPart(n, data)`` → ``{partNumber, etag}``;
    ``await complete([parts])`` → the object; ``await abort()``.

    Every part but the last must be at least 5 MiB and all of one size, as on R2.
    """

    __slots__ = ("_bucket", "key", "uploadId")
    _js_name = "R2MultipartUpload"

    def __init__(self, bucket: R2Bucket, key: str, upload_id: str) -> None:
        self._bucket = bucket
        self.key = key
        self.uploadId = upload_id

    async def uploadPart(self, partNumber: int, value: Any, options_: Any = None) -> JsObject:
        """Upload part ``partNumber`` (1-10000); returns ``{partNumber, etag}``."""
        return await self._bucket._upload_part(self.key, self.uploadId, partNumber, value)

    async def abort(self) -> None:
        """Drop the upload and its parts."""
        await self._bucket._abort(self.key, self.uploadId)

    async def complete(self, uploadedParts: Any) -> R2Object:
        """Join the given parts (``[{partNumber, etag}, ...]``) into the object."""
        return await self._bucket._complete(self.key, self.uploadId, uploadedParts)

    def __repr__(self) -> str:
        return f"R2MultipartUpload(key={self.key!r}, uploadId={self.uploadId!r})"
