"""Where promotion keeps its records: releases (with their files), stage histories, gates.

Layout, beside the app's state (all JSON, readable)::

    .alchemy/<app>/promotion/blobs/<sha256>          file contents, stored once
    .alchemy/<app>/promotion/releases/<digest>.json  a release: its files and source
    .alchemy/<app>/promotion/trees/<digest>/         a release's files, laid out to run
    .alchemy/<app>/promotion/stages/<stage>.json     history, current release, hold
    .alchemy/<app>/promotion/gates/<id>.json         gate requests and their decisions
    .alchemy/<app>/promotion/locks/<stage>.lock      one promotion per stage at a time

Every write goes to a temporary file, is fsynced and renamed into place.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError, GateError, StateCorruptError

__all__ = ["Records", "now_iso"]


def now_iso(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at if at is not None else time.time()))


class Records:
    """The promotion records of one app."""

    def __init__(self, data_root: Path, app: str) -> None:
        self.root = data_root / ".alchemy" / app / "promotion"
        self.app = app

    # ------------------------------------------------------------------ files
    def _read(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StateCorruptError(
                f"a promotion record is not valid JSON ({exc})",
                where=str(path),
                fix="restore the file from a backup",
            ) from None

    def _write(self, path: Path, data: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    # --------------------------------------------------------------- releases
    @staticmethod
    def release_id(files: dict[str, bytes]) -> str:
        """The digest a release of these files has (nothing is stored)."""
        index = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
        return hashlib.sha256(
            "".join(f"{rel}\0{sha}\n" for rel, sha in sorted(index.items())).encode()
        ).hexdigest()

    def store_release(self, files: dict[str, bytes], meta: dict[str, Any]) -> dict[str, Any]:
        """Store files and the release record; the same files give the same release."""
        index = {}
        for rel, data in sorted(files.items()):
            sha = hashlib.sha256(data).hexdigest()
            blob = self.root / "blobs" / sha
            if not blob.exists():
                blob.parent.mkdir(parents=True, exist_ok=True)
                tmp = blob.with_name(f".{sha}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, blob)
            index[rel] = sha
        digest = hashlib.sha256(
            "".join(f"{rel}\0{sha}\n" for rel, sha in sorted(index.items())).encode()
        ).hexdigest()
        path = self.root / "releases" / f"{digest}.json"
        existing = self._read(path)
        if existing is not None:
            return existing  # type: ignore[no-any-return]
        record = {"id": digest, "files": index, **meta, "created_at": now_iso()}
        self._write(path, record)
        return record

    def release(self, ref: str) -> dict[str, Any]:
        """A release by id or unambiguous id prefix."""
        folder = self.root / "releases"
        ref = ref.strip().lower()
        if len(ref) < 4 or any(c not in "0123456789abcdef" for c in ref):
            raise ConfigError(
                f"{ref!r} is not a release id",
                fix="pass a release id or a prefix of 4+ hex digits (see `alchemy-nb releases`)",
            )
        matches = sorted(p for p in folder.glob(f"{ref}*.json")) if folder.exists() else []
        if not matches:
            raise ConfigError(
                f"no release {ref!r}",
                where=str(folder),
                fix="see `alchemy-nb releases` for the known ids",
            )
        if len(matches) > 1:
            raise ConfigError(
                f"release id {ref!r} is ambiguous: " + ", ".join(p.stem[:12] for p in matches),
                fix="give more digits",
            )
        return self._read(matches[0])  # type: ignore[no-any-return]

    def tree(self, release: dict[str, Any]) -> Path:
        """The release's files laid out in a folder (made once, then reused)."""
        folder: Path = self.root / "trees" / str(release["id"])
        done = folder / ".complete"
        if done.exists():
            return folder
        for rel, sha in release["files"].items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((self.root / "blobs" / sha).read_bytes())
        done.write_text(release["id"])
        return folder

    # ----------------------------------------------------------------- stages
    def stage(self, stage: str) -> dict[str, Any]:
        data = self._read(self.root / "stages" / f"{stage}.json")
        return data or {"stage": stage, "current": None, "history": [], "hold": None}

    def save_stage(self, stage: str, data: dict[str, Any]) -> None:
        self._write(self.root / "stages" / f"{stage}.json", data)

    def stages(self) -> list[str]:
        folder = self.root / "stages"
        return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []

    # ------------------------------------------------------------------ gates
    def gate(self, gate_id: str) -> dict[str, Any] | None:
        return self._read(self.root / "gates" / f"{gate_id}.json")  # type: ignore[no-any-return]

    def save_gate(self, gate: dict[str, Any]) -> None:
        self._write(self.root / "gates" / f"{gate['id']}.json", gate)

    def gates(self, stage: str | None = None) -> list[dict[str, Any]]:
        folder = self.root / "gates"
        found = [self._read(p) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
        found = [g for g in found if g and (stage is None or g["stage"] == stage)]
        return sorted(found, key=lambda g: g["requested_at"])

    # ------------------------------------------------------------------ locks
    @asynccontextmanager
    async def stage_lock(self, stage: str, timeout: float = 300.0) -> AsyncIterator[None]:
        """One promotion, rollback or gate decision per stage at a time (across processes)."""
        path = self.root / "locks" / f"{stage}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise GateError(
                            f"another promotion of stage {stage!r} is running",
                            where=str(path),
                            fix="wait for it to finish",
                        ) from None
                    await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)
