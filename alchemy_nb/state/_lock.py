"""The file store's stage lock: one writer per stage, with holder details.

A lock is a small file, ``.alchemy/<app>/locks/<stage>.lock``: empty when free, a JSON
description of the holder when held. Every read and write of it happens under a short
``flock`` on the file itself, so two processes never both see it free. A lock whose
holder ran on this host and is gone is taken over (and the takeover reported); any
other lock is broken only by naming its id.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import LockError, StateCorruptError
from ._protocol import LockInfo, wait_for_lock

__all__ = ["FileLock", "break_file_lock", "read_file_lock"]


class FileLock:
    """The writer lock of one stage."""

    def __init__(self, path: Path, app: str, stage: str) -> None:
        self.path = path
        self.app = app
        self.stage = stage

    async def acquire(
        self,
        operation: str,
        timeout: float,
        *,
        on_wait: Callable[[LockInfo], Any] | None = None,
        on_takeover: Callable[[LockInfo], Any] | None = None,
    ) -> LockInfo:
        mine = LockInfo.mine(secrets.token_hex(6), self.app, self.stage, operation)

        async def attempt() -> tuple[LockInfo | None, LockInfo | None]:
            return _locked(self.path, lambda cur: _claim(cur, mine))  # type: ignore[no-any-return]

        await wait_for_lock(
            attempt,
            subject=f"stage {self.stage!r} of app {self.app!r}",
            where=f"{self.path}, operation {operation}",
            timeout=timeout,
            on_wait=on_wait,
            on_takeover=on_takeover,
        )
        return mine

    def release(self, info: LockInfo) -> None:
        def _clear(cur: LockInfo | None) -> tuple[str | None, Any]:
            return ("" if cur is not None and cur.id == info.id else None), None

        _locked(self.path, _clear)


def _claim(current: LockInfo | None, mine: LockInfo) -> tuple[str | None, Any]:
    """Decide under the flock: returns (new file content or None, result)."""
    if current is None:
        return _dump(mine), (None, None)
    if current.holder_is_dead():
        return _dump(mine), (None, current)
    return None, (current, None)


def _locked(path: Path, decide: Callable[[LockInfo | None], tuple[str | None, Any]]) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = _read_all(fd)
        current = _parse(path, raw)
        content, result = decide(current)
        if content is not None:  # no fsync: after a crash of the machine, every holder is gone
            os.ftruncate(fd, 0)
            os.pwrite(fd, content.encode(), 0)
        return result
    finally:
        os.close(fd)  # closing releases the flock


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _parse(path: Path, raw: bytes) -> LockInfo | None:
    if not raw.strip():
        return None
    try:
        return LockInfo.from_json(raw)
    except (ValueError, TypeError) as exc:
        raise StateCorruptError(
            f"the lock file is damaged ({exc})",
            where=str(path),
            fix="make sure no deploy of this stage is running, then delete the file",
        ) from None


def _dump(info: LockInfo) -> str:
    return json.dumps(info.to_json(), indent=1, sort_keys=True) + "\n"


def read_file_lock(path: Path) -> LockInfo | None:
    """The holder of the lock at ``path``, or None when it is free."""
    if not path.exists():
        return None
    return _locked(path, lambda cur: (None, cur))  # type: ignore[no-any-return]


def break_file_lock(root: Path, lock_id: str) -> LockInfo:
    """Break the lock named ``lock_id`` under ``root`` (any app, any stage)."""
    for path in sorted(root.glob("*/locks/*.lock")):

        def _break(cur: LockInfo | None) -> tuple[str | None, Any]:
            if cur is not None and cur.id == lock_id:
                return "", cur
            return None, None

        broken = _locked(path, _break)
        if broken is not None:
            return broken  # type: ignore[no-any-return]
    raise LockError(
        f"no lock with id {lock_id!r}",
        where=str(root),
        fix="run `alchemy-nb status` to see the stage's current lock and its id",
    )
