"""What the SQLite and PostgreSQL stores share: the schema, its versions, and every query.

Tables (all JSON as text, exactly as written; ``doc::jsonb`` queries it in PostgreSQL)::

    alchemy_schema      the schema's version (one row)
    alchemy_stages      which stages of which app have state
    alchemy_snapshots   each stage's snapshot: {"resources": {id: record}, "meta": {...}}
    alchemy_journal     entries written since the snapshot, in order
    alchemy_locks       who holds which stage lock (state or promotion), and since when
    alchemy_ledger      each app's audit ledger, one event per row
    alchemy_documents   promotion records: releases, stage histories, gates   (version 2)
    alchemy_blobs       file contents of releases, by SHA-256                 (version 2)

The journal works as the file store's does: appends are cheap inserts, a checkpoint
replaces the snapshot and empties the journal in one transaction, and a load replays
what the journal holds over the snapshot (so ``replayed`` tells an interrupted run).

The schema is versioned: opening a store migrates an older schema forward in one
transaction; a schema newer than this code is refused before anything is written.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any, Protocol

from ..errors import LedgerError, LockError, StateCorruptError, StateError
from ._protocol import DOC_KINDS, Entry, LockInfo, StageState, wait_for_lock

__all__ = ["SCHEMA_VERSION", "SQLStore", "Tx"]

SCHEMA_VERSION = 2


def _migrations(serial: str, blob: str) -> dict[int, list[str]]:
    """Statements that take the schema from version N-1 to N."""
    return {
        1: [
            "CREATE TABLE alchemy_stages (app TEXT NOT NULL, stage TEXT NOT NULL, "
            "PRIMARY KEY (app, stage))",
            "CREATE TABLE alchemy_snapshots (app TEXT NOT NULL, stage TEXT NOT NULL, "
            "doc TEXT NOT NULL, PRIMARY KEY (app, stage))",
            f"CREATE TABLE alchemy_journal (seq {serial}, app TEXT NOT NULL, "
            "stage TEXT NOT NULL, entry TEXT NOT NULL)",
            "CREATE INDEX alchemy_journal_stage ON alchemy_journal (app, stage, seq)",
            "CREATE TABLE alchemy_locks (app TEXT NOT NULL, stage TEXT NOT NULL, "
            "scope TEXT NOT NULL, lock_id TEXT NOT NULL UNIQUE, holder TEXT NOT NULL, "
            "session INTEGER, PRIMARY KEY (app, stage, scope))",
            "CREATE TABLE alchemy_ledger (app TEXT NOT NULL, seq INTEGER NOT NULL, "
            "event TEXT NOT NULL, PRIMARY KEY (app, seq))",
        ],
        2: [
            "CREATE TABLE alchemy_documents (app TEXT NOT NULL, kind TEXT NOT NULL, "
            "key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (app, kind, key))",
            f"CREATE TABLE alchemy_blobs (app TEXT NOT NULL, sha TEXT NOT NULL, "
            f"data {blob} NOT NULL, PRIMARY KEY (app, sha))",
        ],
    }


class Tx(Protocol):
    """One open transaction; SQL uses ``?`` placeholders whatever the database."""

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]: ...

    def run(self, sql: str, *params: Any) -> None: ...

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SQLStore:
    """The store logic over a database; subclasses connect and lock."""

    location: str
    serial = "INTEGER PRIMARY KEY"
    blob = "BLOB"
    inline = False
    """Run quick calls on the event loop's thread (a local file: a thread hop costs more
    than the call); calls that wait for the disk (fsync) always go to a worker thread."""

    async def _io(self, fn: Callable[..., Any], *args: Any, waits: bool = False) -> Any:
        if self.inline and not waits:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    # ---------------------------------------------------------- for subclasses
    def _transaction(
        self, *, durable: bool = True, write: bool = True
    ) -> AbstractContextManager[Tx]:
        """A transaction that commits on success (with ``durable``, surviving a machine
        crash) and rolls back on any error; database errors become :class:`StateError`.
        ``write=False``: it only reads."""
        raise NotImplementedError

    def _exclusive(self, tx: Tx, name: str) -> None:
        """Serialize transactions on ``name`` (SQLite: the write lock does already)."""

    def _holder_alive(self, tx: Tx, info: LockInfo, scope: str, session: int | None) -> bool:
        """Whether the holder of a recorded lock still holds it."""
        return not info.holder_is_dead()

    # ------------------------------------------------------------------ schema
    def _has_table(self, tx: Tx, name: str) -> bool:
        return bool(tx.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", name))

    def _ensure_schema(self, upto: int = SCHEMA_VERSION) -> None:
        with self._transaction(write=False) as tx:  # the usual case: current, no lock needed
            if self._has_table(tx, "alchemy_schema"):
                found = tx.rows("SELECT version FROM alchemy_schema")
                if found and int(found[0][0]) == upto:
                    return
        with self._transaction() as tx:  # create or migrate, one opener at a time
            self._exclusive(tx, "schema")
            tx.run("CREATE TABLE IF NOT EXISTS alchemy_schema (version INTEGER NOT NULL)")
            found = tx.rows("SELECT version FROM alchemy_schema")
            current = int(found[0][0]) if found else 0
            if current > SCHEMA_VERSION:
                raise StateError(
                    f"the state store's schema is version {current}, newer than this "
                    f"alchemy-nb knows (version {SCHEMA_VERSION})",
                    where=self.location,
                    fix="upgrade alchemy-nb (pip install -U alchemy-nb) on this machine; a "
                    "newer version already uses this store",
                )
            steps = _migrations(self.serial, self.blob)
            for version in range(current + 1, upto + 1):
                for statement in steps[version]:
                    tx.run(statement)
            if upto > current:
                if found:
                    tx.run("UPDATE alchemy_schema SET version = ?", upto)
                else:
                    tx.run("INSERT INTO alchemy_schema (version) VALUES (?)", upto)

    def schema_version(self) -> int:
        """The version of the store's schema (see ``SCHEMA_VERSION``)."""
        with self._transaction(write=False) as tx:
            return int(tx.rows("SELECT version FROM alchemy_schema")[0][0])

    # ------------------------------------------------------------------ stages
    async def load(self, app: str, stage: str) -> StageState:
        return await self._io(self._load, app, stage)  # type: ignore[no-any-return]

    def _load(self, app: str, stage: str) -> StageState:
        state = StageState(app=app, stage=stage)
        with self._transaction(write=False) as tx:
            snapshot = tx.rows(
                "SELECT doc FROM alchemy_snapshots WHERE app = ? AND stage = ?", app, stage
            )
            journal = tx.rows(
                "SELECT seq, entry FROM alchemy_journal WHERE app = ? AND stage = ? ORDER BY seq",
                app,
                stage,
            )
        where = f"{self.location}, app {app!r}, stage {stage!r}"
        if snapshot:
            doc = _parse(snapshot[0][0], f"{where}, snapshot")
            records, meta = doc.get("resources"), doc.get("meta")
            if not isinstance(records, dict) or not isinstance(meta, dict):
                raise StateCorruptError("a stage snapshot is damaged", where=where, fix=_RESTORE)
            for rid, rec in records.items():
                if not (
                    isinstance(rec, dict)
                    and isinstance(rec.get("kind"), str)
                    and isinstance(rec.get("status"), str)
                ):
                    raise StateCorruptError(
                        "a resource record is damaged (it lacks its kind or status)",
                        where=f"{where}, resource {rid!r}",
                        fix=_RESTORE,
                    )
            state.records, state.meta = records, meta
        for seq, raw in journal:
            entry = _parse(raw, f"{where}, journal entry {seq}")
            if entry.get("t") not in ("put", "del", "meta"):
                raise StateCorruptError(
                    "a journal entry is damaged (not a journal entry)",
                    where=f"{where}, journal entry {seq}",
                    fix=_RESTORE,
                )
            state.apply(entry)
            state.replayed += 1
        return state

    async def append(
        self, app: str, stage: str, entries: Sequence[Entry], *, sync: bool = True
    ) -> None:
        if not entries:
            return
        rows = [(app, stage, _dumps(e)) for e in entries]
        await self._io(self._append, app, stage, rows, sync, waits=sync)

    def _append(self, app: str, stage: str, rows: list[tuple[str, str, str]], sync: bool) -> None:
        with self._transaction(durable=sync) as tx:
            tx.run(
                "INSERT INTO alchemy_stages (app, stage) VALUES (?, ?) ON CONFLICT DO NOTHING",
                app,
                stage,
            )
            tx.many("INSERT INTO alchemy_journal (app, stage, entry) VALUES (?, ?, ?)", rows)

    async def checkpoint(self, state: StageState) -> None:
        await self._io(self._checkpoint, state, waits=True)
        state.replayed = 0

    def _checkpoint(self, state: StageState) -> None:
        app, stage = state.app, state.stage
        with self._transaction() as tx:
            tx.run(
                "INSERT INTO alchemy_stages (app, stage) VALUES (?, ?) ON CONFLICT DO NOTHING",
                app,
                stage,
            )
            tx.run("DELETE FROM alchemy_journal WHERE app = ? AND stage = ?", app, stage)
            tx.run(
                "INSERT INTO alchemy_snapshots (app, stage, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (app, stage) DO UPDATE SET doc = excluded.doc",
                app,
                stage,
                _dumps({"resources": state.records, "meta": state.meta}),
            )

    async def drop(self, app: str, stage: str) -> None:
        await self._io(self._drop, app, stage, waits=True)

    def _drop(self, app: str, stage: str) -> None:
        with self._transaction() as tx:
            for table in ("alchemy_snapshots", "alchemy_journal", "alchemy_stages"):
                tx.run(f"DELETE FROM {table} WHERE app = ? AND stage = ?", app, stage)

    async def stages(self, app: str) -> list[str]:
        return await self._io(self._stages, app)  # type: ignore[no-any-return]

    def _stages(self, app: str) -> list[str]:
        with self._transaction(write=False) as tx:
            rows = tx.rows("SELECT stage FROM alchemy_stages WHERE app = ? ORDER BY stage", app)
        return [str(r[0]) for r in rows]

    # ------------------------------------------------------------------- locks
    def _try_lock(
        self,
        tx: Tx,
        app: str,
        stage: str,
        scope: str,
        mine: LockInfo,
        session: int | None,
        *,
        stale: bool = False,
    ) -> tuple[LockInfo | None, LockInfo | None]:
        """Claim the lock row: (holder, None) when held by another; (None, previous) when
        claimed, ``previous`` being a dead holder taken over (or None). With ``stale``,
        any row found is a dead holder's (the caller holds the real lock already)."""
        found = tx.rows(
            "SELECT holder, session FROM alchemy_locks WHERE app = ? AND stage = ? AND scope = ?",
            app,
            stage,
            scope,
        )
        previous = None
        if found:
            holder = _lock_info(found[0][0], self.location)
            if not stale and self._holder_alive(tx, holder, scope, found[0][1]):
                return holder, None
            previous = holder
            tx.run(
                "DELETE FROM alchemy_locks WHERE app = ? AND stage = ? AND scope = ?",
                app,
                stage,
                scope,
            )
        tx.run(
            "INSERT INTO alchemy_locks (app, stage, scope, lock_id, holder, session) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            app,
            stage,
            scope,
            mine.id,
            _dumps(mine.to_json()),
            session,
        )
        return None, previous

    def _unlock_row(self, lock_id: str) -> None:
        with self._transaction(durable=False) as tx:
            tx.run("DELETE FROM alchemy_locks WHERE lock_id = ?", lock_id)

    async def _poll(
        self,
        attempt: Callable[[], tuple[LockInfo | None, LockInfo | None]],
        app: str,
        stage: str,
        what: str,
        operation: str,
        timeout: float,
        on_wait: Any,
        on_takeover: Any,
    ) -> None:
        async def attempt_in_thread() -> tuple[LockInfo | None, LockInfo | None]:
            return await self._io(attempt)  # type: ignore[no-any-return]

        await wait_for_lock(
            attempt_in_thread,
            subject=f"{what} of stage {stage!r} of app {app!r}",
            where=f"{self.location}, operation {operation}",
            timeout=timeout,
            on_wait=on_wait,
            on_takeover=on_takeover,
        )

    @asynccontextmanager
    async def lock(
        self,
        app: str,
        stage: str,
        *,
        operation: str,
        timeout: float,
        on_wait: Any = None,
        on_takeover: Any = None,
    ) -> AsyncIterator[LockInfo]:
        async with self._held(
            app, stage, "state", "the state", operation, timeout, on_wait, on_takeover
        ) as info:
            yield info

    @asynccontextmanager
    async def promotion_lock(self, app: str, stage: str, *, timeout: float) -> AsyncIterator[None]:
        async with self._held(app, stage, "promotion", "promotion", "promotion", timeout):
            yield

    def _held(
        self,
        app: str,
        stage: str,
        scope: str,
        what: str,
        operation: str,
        timeout: float,
        on_wait: Any = None,
        on_takeover: Any = None,
    ) -> Any:
        raise NotImplementedError

    async def current_lock(self, app: str, stage: str) -> LockInfo | None:
        return await self._io(self._current_lock, app, stage, "state")  # type: ignore[no-any-return]

    def _current_lock(self, app: str, stage: str, scope: str) -> LockInfo | None:
        with self._transaction(write=False) as tx:
            found = tx.rows(
                "SELECT holder, session FROM alchemy_locks "
                "WHERE app = ? AND stage = ? AND scope = ?",
                app,
                stage,
                scope,
            )
            if not found:
                return None
            info = _lock_info(found[0][0], self.location)
            return info if self._holder_alive(tx, info, scope, found[0][1]) else None

    async def break_lock(self, lock_id: str) -> LockInfo:
        return await self._io(self._break_lock, lock_id)  # type: ignore[no-any-return]

    def _break_lock(self, lock_id: str) -> LockInfo:
        with self._transaction(durable=False) as tx:
            found = tx.rows(
                "SELECT holder, scope, session FROM alchemy_locks WHERE lock_id = ?", lock_id
            )
            if not found:
                raise LockError(
                    f"no lock with id {lock_id!r}",
                    where=self.location,
                    fix="run `alchemy-nb status` to see the stage's current lock and its id",
                )
            info = _lock_info(found[0][0], self.location)
            self._end_session(tx, info, found[0][1], found[0][2])
            tx.run("DELETE FROM alchemy_locks WHERE lock_id = ?", lock_id)
        return info

    def _end_session(self, tx: Tx, info: LockInfo, scope: str, session: int | None) -> None:
        """Make a broken lock's holder lose it (PostgreSQL: end its session)."""

    # ------------------------------------------------------------------ ledger
    async def ledger_append(
        self, app: str, build: Callable[[dict[str, Any] | None], dict[str, Any]]
    ) -> dict[str, Any]:
        return await self._io(self._ledger_append, app, build, waits=True)  # type: ignore[no-any-return]

    def _ledger_append(
        self, app: str, build: Callable[[dict[str, Any] | None], dict[str, Any]]
    ) -> dict[str, Any]:
        with self._transaction() as tx:
            self._exclusive(tx, f"ledger\0{app}")
            found = tx.rows(
                "SELECT seq, event FROM alchemy_ledger WHERE app = ? ORDER BY seq DESC LIMIT 1",
                app,
            )
            last = None
            next_seq = 1
            if found:
                next_seq = int(found[0][0]) + 1
                last = _ledger_entry(
                    found[0][1], f"{self.location}, ledger of {app!r}, row {found[0][0]}"
                )
            event = build(last)
            try:
                line = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise LedgerError(
                    f"a ledger event must be JSON ({exc})",
                    where=self.location,
                    fix="pass only strings, numbers, booleans, lists and dicts in the event",
                ) from None
            tx.run(
                "INSERT INTO alchemy_ledger (app, seq, event) VALUES (?, ?, ?)",
                app,
                next_seq,
                line,
            )
        return event

    async def ledger_read(self, app: str) -> list[dict[str, Any]]:
        return await self._io(self._ledger_read, app)  # type: ignore[no-any-return]

    def _ledger_read(self, app: str) -> list[dict[str, Any]]:
        with self._transaction(write=False) as tx:
            rows = tx.rows("SELECT seq, event FROM alchemy_ledger WHERE app = ? ORDER BY seq", app)
        return [
            _ledger_entry(raw, f"{self.location}, ledger of {app!r}, row {seq}")
            for seq, raw in rows
        ]

    # -------------------------------------------------------- promotion records
    def doc_get(self, app: str, kind: str, key: str) -> dict[str, Any] | None:
        _check_kind(kind)
        with self._transaction(write=False) as tx:
            found = tx.rows(
                "SELECT value FROM alchemy_documents WHERE app = ? AND kind = ? AND key = ?",
                app,
                kind,
                key,
            )
        if not found:
            return None
        return _parse(found[0][0], f"{self.location}, {kind} record {key!r} of app {app!r}")

    def doc_put(
        self, app: str, kind: str, key: str, value: dict[str, Any], *, create: bool = False
    ) -> dict[str, Any]:
        _check_kind(kind)
        with self._transaction() as tx:
            if create:
                tx.run(
                    "INSERT INTO alchemy_documents (app, kind, key, value) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    app,
                    kind,
                    key,
                    _dumps(value),
                )
                found = tx.rows(
                    "SELECT value FROM alchemy_documents WHERE app = ? AND kind = ? AND key = ?",
                    app,
                    kind,
                    key,
                )
                return _parse(found[0][0], f"{self.location}, {kind} record {key!r}")
            tx.run(
                "INSERT INTO alchemy_documents (app, kind, key, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (app, kind, key) DO UPDATE SET value = excluded.value",
                app,
                kind,
                key,
                _dumps(value),
            )
        return value

    def doc_keys(self, app: str, kind: str) -> list[str]:
        _check_kind(kind)
        with self._transaction(write=False) as tx:
            rows = tx.rows(
                "SELECT key FROM alchemy_documents WHERE app = ? AND kind = ? ORDER BY key",
                app,
                kind,
            )
        return [str(r[0]) for r in rows]

    def blob_put(self, app: str, sha: str, data: bytes) -> None:
        with self._transaction() as tx:
            tx.run(
                "INSERT INTO alchemy_blobs (app, sha, data) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                app,
                sha,
                data,
            )

    def blob_get(self, app: str, sha: str) -> bytes | None:
        with self._transaction(write=False) as tx:
            found = tx.rows("SELECT data FROM alchemy_blobs WHERE app = ? AND sha = ?", app, sha)
        return bytes(found[0][0]) if found else None


_RESTORE = (
    "restore the database from a backup; if the stage's resources are gone, "
    "`alchemy-nb state export` shows what is left"
)


def _check_kind(kind: str) -> None:
    if kind not in DOC_KINDS:
        raise ValueError(f"unknown document kind {kind!r}")


def _parse(raw: Any, where: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise StateCorruptError(
            f"a stored record is not valid JSON ({exc})", where=where, fix=_RESTORE
        ) from None
    if not isinstance(value, dict):
        raise StateCorruptError("a stored record is not a JSON object", where=where, fix=_RESTORE)
    return value


def _ledger_entry(raw: Any, where: str) -> dict[str, Any]:
    try:
        entry = json.loads(raw)
    except (ValueError, TypeError) as exc:
        return {"damaged": f"{where} is not valid JSON ({exc})"}
    if not isinstance(entry, dict):
        return {"damaged": f"{where} is not a JSON object"}
    return entry


def _lock_info(raw: str, where: str) -> LockInfo:
    try:
        return LockInfo.from_json(raw)
    except (ValueError, TypeError) as exc:
        raise StateCorruptError(
            f"a lock record is damaged ({exc})",
            where=where,
            fix="make sure no deploy of this stage is running, then break the lock by its id",
        ) from None


def new_lock(app: str, stage: str, operation: str) -> LockInfo:
    """A lock description for this process."""
    return LockInfo.mine(secrets.token_hex(6), app, stage, operation)
