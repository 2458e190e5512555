"""D1 on SQLite: ``env.DB.prepare(sql).bind(*args).all()`` and friends.

Results take the shape Cloudflare returns: ``all()``/``run()`` give a result object with
``results`` (rows with attribute and item access and ``.to_py()``), ``success`` and
``meta`` (``changes``, ``last_row_id``, ``duration``, ``rows_read``, ``rows_written``...);
``first()`` gives a row or None; ``raw()`` gives arrays. SQL errors raise an error whose
message reads like D1's: ``D1_ERROR: no such table: users: SQLITE_ERROR``.

Queries run on the event loop's thread: a point query takes microseconds, and one
worker isolate on Cloudflare is single-threaded too.

Example::

    row = await env.DB.prepare("SELECT id, name FROM users WHERE id = ?").bind(42).first()
    return Response.json(row)
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from time import perf_counter
from typing import Any

from js import ArrayBuffer
from pyodide.ffi import JsArray, JsException, JsNull, JsObject, JsProxy

from ..._sql import split_statements
from ._sqlite import connect

__all__ = ["D1Database", "D1DatabaseSession", "D1Error", "D1PreparedStatement"]

SERVED_BY = "alchemy-nb-local"


class D1Error(JsException):
    """A D1 error: ``str(error)`` is ``"Error: D1_ERROR: <sqlite message>: <SQLITE_CODE>"``."""


def _d1_error(exc: Exception) -> D1Error:
    if isinstance(exc, sqlite3.ProgrammingError) and "bindings" in str(exc):
        return D1Error(f"D1_ERROR: Wrong number of parameter bindings for SQL query. ({exc})")
    if isinstance(exc, OverflowError):
        return D1Error(f"D1_TYPE_ERROR: {exc}")
    name = getattr(exc, "sqlite_errorname", None)
    if isinstance(name, str) and name:
        code = "_".join(name.split("_")[:2])
        return D1Error(f"D1_ERROR: {exc}: {code}")
    return D1Error(f"D1_ERROR: {exc}")


def _js_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if callable(value):
        return "function"
    return "object"


def _bind_value(value: Any) -> Any:
    kind = type(value)
    if value is None or kind is int or kind is str or kind is float:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, JsNull):
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    shown = "[object Object]" if isinstance(value, dict | JsProxy) else str(value)
    raise D1Error(
        f"D1_TYPE_ERROR: Type '{_js_type(value)}' not supported for value '{shown}'", "TypeError"
    )


def _row(names: list[str], row: tuple[Any, ...]) -> JsObject:
    data = dict(zip(names, row, strict=True))
    if bytes in map(type, row):
        # D1 returns BLOB columns as arrays of byte values.
        for key, value in data.items():
            if type(value) is bytes:
                data[key] = JsArray(value)
    return JsObject._wrap(data)


class D1Database:
    """A D1 database binding (``env.DB``) over one SQLite file.

    ``prepare(sql)`` → statement; ``await batch([...])`` runs statements in one
    transaction; ``await exec(sql)`` runs a script; ``withSession()`` gives a session.
    """

    __slots__ = ("_conn", "_name", "_path", "_size")

    def __init__(self, path: str, name: str = "DB") -> None:
        self._path = path
        self._name = name
        self._conn = connect(path, foreign_keys=True)
        self._size = self._file_size()

    def __repr__(self) -> str:
        return f"D1Database({self._name!r})"

    def close(self) -> None:
        """Close the SQLite connection."""
        self._conn.close()

    def _file_size(self) -> int:
        try:
            return os.stat(self._path).st_size
        except OSError:
            return 0

    def prepare(self, query: str) -> D1PreparedStatement:
        """A statement for ``query`` (``?`` or ``?1`` placeholders); bind with ``.bind(...)``."""
        if not isinstance(query, str):
            raise D1Error("D1_ERROR: prepare() needs the SQL query as a string", "TypeError")
        return D1PreparedStatement(self, query, ())

    async def batch(self, statements: Iterable[D1PreparedStatement]) -> JsArray:
        """Run ``statements`` in one transaction; a failure rolls all of them back."""
        items = list(statements)
        for item in items:
            if not isinstance(item, D1PreparedStatement) or item._db is not self:
                raise D1Error(
                    "D1_ERROR: batch() takes statements prepared on this database", "TypeError"
                )
        conn = self._conn
        nested = conn.in_transaction
        conn.execute("SAVEPOINT d1_batch" if nested else "BEGIN IMMEDIATE")
        try:
            results = JsArray(item._result() for item in items)
        except BaseException:
            conn.execute("ROLLBACK TO d1_batch" if nested else "ROLLBACK")
            if nested:
                conn.execute("RELEASE d1_batch")
            raise
        conn.execute("RELEASE d1_batch" if nested else "COMMIT")
        return results

    async def exec(self, query: str) -> JsObject:
        """Run one or more statements without bindings; gives ``{count, duration}``."""
        start = perf_counter()
        count = 0
        for number, statement in enumerate(split_statements(query), start=1):
            try:
                self._conn.execute(statement).fetchall()
            except (sqlite3.Error, OverflowError) as exc:
                raise D1Error(f"D1_EXEC_ERROR: Error in line {number}: {statement}: {exc}") from exc
            count += 1
        self._size = self._file_size()
        return JsObject._wrap({"count": count, "duration": (perf_counter() - start) * 1000})

    async def dump(self) -> ArrayBuffer:
        """The whole database file, as bytes."""
        return ArrayBuffer(self._conn.serialize())

    def withSession(self, constraint_or_bookmark: str | None = None) -> D1DatabaseSession:
        """A session (read replication is not simulated: it reads the same database)."""
        return D1DatabaseSession(self)

    def _meta(self, duration: float, changes: int, last_row_id: int, rows_read: int) -> JsObject:
        if changes:
            self._size = self._file_size()
        return JsObject._wrap(
            {
                "served_by": SERVED_BY,
                "served_by_region": "LOCAL",
                "served_by_primary": True,
                "duration": duration,
                "changes": changes,
                "last_row_id": last_row_id,
                "changed_db": changes > 0,
                "size_after": self._size,
                "rows_read": rows_read,
                "rows_written": changes,
                "timings": JsObject._wrap({"sql_duration_ms": duration}),
            }
        )


class D1DatabaseSession:
    """A D1 session: ``prepare``, ``batch`` and ``getBookmark()``."""

    __slots__ = ("_db",)

    def __init__(self, db: D1Database) -> None:
        self._db = db

    def prepare(self, query: str) -> D1PreparedStatement:
        """As :meth:`D1Database.prepare`."""
        return self._db.prepare(query)

    async def batch(self, statements: Iterable[D1PreparedStatement]) -> JsArray:
        """As :meth:`D1Database.batch`."""
        return await self._db.batch(statements)

    def getBookmark(self) -> str:
        """A bookmark naming the database's current version."""
        version = self._db._conn.execute("PRAGMA data_version").fetchone()[0]
        return f"local-{version:016x}"


class D1PreparedStatement:
    """A prepared statement: ``bind(*values)`` then ``first()``, ``all()``, ``run()``, ``raw()``.

    ``bind`` returns a new statement; values are ``None``, ``bool``, ``int``, ``float``,
    ``str`` or bytes. Anything else raises ``D1_TYPE_ERROR`` as on Cloudflare.
    """

    __slots__ = ("_db", "_params", "_sql")

    def __init__(self, db: D1Database, sql: str, params: tuple[Any, ...]) -> None:
        self._db = db
        self._sql = sql
        self._params = params

    def __repr__(self) -> str:
        return f"D1PreparedStatement({self._sql!r})"

    def bind(self, *values: Any) -> D1PreparedStatement:
        """A statement with ``values`` bound to its placeholders, in order."""
        return D1PreparedStatement(self._db, self._sql, tuple(map(_bind_value, values)))

    def _execute(self) -> tuple[list[str], list[tuple[Any, ...]], int, int, float]:
        start = perf_counter()
        try:
            cursor = self._db._conn.execute(self._sql, self._params)
            rows = cursor.fetchall()
        except (sqlite3.Error, OverflowError) as exc:
            raise _d1_error(exc) from exc
        duration = (perf_counter() - start) * 1000
        description = cursor.description
        names = [d[0] for d in description] if description else []
        changes = cursor.rowcount if cursor.rowcount > 0 else 0
        return names, rows, changes, cursor.lastrowid or 0, duration

    def _result(self) -> JsObject:
        names, rows, changes, last_row_id, duration = self._execute()
        return JsObject._wrap(
            {
                "results": JsArray(_row(names, row) for row in rows),
                "success": True,
                "meta": self._db._meta(duration, changes, last_row_id, len(rows)),
            }
        )

    async def all(self) -> JsObject:
        """``{results, success, meta}``: every row."""
        return self._result()

    async def run(self) -> JsObject:
        """Run the statement; ``{results, success, meta}`` as :meth:`all`."""
        return self._result()

    async def first(self, colName: str | None = None) -> Any:
        """The first row (or ``colName``'s value in it), or None when there is none."""
        try:
            cursor = self._db._conn.execute(self._sql, self._params)
            row = cursor.fetchone()
            description = cursor.description
            cursor.close()
        except (sqlite3.Error, OverflowError) as exc:
            raise _d1_error(exc) from exc
        names = [d[0] for d in description] if description else []
        if colName is not None and colName not in names:
            raise D1Error(f"D1_COLUMN_NOTFOUND: Column not found ({colName})")
        if row is None:
            return None
        result = _row(names, row)
        return result[colName] if colName is not None else result

    async def raw(self, options: Any = None, *, columnNames: bool = False) -> JsArray:
        """Rows as arrays; with ``columnNames=True`` the first array holds the column names."""
        if options is not None:
            columnNames = bool(_option(options, "columnNames", columnNames))
        names, rows, _changes, _last, _duration = self._execute()
        out = JsArray()
        if columnNames:
            out.append(JsArray(names))
        for row in rows:
            out.append(JsArray(JsArray(v) if type(v) is bytes else v for v in row))
        return out


def _option(options: Any, name: str, default: Any) -> Any:
    if isinstance(options, JsObject):
        return options._js.get(name, default)
    if isinstance(options, dict):
        return options.get(name, default)
    return getattr(options, name, default)
