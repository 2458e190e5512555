"""The SQLite store: all of an app's state in one database file, for one machine.

``sqlite:///PATH`` (``sqlite:////abs/path.db`` for an absolute path). The database runs in
WAL mode: readers never wait for the writer, and a write transaction (``BEGIN IMMEDIATE``)
serializes writers across processes. Journal intents commit with ``synchronous=FULL``
(they survive a machine crash), results with ``NORMAL`` (they survive the process being
killed), as the file store's fsync policy does.

Stage locks are rows naming their holder (user, host, pid, operation, since); a lock
whose holder ran on this host and is gone is taken over, any other is broken by its id.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

from ..errors import StateError
from ._protocol import LockInfo
from ._sql import SQLStore, Tx, new_lock

__all__ = ["SQLiteStore"]


class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def run(self, sql: str, *params: Any) -> None:
        self.conn.execute(sql, params)

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)


class SQLiteStore(SQLStore):
    """State in one SQLite database file (created on first use).

    Example::

        store = SQLiteStore("state/alchemy.db")
        app = alchemy_nb.App("hello", state=store)
    """

    inline = True

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.location = f"sqlite:///{self.path}"
        self._conn: sqlite3.Connection | None = None
        self._mutex = threading.RLock()
        self._synchronous = ""

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60.0
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from exc
        self._finalizer = weakref.finalize(self, conn.close)
        self._conn = conn
        self._synchronous = ""
        try:
            conn.execute("PRAGMA busy_timeout = 60000")
            _use_wal(conn)
            self._ensure_schema()
        except sqlite3.Error as exc:
            self.close()
            raise self._error(exc) from exc
        except BaseException:
            self.close()
            raise
        return conn

    def _error(self, exc: BaseException) -> StateError:
        return StateError(
            f"cannot use the SQLite state store ({exc})",
            where=self.location,
            fix="check that the path names an alchemy-nb SQLite database (or a new file) in "
            "a writable folder",
        )

    @contextmanager
    def _transaction(self, *, durable: bool = True, write: bool = True) -> Iterator[Tx]:
        with self._mutex:
            conn = self._connect()
            try:
                wanted = "FULL" if durable else "NORMAL"
                if write and self._synchronous != wanted:
                    conn.execute(f"PRAGMA synchronous = {wanted}")
                    self._synchronous = wanted
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            try:
                yield _SQLiteTx(conn)
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from exc
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    @asynccontextmanager
    async def _held(
        self,
        app: str,
        stage: str,
        scope: str,
        what: str,
        operation: str,
        timeout: float,
        on_wait: Any = None,
        on_takeover: Any = None,
    ) -> AsyncIterator[LockInfo]:
        mine = new_lock(app, stage, operation)

        def attempt() -> tuple[LockInfo | None, LockInfo | None]:
            with self._transaction(durable=False) as tx:
                return self._try_lock(tx, app, stage, scope, mine, None)

        await self._poll(attempt, app, stage, what, operation, timeout, on_wait, on_takeover)
        try:
            yield mine
        finally:
            self._unlock_row(mine.id)

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._finalizer.detach()
                self._conn.close()
                self._conn = None


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch a database to WAL mode (once, whoever is first). The switch needs the
    database to itself and does not wait for it, so retry while others hold it."""
    deadline = time.monotonic() + 60
    while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
