"""Opening the SQLite files behind D1, KV and R2: WAL, a busy timeout, autocommit."""

from __future__ import annotations

import sqlite3

__all__ = ["connect"]


def connect(
    path: str, *, foreign_keys: bool = False, schema: str | None = None
) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL and a 5 s busy timeout, with ``schema``
    (a script of ``CREATE ... IF NOT EXISTS``) applied.

    Writers in two processes (the old and the new version of a worker during a
    redeploy) wait for each other instead of failing.
    """
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if foreign_keys:
            conn.execute("PRAGMA foreign_keys=ON")
        if schema is not None:
            conn.executescript(schema)
    except BaseException:
        conn.close()
        raise
    return conn
