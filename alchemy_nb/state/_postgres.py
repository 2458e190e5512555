"""The PostgreSQL store: state shared by a team and its CI runners (psycopg 3).

``postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`` (``postgres://`` too; the password
may come from ``PGPASSWORD`` or ``~/.pgpass`` instead). ``pip install 'alchemy-nb[postgres]'``.

Stage locks are PostgreSQL advisory locks, one key per (app, stage) and per purpose
(state, promotion): never one lock for everything, so stages deploy in parallel. A lock
belongs to a session the holder opens for it, so a holder that dies (killed, crashed,
network gone) loses it at once; a row beside it names the holder (user, host, pid,
operation, since) for messages and ``alchemy-nb unlock``, which ends the holder's session.
The ledger's appenders are serialized by a transaction-scoped advisory lock per app.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, StateError
from ._protocol import LockInfo
from ._sql import SQLStore, Tx, new_lock

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "advisory_key", "masked_url"]


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(unparsable URL)"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def advisory_key(*parts: str) -> int:
    """The 64-bit advisory lock key of (purpose, app, stage)."""
    raw = hashlib.sha256("\0".join(("alchemy-nb", *parts)).encode()).digest()[:8]
    return int.from_bytes(raw, "big", signed=True)


class _PgTx:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.cur = conn.cursor()

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        self.cur.execute(sql.replace("?", "%s"), params)
        return self.cur.fetchall() if self.cur.description is not None else []

    def run(self, sql: str, *params: Any) -> None:
        self.cur.execute(sql.replace("?", "%s"), params)

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = list(rows)
        if batch:
            self.cur.executemany(sql.replace("?", "%s"), batch)


class PostgresStore(SQLStore):
    """State in a PostgreSQL database (tables ``alchemy_*``, created on first use).

    Example::

        store = PostgresStore("postgresql://deploy@db.internal/alchemy")
        app = alchemy_nb.App("hello", state=store)
    """

    serial = "BIGSERIAL PRIMARY KEY"
    blob = "BYTEA"

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError(
                "the PostgreSQL state store needs psycopg 3, which is not installed",
                where=masked_url(url),
                fix="pip install 'alchemy-nb[postgres]'",
            ) from None
        self.url = url
        self.location = masked_url(url)
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._mutex = threading.RLock()
        self._idle: list[psycopg.Connection[Any]] = []  # lock sessions, kept for the next lock
        weakref.finalize(self, _close_all, self._idle)

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    def _open(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.Error as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = _without_password("; ".join(lines) or type(exc).__name__, self.url)
            raise StateError(
                f"cannot connect to the PostgreSQL state store: {reason}",
                where=self.location,
                fix="check that the server runs and accepts connections from this machine, "
                "and the user, password (in the URL, $PGPASSWORD or ~/.pgpass) and database "
                "name",
            ) from None
        except ValueError as exc:  # a URL libpq cannot parse
            raise ConfigError(
                f"the PostgreSQL URL is invalid ({exc})",
                where=self.location,
                fix="use postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
            ) from None
        return conn

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = self._open()
        self._finalizer = weakref.finalize(self, conn.close)
        self._conn = conn
        try:
            self._ensure_schema()
        except BaseException:
            self.close()
            raise
        return conn

    def _error(self, exc: BaseException) -> StateError:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StateError(
            f"the PostgreSQL state store failed: {reason}",
            where=self.location,
            fix="check the server's log and that this user may create and write the "
            "alchemy_* tables; then run the command again",
        )

    @contextmanager
    def _transaction(self, *, durable: bool = True, write: bool = True) -> Iterator[Tx]:
        import psycopg

        with self._mutex:
            conn = self._connect()
            try:
                with conn.transaction():
                    tx = _PgTx(conn)
                    if write and not durable:  # survives the client being killed, not the server
                        tx.run("SET LOCAL synchronous_commit = off")
                    yield tx
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError):
                    self.close()  # a broken connection: the next call opens a new one
                raise self._error(exc) from exc

    def _has_table(self, tx: Tx, name: str) -> bool:
        return bool(tx.rows("SELECT to_regclass(?)", name)[0][0])

    def _exclusive(self, tx: Tx, name: str) -> None:
        tx.run("SELECT pg_advisory_xact_lock(?)", advisory_key(name))

    def _holder_alive(self, tx: Tx, info: LockInfo, scope: str, session: int | None) -> bool:
        if session is None:
            return False
        key = advisory_key(scope, info.app, info.stage)
        return bool(
            tx.rows(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = ? AND classid::int8 = ? AND objid::int8 = ? AND objsubid = 1",
                session,
                (key >> 32) & 0xFFFFFFFF,
                key & 0xFFFFFFFF,
            )
        )

    def _end_session(self, tx: Tx, info: LockInfo, scope: str, session: int | None) -> None:
        if session is not None and self._holder_alive(tx, info, scope, session):
            tx.run("SELECT pg_terminate_backend(?)", session)

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
        import asyncio

        import psycopg

        key = advisory_key(scope, app, stage)
        mine = new_lock(app, stage, operation)
        with self._mutex:
            kept = self._idle.pop() if self._idle else None
        reused = kept is not None
        # the lock lives as long as its session
        session = kept if kept is not None else await asyncio.to_thread(self._open)

        def attempt() -> tuple[LockInfo | None, LockInfo | None]:
            nonlocal session, reused
            try:
                got = session.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            except psycopg.OperationalError as exc:
                if not reused:
                    raise self._error(exc) from exc
                session.close()  # a kept session the server ended meanwhile: open another
                session, reused = self._open(), False
                return attempt()
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            pid = session.info.backend_pid
            if not (got and got[0]):
                holder = self._current_lock(app, stage, scope)
                return holder or _unknown_holder(app, stage), None
            with self._transaction(durable=False) as tx:
                return self._try_lock(tx, app, stage, scope, mine, pid, stale=True)

        try:
            await self._poll(attempt, app, stage, what, operation, timeout, on_wait, on_takeover)
            yield mine
        finally:

            def release() -> None:
                with suppress(StateError):
                    self._unlock_row(mine.id)
                try:
                    session.execute("SELECT pg_advisory_unlock_all()")
                except psycopg.Error:  # a broken session (e.g. its lock was broken): drop it
                    session.close()
                    return
                with self._mutex:
                    if self._conn is None:  # the store was closed meanwhile
                        session.close()
                    else:
                        self._idle.append(session)

            await asyncio.to_thread(release)

    def close(self) -> None:
        with self._mutex:
            while self._idle:
                self._idle.pop().close()
            if self._conn is not None:
                self._finalizer.detach()
                self._conn.close()
                self._conn = None


def _unknown_holder(app: str, stage: str) -> LockInfo:
    """The holder of a lock taken an instant ago, before it wrote its name."""
    return LockInfo("unknown", app, stage, "unknown", "unknown", "unknown", 0, "", time.time())


def _without_password(text: str, url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, "***") if password else text


def _close_all(sessions: list[Any]) -> None:
    while sessions:
        sessions.pop().close()
