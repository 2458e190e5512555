"""The state store protocol: what every store (files, SQLite, PostgreSQL) provides."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from .._canonical import canonical_json, digest
from .._process import process_start_marker
from ..errors import LockError

__all__ = ["DOC_KINDS", "Entry", "LockInfo", "StageState", "StateStore", "wait_for_lock"]

DOC_KINDS = ("releases", "stages", "gates")
"""The kinds of promotion document a store keeps: releases, stage histories, gates."""

Entry = dict[str, Any]
"""One journal entry: ``{"t": "put", "id", "rec"}``, ``{"t": "del", "id"}`` or
``{"t": "meta", "key", "value"}``. Replaying entries in order rebuilds the state."""


@dataclass
class StageState:
    """Everything a store knows about one stage of one app."""

    app: str
    stage: str
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    replayed: int = 0
    """Journal entries found on load: more than zero means a run was interrupted."""

    def apply(self, entry: Entry) -> None:
        kind = entry.get("t")
        if kind == "put":
            self.records[entry["id"]] = entry["rec"]
        elif kind == "del":
            self.records.pop(entry["id"], None)
        elif kind == "meta":
            if entry.get("value") is None:
                self.meta.pop(entry["key"], None)
            else:
                self.meta[entry["key"]] = entry["value"]
        else:
            raise ValueError(f"unknown journal entry type {kind!r}")

    def fingerprint(self) -> str:
        """Changes whenever any record changes: saved plans compare it before applying."""
        summary = {
            rid: [rec.get("status"), rec.get("digest"), bool(rec.get("replaced"))]
            for rid, rec in self.records.items()
        }
        return digest(canonical_json(summary))


@dataclass(frozen=True)
class LockInfo:
    """Who holds a stage lock: user, host, process and what it is doing."""

    id: str
    app: str
    stage: str
    operation: str
    user: str
    host: str
    pid: int
    pid_started: str
    since: float

    @classmethod
    def mine(cls, lock_id: str, app: str, stage: str, operation: str) -> LockInfo:
        try:
            user = getpass.getuser()
        except Exception:  # no user name in this environment (some containers)
            user = str(os.getuid())
        return cls(
            id=lock_id,
            app=app,
            stage=stage,
            operation=operation,
            user=user,
            host=socket.gethostname(),
            pid=os.getpid(),
            pid_started=process_start_marker(os.getpid()),
            since=time.time(),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> LockInfo:
        """The lock :meth:`to_json` described (keys it does not know are ignored); raises
        ``ValueError`` or ``TypeError`` when ``raw`` is not such a description."""
        data = json.loads(raw)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["since_iso"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since))
        return data

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return (
            f"lock {self.id} held by {self.user}@{self.host} (pid {self.pid}) "
            f"for '{self.operation}' since {when}"
        )

    def holder_is_dead(self) -> bool:
        """True only when the holder ran on this host and its process is gone."""
        if self.host != socket.gethostname():
            return False
        marker = process_start_marker(self.pid)
        return marker == "" or (bool(self.pid_started) and marker != self.pid_started)


async def wait_for_lock(
    attempt: Callable[[], Awaitable[tuple[LockInfo | None, LockInfo | None]]],
    *,
    subject: str,
    where: str,
    timeout: float,
    on_wait: Callable[[LockInfo], Any] | None = None,
    on_takeover: Callable[[LockInfo], Any] | None = None,
) -> None:
    """Call ``attempt`` until it takes a lock, backing off between tries.

    ``attempt`` returns ``(holder, took_over)``: ``holder`` is who holds the lock when it
    was not taken (None when it was), ``took_over`` the dead holder it replaced, if any.
    ``on_wait`` hears of the holder once, at the first wait; ``on_takeover`` of a takeover.
    After ``timeout`` seconds a :class:`LockError` names ``subject``, ``where`` and the holder.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    waited = False
    while True:
        holder, took_over = await attempt()
        if holder is None:
            if took_over is not None and on_takeover is not None:
                on_takeover(took_over)
            return
        if time.monotonic() >= deadline:
            raise LockError(
                f"{subject} is locked: {holder.describe()}",
                where=where,
                fix=f"wait for that run to finish; if it is gone for good, run "
                f"`alchemy-nb unlock {holder.id}`",
                holder=holder.to_json(),
            )
        if not waited and on_wait is not None:
            on_wait(holder)
        waited = True
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.25)


class StateStore(Protocol):
    """Where resource records, stage metadata and stage locks live."""

    location: str
    """Where the state is, for messages (a directory, a database URL without password)."""

    async def load(self, app: str, stage: str) -> StageState:
        """The stage's records; empty when the stage was never deployed."""
        ...

    async def append(
        self, app: str, stage: str, entries: Sequence[Entry], *, sync: bool = True
    ) -> None:
        """Record entries, in order. Returns once they survive the process being killed;
        with ``sync`` (the default), once they survive the machine crashing too."""
        ...

    async def checkpoint(self, state: StageState) -> None:
        """Fold the journal into a compact snapshot equal to ``state``."""
        ...

    async def drop(self, app: str, stage: str) -> None:
        """Forget a stage whose resources are all gone."""
        ...

    def lock(
        self,
        app: str,
        stage: str,
        *,
        operation: str,
        timeout: float,
        on_wait: Any = None,
        on_takeover: Any = None,
    ) -> AbstractAsyncContextManager[LockInfo]:
        """Hold the stage's writer lock for the ``async with`` block."""
        ...

    async def current_lock(self, app: str, stage: str) -> LockInfo | None:
        """Who holds the stage lock now, if anyone."""
        ...

    async def break_lock(self, lock_id: str) -> LockInfo:
        """Break a lock by naming it (``alchemy-nb unlock LOCK_ID``)."""
        ...

    async def stages(self, app: str) -> list[str]:
        """Stages of ``app`` that have state."""
        ...

    async def ledger_append(
        self, app: str, build: Callable[[dict[str, Any] | None], dict[str, Any]]
    ) -> dict[str, Any]:
        """Append one event to ``app``'s audit ledger and return it.

        Under an exclusive lock on the ledger, ``build`` is called with the last event
        (None when the ledger is empty) and returns the new one, which is written and
        made durable before this returns. Concurrent appenders, in threads or processes,
        are serialized: each sees the event the previous one wrote, so the chain never
        forks. If ``build`` raises, nothing is written. A torn last write (a crash mid
        append) is discarded first. A last entry that cannot be parsed is passed to
        ``build`` as ``{"damaged": REASON}``.
        """
        ...

    async def ledger_read(self, app: str) -> list[dict[str, Any]]:
        """Every event of ``app``'s ledger, oldest first; empty when there is none.

        Events come back as stored, unchecked (verification is the caller's). An entry
        that cannot be parsed is returned in its place as ``{"damaged": REASON}``, with
        REASON naming where it is (file and line), so that a damaged ledger is reported,
        not fatal. A torn last write is not an entry.
        """
        ...

    # Promotion records: small JSON documents (releases, stage histories, gates) and the
    # file contents releases keep. Synchronous: each is one quick read or write.

    def doc_get(self, app: str, kind: str, key: str) -> dict[str, Any] | None:
        """The document ``key`` of ``kind`` (one of :data:`DOC_KINDS`), None when absent."""
        ...

    def doc_put(
        self, app: str, kind: str, key: str, value: dict[str, Any], *, create: bool = False
    ) -> dict[str, Any]:
        """Write a document atomically and return what is stored. With ``create``, an
        existing document is kept (and returned) instead: content-addressed releases."""
        ...

    def doc_keys(self, app: str, kind: str) -> list[str]:
        """Keys of every document of ``kind``, sorted."""
        ...

    def blob_put(self, app: str, sha: str, data: bytes) -> None:
        """Keep ``data`` under its SHA-256 ``sha`` (once; a second put is a no-op)."""
        ...

    def blob_get(self, app: str, sha: str) -> bytes | None:
        """The bytes kept under ``sha``, None when absent."""
        ...

    def promotion_lock(
        self, app: str, stage: str, *, timeout: float
    ) -> AbstractAsyncContextManager[None]:
        """One promotion, rollback or gate decision per stage at a time, across processes
        and machines sharing the store. Raises :class:`LockError` after ``timeout``."""
        ...

    def close(self) -> None:
        """Release connections and files; the store may not be used afterwards."""
        ...
