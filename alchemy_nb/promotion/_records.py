"""Where promotion keeps its records: releases (with their files), stage histories, gates.

They live in the app's state store (see :class:`alchemy_nb.state.StateStore`), beside its
resources and ledger, so that every machine sharing the store (files, SQLite,
PostgreSQL) sees the same releases and gates. The file store keeps them readable::

    .alchemy/<app>/promotion/blobs/<sha256>          file contents, stored once
    .alchemy/<app>/promotion/releases/<digest>.json  a release: its files and source
    .alchemy/<app>/promotion/stages/<stage>.json     history, current release, hold
    .alchemy/<app>/promotion/gates/<id>.json         gate requests and their decisions

A release's files are laid out to run under ``<data root>/.alchemy/<app>/promotion/trees/``
on the machine that deploys it, whatever the store.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError, GateError, LockError, StateCorruptError
from ..state import StateStore

__all__ = ["Records", "now_iso"]


def now_iso(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at if at is not None else time.time()))


class Records:
    """The promotion records of one app, kept in ``store``."""

    def __init__(self, store: StateStore, app: str, data_root: Path) -> None:
        self.store = store
        self.app = app
        self.trees = data_root / ".alchemy" / app / "promotion" / "trees"

    # --------------------------------------------------------------- releases
    @staticmethod
    def release_id(files: dict[str, bytes]) -> str:
        """The digest a release of these files has (nothing is stored)."""
        index = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
        return _digest(index)

    def store_release(self, files: dict[str, bytes], meta: dict[str, Any]) -> dict[str, Any]:
        """Store files and the release record; the same files give the same release."""
        index = {}
        for rel, data in sorted(files.items()):
            sha = hashlib.sha256(data).hexdigest()
            self.store.blob_put(self.app, sha, data)
            index[rel] = sha
        digest = _digest(index)
        record = {"id": digest, "files": index, **meta, "created_at": now_iso()}
        return self.store.doc_put(self.app, "releases", digest, record, create=True)

    def release(self, ref: str) -> dict[str, Any]:
        """A release by id or unambiguous id prefix."""
        ref = ref.strip().lower()
        if len(ref) < 4 or any(c not in "0123456789abcdef" for c in ref):
            raise ConfigError(
                f"{ref!r} is not a release id",
                fix="pass a release id or a prefix of 4+ hex digits (see `alchemy-nb releases`)",
            )
        found = self.store.doc_get(self.app, "releases", ref) if len(ref) == 64 else None
        if found is not None:
            return found
        matches = [k for k in self.store.doc_keys(self.app, "releases") if k.startswith(ref)]
        if not matches:
            raise ConfigError(
                f"no release {ref!r}",
                where=self.store.location,
                fix="see `alchemy-nb releases` for the known ids",
            )
        if len(matches) > 1:
            raise ConfigError(
                f"release id {ref!r} is ambiguous: " + ", ".join(k[:12] for k in matches),
                fix="give more digits",
            )
        release = self.store.doc_get(self.app, "releases", matches[0])
        if release is None:  # removed between the listing and the read
            raise ConfigError(f"no release {ref!r}", where=self.store.location)
        return release

    def tree(self, release: dict[str, Any]) -> Path:
        """The release's files laid out in a folder (made once, then reused)."""
        folder: Path = self.trees / str(release["id"])
        done = folder / ".complete"
        if done.exists():
            return folder
        for rel, sha in release["files"].items():
            data = self.store.blob_get(self.app, sha)
            if data is None:
                raise StateCorruptError(
                    f"release {str(release['id'])[:12]} lacks the contents of {rel}",
                    where=f"{self.store.location}, blob {sha}",
                    fix="restore the store from a backup, or deploy the code again as a "
                    "new release",
                )
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        done.write_text(release["id"])
        return folder

    # ----------------------------------------------------------------- stages
    def stage(self, stage: str) -> dict[str, Any]:
        data = self.store.doc_get(self.app, "stages", stage)
        return data or {"stage": stage, "current": None, "history": [], "hold": None}

    def save_stage(self, stage: str, data: dict[str, Any]) -> None:
        self.store.doc_put(self.app, "stages", stage, data)

    def stages(self) -> list[str]:
        return self.store.doc_keys(self.app, "stages")

    # ------------------------------------------------------------------ gates
    def gate(self, gate_id: str) -> dict[str, Any] | None:
        return self.store.doc_get(self.app, "gates", gate_id)

    def save_gate(self, gate: dict[str, Any]) -> None:
        self.store.doc_put(self.app, "gates", gate["id"], gate)

    def gates(self, stage: str | None = None) -> list[dict[str, Any]]:
        keys = self.store.doc_keys(self.app, "gates")
        found = [self.store.doc_get(self.app, "gates", k) for k in keys]
        chosen = [g for g in found if g and (stage is None or g["stage"] == stage)]
        return sorted(chosen, key=lambda g: g["requested_at"])

    # ------------------------------------------------------------------ locks
    @asynccontextmanager
    async def stage_lock(self, stage: str, timeout: float = 300.0) -> AsyncIterator[None]:
        """One promotion, rollback or gate decision per stage at a time (across processes)."""
        held = False
        try:
            async with self.store.promotion_lock(self.app, stage, timeout=timeout):
                held = True
                yield
        except LockError as exc:
            if held:  # from the body (e.g. the engine's stage lock): not ours to translate
                raise
            raise GateError(exc.what, where=exc.where, fix=exc.fix) from None


def _digest(index: dict[str, str]) -> str:
    return hashlib.sha256(
        "".join(f"{rel}\0{sha}\n" for rel, sha in sorted(index.items())).encode()
    ).hexdigest()
