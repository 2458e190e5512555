"""Queues on the local target: messages in SQLite, delivered in batches to consumers.

A producer's ``env.JOBS.send(body)`` stores the message; the worker that consumes the
queue polls the same file and calls its ``queue`` handler with a batch. A batch that the
handler finishes is acknowledged; one that raises is retried (up to ``max_retries``),
unless messages were acknowledged or retried one by one.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sqlite3
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["QueueBinding", "QueueConsumer"]

MAX_BATCH = 10
MAX_RETRIES = 3
VISIBILITY = 30.0
POLL = 0.05


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, body TEXT, content_type "
        "TEXT, attempts INTEGER DEFAULT 0, visible_at REAL, created REAL)"
    )
    return conn


class QueueBinding:
    """``env.JOBS``: ``send(body, options)`` and ``sendBatch(messages, options)``."""

    def __init__(self, path: Path) -> None:
        self._conn = _connect(path)

    async def send(
        self,
        body: Any,
        options: dict[str, Any] | None = None,
        *,
        contentType: str = "json",
        delaySeconds: float = 0,
    ) -> None:
        opts = dict(options or {})
        self._insert(
            [
                (
                    body,
                    opts.get("contentType", contentType),
                    float(opts.get("delaySeconds", delaySeconds)),
                )
            ]
        )

    async def sendBatch(
        self,
        messages: list[Any],
        options: dict[str, Any] | None = None,
    ) -> None:
        delay = float((options or {}).get("delaySeconds", 0))
        rows = []
        for m in messages:
            item = m.to_py() if hasattr(m, "to_py") else m
            rows.append(
                (
                    item["body"],
                    item.get("contentType", "json"),
                    float(item.get("delaySeconds", delay)),
                )
            )
        self._insert(rows)

    def _insert(self, rows: list[tuple[Any, str, float]]) -> None:
        now = time.time()
        with self._conn:
            self._conn.executemany(
                "INSERT INTO messages (id, body, content_type, visible_at, created) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (uuid.uuid4().hex, _encode(body, ctype), ctype, now + delay, now)
                    for body, ctype, delay in rows
                ],
            )

    def close(self) -> None:
        self._conn.close()


def _encode(body: Any, content_type: str) -> str:
    if hasattr(body, "to_py"):
        body = body.to_py()
    if content_type == "bytes":
        return json.dumps({"bytes": bytes(body).hex()})
    if content_type == "text":
        return json.dumps({"text": str(body)})
    return json.dumps({"json": body})


def _decode(raw: str) -> Any:
    data = json.loads(raw)
    if "bytes" in data:
        return bytes.fromhex(data["bytes"])
    return data.get("text", data.get("json"))


class Message:
    """One message of a batch: ``id``, ``timestamp``, ``body``, ``attempts``,
    ``ack()``, ``retry()``."""

    def __init__(self, mid: str, body: Any, created: float, attempts: int) -> None:
        self.id = mid
        self.body = body
        self.timestamp = datetime.fromtimestamp(created, UTC)
        self.attempts = attempts + 1
        self.verdict: str | None = None
        self.delay = 0.0

    def ack(self) -> None:
        self.verdict = "ack"

    def retry(self, options: dict[str, Any] | None = None) -> None:
        self.verdict = "retry"
        self.delay = float((options or {}).get("delaySeconds", 0))


class MessageBatch:
    """``queue``, ``messages``, ``ackAll()``, ``retryAll()``."""

    def __init__(self, queue: str, messages: list[Message]) -> None:
        self.queue = queue
        self.messages = messages

    def ackAll(self) -> None:
        for m in self.messages:
            m.ack()

    def retryAll(self, options: dict[str, Any] | None = None) -> None:
        for m in self.messages:
            m.retry(options)


class QueueConsumer:
    """Polls one queue and hands batches to ``handler(batch)``."""

    def __init__(
        self, name: str, path: Path, handler: Callable[[MessageBatch], Awaitable[Any] | Any]
    ) -> None:
        self.name = name
        self._conn = _connect(path)
        self._handler = handler
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._conn.close()

    def _claim(self) -> list[Message]:
        now = time.time()
        with self._conn:
            rows = self._conn.execute(
                "SELECT id, body, created, attempts FROM messages WHERE visible_at <= ? "
                "ORDER BY created LIMIT ?",
                (now, MAX_BATCH),
            ).fetchall()
            self._conn.executemany(
                "UPDATE messages SET visible_at = ? WHERE id = ?",
                [(now + VISIBILITY, r[0]) for r in rows],
            )
        return [Message(r[0], _decode(r[1]), r[2], r[3]) for r in rows]

    async def _loop(self) -> None:
        while True:
            messages = self._claim()
            if not messages:
                await asyncio.sleep(POLL)
                continue
            batch = MessageBatch(self.name, messages)
            failed = False
            try:
                result = self._handler(batch)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                failed = True
                print(
                    f"queue {self.name}: the consumer raised; the batch will be retried",
                    file=sys.stderr,
                )
                traceback.print_exc()
            self._settle(messages, failed)

    def _settle(self, messages: list[Message], failed: bool) -> None:
        now = time.time()
        with self._conn:
            for m in messages:
                verdict = m.verdict or ("retry" if failed else "ack")
                if verdict == "ack" or m.attempts > MAX_RETRIES:
                    if verdict != "ack":
                        print(
                            f"queue {self.name}: message {m.id} dropped after "
                            f"{m.attempts} attempts",
                            file=sys.stderr,
                        )
                    self._conn.execute("DELETE FROM messages WHERE id = ?", (m.id,))
                else:
                    self._conn.execute(
                        "UPDATE messages SET attempts = ?, visible_at = ? WHERE id = ?",
                        (m.attempts, now + m.delay, m.id),
                    )
