"""Durable Objects on the local target: per-id actors with their own durable storage.

``env.COUNTER`` is a :class:`Namespace`. ``idFromName(name)`` gives the same id for the
same name every time; ``get(id)`` gives a stub whose ``fetch`` and RPC methods run on the
one instance of the class for that id. Calls to one object are serialized (one at a
time, in arrival order); different objects run concurrently. Each object's storage is
its own SQLite file (``<namespace folder>/<id>.sqlite``): ``ctx.storage.get/put/delete/
list/deleteAll/transaction`` and ``ctx.storage.sql.exec``; alarms
(``setAlarm``/``getAlarm``/``deleteAlarm``, see ``_alarms.py``) and hibernatable
WebSockets (``ctx.acceptWebSocket``/``getWebSockets``/``getTags``, see ``_websockets.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from ._alarms import MAX_RETRIES, AlarmScheduler, alarm_time, ensure_alarm_table, to_ms
from ._websockets import Hibernation

_BACKGROUND: set[asyncio.Future[Any]] = set()  # keep waitUntil work alive until done

__all__ = ["DurableObjectId", "Namespace", "Storage"]

_MISSING = object()


class DurableObjectId:
    """An object's id: 64 hex digits. ``str(id)`` / ``id.toString()`` give them."""

    def __init__(self, hex_id: str, name: str | None = None) -> None:
        self._hex = hex_id
        self.name = name

    def toString(self) -> str:
        return self._hex

    def equals(self, other: DurableObjectId) -> bool:
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        return f"DurableObjectId({self._hex[:12]}…)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)


class _Cursor:
    """What ``storage.sql.exec`` returns: iterable rows (dicts), ``toArray()``, ``one()``."""

    def __init__(self, rows: list[dict[str, Any]], written: int) -> None:
        self._rows = rows
        self.rowsRead = len(rows)
        self.rowsWritten = written

    def __iter__(self) -> Any:
        return iter(self._rows)

    def toArray(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def one(self) -> dict[str, Any]:
        if len(self._rows) != 1:
            raise ValueError(f"Expected exactly one result from SQL query, got {len(self._rows)}")
        return self._rows[0]

    def raw(self) -> list[list[Any]]:
        return [list(r.values()) for r in self._rows]


class _Sql:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def exec(self, query: str, *bindings: Any) -> _Cursor:
        cur = self._conn.execute(query, bindings)
        names = [d[0] for d in cur.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        return _Cursor(rows, cur.rowcount if cur.rowcount > 0 else 0)

    @property
    def databaseSize(self) -> int:
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        return int(page_size * pages)


class Storage:
    """One object's durable storage (``self.ctx.storage``). Values are JSON."""

    def __init__(
        self,
        path: Path,
        on_alarm: Callable[[float | None], None] | None = None,
        name: str | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS _cf_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        ensure_alarm_table(self._conn)
        if name is not None:  # so an alarm after a restart knows the object's name
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS _cf_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            self._conn.execute(
                "INSERT OR IGNORE INTO _cf_meta (key, value) VALUES ('name', ?)", (name,)
            )
        self._on_alarm = on_alarm
        self.sql = _Sql(self._conn)

    async def getAlarm(self, options: Any = None) -> float | None:
        """The alarm's time in milliseconds since the epoch, or None."""
        row = self._conn.execute("SELECT time FROM _cf_alarm WHERE one = 1").fetchone()
        return None if row is None else float(row[0])

    async def setAlarm(self, scheduled_time: Any, options: Any = None) -> None:
        """Run the object's ``alarm()`` at ``scheduled_time`` (ms since the epoch, or a
        Date); replaces the alarm there was."""
        when = to_ms(scheduled_time)
        self._conn.execute(
            "INSERT INTO _cf_alarm (one, time, retries) VALUES (1, ?, 0)"
            " ON CONFLICT(one) DO UPDATE SET time = excluded.time, retries = 0",
            (when,),
        )
        if self._on_alarm is not None:
            self._on_alarm(when)

    async def deleteAlarm(self, options: Any = None) -> None:
        """Cancel the alarm, if any."""
        self._conn.execute("DELETE FROM _cf_alarm")
        if self._on_alarm is not None:
            self._on_alarm(None)

    def close(self) -> None:
        self._conn.close()

    async def get(self, key: str | Iterable[str]) -> Any:
        if isinstance(key, str):
            row = self._conn.execute("SELECT value FROM _cf_kv WHERE key = ?", (key,)).fetchone()
            return None if row is None else json.loads(row[0])
        keys = list(key)
        out: dict[str, Any] = {}
        for k in keys:
            row = self._conn.execute("SELECT value FROM _cf_kv WHERE key = ?", (k,)).fetchone()
            if row is not None:
                out[k] = json.loads(row[0])
        return out

    async def put(self, key: str | dict[str, Any], value: Any = _MISSING) -> None:
        entries = key.items() if isinstance(key, dict) else [(key, value)]
        if value is _MISSING and not isinstance(key, dict):
            raise TypeError("put(key, value) needs a value")
        with self._transaction():
            for k, v in entries:
                self._conn.execute(
                    "INSERT INTO _cf_kv (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (k, json.dumps(v)),
                )

    async def delete(self, key: str | Iterable[str]) -> bool | int:
        keys = [key] if isinstance(key, str) else list(key)
        with self._transaction():
            count = sum(
                self._conn.execute("DELETE FROM _cf_kv WHERE key = ?", (k,)).rowcount for k in keys
            )
        return bool(count) if isinstance(key, str) else count

    async def deleteAll(self) -> None:
        with self._transaction():
            self._conn.execute("DELETE FROM _cf_kv")

    async def list(
        self,
        options: dict[str, Any] | None = None,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> dict[str, Any]:
        opts = dict(options or {})
        prefix = opts.get("prefix", prefix)
        start, end = opts.get("start", start), opts.get("end", end)
        limit, reverse = opts.get("limit", limit), opts.get("reverse", reverse)
        query, args = "SELECT key, value FROM _cf_kv WHERE 1=1", []
        if prefix:
            query += " AND substr(key, 1, ?) = ?"
            args += [len(prefix), prefix]
        if start is not None:
            query += " AND key >= ?"
            args.append(start)
        if end is not None:
            query += " AND key < ?"
            args.append(end)
        query += " ORDER BY key " + ("DESC" if reverse else "ASC")
        if limit is not None:
            query += " LIMIT ?"
            args.append(int(limit))
        return {k: json.loads(v) for k, v in self._conn.execute(query, args)}

    async def transaction(self, closure: Callable[[Storage], Awaitable[Any]]) -> Any:
        """Run ``closure(txn)``: all of its writes commit together, or none do."""
        self._conn.execute("BEGIN")
        try:
            result = await closure(self)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    def transactionSync(self, closure: Callable[[], Any]) -> Any:
        self._conn.execute("BEGIN")
        try:
            result = closure()
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    def _transaction(self) -> Any:
        conn = self._conn

        class _Txn:
            def __enter__(self) -> None:
                self.outer = conn.in_transaction
                if not self.outer:
                    conn.execute("BEGIN")

            def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
                if self.outer:
                    return
                conn.execute("ROLLBACK" if kind else "COMMIT")

        return _Txn()


class State:
    """An object's ``ctx``: its ``id``, ``storage`` and ``blockConcurrencyWhile``."""

    def __init__(
        self, object_id: DurableObjectId, storage: Storage, hibernation: Hibernation | None = None
    ) -> None:
        self.id = object_id
        self.storage = storage
        self._hibernation = hibernation

    def acceptWebSocket(self, ws: Any, tags: Any = None) -> None:
        """Take the server end of a ``WebSocketPair``: its events call ``webSocketMessage``,
        ``webSocketClose`` and ``webSocketError`` on the object."""
        if self._hibernation is None:
            raise TypeError("acceptWebSocket() is only available in a Durable Object")
        self._hibernation.accept(ws, list(tags.to_py() if hasattr(tags, "to_py") else tags or []))

    def getWebSockets(self, tag: str | None = None) -> list[Any]:
        """The open WebSockets this object accepted (those with ``tag``, if given)."""
        return [] if self._hibernation is None else self._hibernation.sockets(tag)

    def getTags(self, ws: Any) -> list[str]:
        """The tags ``ws`` was accepted with."""
        return [] if self._hibernation is None else self._hibernation.tags(ws)

    def setWebSocketAutoResponse(self, pair: Any = None) -> None:
        """Answer ``pair.request`` with ``pair.response`` on every accepted WebSocket
        without calling ``webSocketMessage`` (None turns it off)."""
        if self._hibernation is not None:
            self._hibernation.auto_response = pair

    def getWebSocketAutoResponse(self) -> Any:
        """The pair set by :meth:`setWebSocketAutoResponse`, or None."""
        return None if self._hibernation is None else self._hibernation.auto_response

    def getWebSocketAutoResponseTimestamp(self, ws: Any) -> Any:
        """When ``ws`` last got the automatic answer (a Date), or None."""
        import js

        when = None if self._hibernation is None else self._hibernation.answered_at(ws)
        return None if when is None else js.Date.new(when)

    async def blockConcurrencyWhile(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return await fn()  # calls to an object are serialized already

    def waitUntil(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)


class _Instance:
    def __init__(self, obj: Any, state: State) -> None:
        self.obj = obj
        self.state = state
        self.lock = asyncio.Lock()


class Namespace:
    """``env.BINDING`` for a Durable Object class hosted by this worker."""

    def __init__(
        self,
        name: str,
        cls: type[Any],
        folder: Path,
        env: Callable[[], Any],
        to_request: Callable[..., Any],
    ) -> None:
        self._name = name
        self._cls = cls
        self._folder = folder
        self._env = env
        self._to_request = to_request
        self._instances: dict[str, _Instance] = {}
        self._alarms = AlarmScheduler(name, self._fire_alarm)

    def idFromName(self, name: str) -> DurableObjectId:
        digest = hashlib.sha256(f"{self._name}\0{name}".encode()).hexdigest()
        return DurableObjectId(digest, name)

    def newUniqueId(self, options: Any = None) -> DurableObjectId:
        return DurableObjectId(os.urandom(32).hex())

    def idFromString(self, text: str) -> DurableObjectId:
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise TypeError("Invalid Durable Object ID: must be 64 hex digits")
        return DurableObjectId(text)

    def get(self, object_id: DurableObjectId, options: Any = None) -> Stub:
        return Stub(self, object_id)

    def getByName(self, name: str) -> Stub:
        return self.get(self.idFromName(name))

    def _instance(self, object_id: DurableObjectId) -> _Instance:
        key = str(object_id)
        inst = self._instances.get(key)
        if inst is None:
            storage = Storage(
                self._folder / f"{key}.sqlite",
                on_alarm=lambda when: self._alarms.arm(key, when),
                name=object_id.name,
            )
            holder: list[_Instance] = []
            hibernation = Hibernation(lambda: holder[0].obj, lambda: holder[0].lock)
            state = State(object_id, storage, hibernation)
            inst = _Instance(None, state)
            holder.append(inst)
            inst.obj = self._cls(state, self._env())
            self._instances[key] = inst
        return inst

    def start_alarms(self) -> None:
        """Arm every alarm stored in this namespace's objects (when the worker starts)."""
        stored = {}
        if self._folder.is_dir():
            for path in sorted(self._folder.glob("*.sqlite")):
                when = alarm_time(path)
                if when is not None:
                    stored[path.stem] = when
        self._alarms.start(stored)

    async def _fire_alarm(self, key: str, retries: int) -> None:
        inst = self._instances.get(key)
        if inst is None:
            inst = self._instance(
                DurableObjectId(key, _stored_name(self._folder / f"{key}.sqlite"))
            )
        conn = inst.state.storage._conn
        async with inst.lock:
            row = conn.execute("SELECT time, retries FROM _cf_alarm WHERE one = 1").fetchone()
            if row is None:
                return  # deleted meanwhile
            when, retries = float(row[0]), int(row[1])
            if when > time.time() * 1000 + 5:
                self._alarms.arm(key, when, retries)  # moved later meanwhile
                return
            taken = conn.execute(  # one process wins (an old version may still be draining)
                "DELETE FROM _cf_alarm WHERE one = 1 AND time = ? AND retries = ?",
                (when, retries),
            )
            if taken.rowcount != 1:
                return
            handler = getattr(inst.obj, "alarm", None)
            if handler is None:
                return
            info = {"retryCount": retries, "isRetry": retries > 0}
            takes_info = len(inspect.signature(handler).parameters) >= 1
            try:
                result = handler(info) if takes_info else handler()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                if (
                    retries < MAX_RETRIES
                    and conn.execute("SELECT 1 FROM _cf_alarm").fetchone() is None
                ):
                    again = time.time() * 1000 + 2000 * 2**retries
                    conn.execute(
                        "INSERT INTO _cf_alarm (one, time, retries) VALUES (1, ?, ?)",
                        (again, retries + 1),
                    )
                    self._alarms.arm(key, again, retries + 1)
                raise

    def close(self) -> None:
        self._alarms.close()
        for inst in self._instances.values():
            inst.state.storage.close()
        self._instances.clear()


def _stored_name(path: Path) -> str | None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM _cf_meta WHERE key = 'name'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


class Stub:
    """A stub: ``await stub.fetch(...)`` or ``await stub.any_method(...)`` (RPC)."""

    def __init__(self, namespace: Namespace, object_id: DurableObjectId) -> None:
        self._namespace = namespace
        self.id = object_id
        self.name = object_id.name

    async def fetch(self, request: Any, init: Any = None) -> Any:
        req = self._namespace._to_request(request, init)
        return await self._call("fetch", (req,), {})

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        if method.startswith("_"):
            raise AttributeError(method)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._call(method, args, kwargs)

        return call

    async def _call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        inst = self._namespace._instance(self.id)
        fn = getattr(inst.obj, method, None)
        if fn is None or not callable(fn):
            raise TypeError(f'The RPC receiver does not implement the method "{method}".')
        async with inst.lock:  # one call at a time per object
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result
