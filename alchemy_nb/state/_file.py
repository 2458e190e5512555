"""The embedded default store: plain JSON files under ``.alchemy/`` beside the program.

Layout, all human-readable::

    .alchemy/<app>/<stage>/state.json      snapshot: every record of the stage, sorted
    .alchemy/<app>/<stage>/journal.jsonl   entries written since the snapshot (one per line)
    .alchemy/<app>/locks/<stage>.lock      the stage's writer lock (empty when free)
    .alchemy/<app>/ledger.jsonl            the app's audit ledger: one event per line
    .alchemy/<app>/promotion/blobs/<sha256>          file contents of releases, stored once
    .alchemy/<app>/promotion/releases/<digest>.json  a release: its files and source
    .alchemy/<app>/promotion/stages/<stage>.json     history, current release, hold
    .alchemy/<app>/promotion/gates/<id>.json         gate requests and their decisions
    .alchemy/<app>/promotion/locks/<stage>.lock      one promotion per stage at a time

Every change is appended to the journal and fsynced before the engine goes on, so a
run killed at any instant leaves a journal that replays to exactly what had happened.
A checkpoint writes a new snapshot (temporary file, fsync, rename, fsync of the folder)
and only then empties the journal; replaying a journal over a snapshot that already
holds it gives the same state, so a crash between the two steps loses nothing.

The ledger is only ever appended to, under an exclusive ``flock`` on the file itself:
the appender reads the last line, builds the next event from it, writes it as one line
and fsyncs, all before the next appender (thread or process) can look.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from ..errors import LedgerError, LockError, StateCorruptError, StateError
from ._lock import FileLock, break_file_lock, read_file_lock
from ._protocol import DOC_KINDS, Entry, LockInfo, StageState

__all__ = ["FileStore"]

FORMAT = "alchemy-nb/state@1"


class FileStore:
    """State as JSON files under ``root`` (by default ``<app dir>/.alchemy``).

    Example::

        store = FileStore(Path(".alchemy"))
        state = await store.load("hello", "dev")
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self._journals: dict[tuple[str, str], _Journal] = {}

    def _stage_dir(self, app: str, stage: str) -> Path:
        return self.root / app / stage

    async def load(self, app: str, stage: str) -> StageState:
        return self._load(app, stage)

    def _load(self, app: str, stage: str) -> StageState:
        folder = self._stage_dir(app, stage)
        state = StageState(app=app, stage=stage)
        snapshot = folder / "state.json"
        try:
            raw = snapshot.read_bytes()
        except FileNotFoundError:
            raw = None
        except OSError as exc:
            raise StateError(
                f"cannot read {snapshot}: {exc.strerror}",
                where=str(snapshot),
                fix="check the file's permissions",
            ) from exc
        if raw is not None:
            _read_snapshot(snapshot, raw, state)
        journal = self._journal(app, stage)
        for entry in journal.read():
            state.apply(entry)
            state.replayed += 1
        return state

    def _journal(self, app: str, stage: str) -> _Journal:
        key = (app, stage)
        if key not in self._journals:
            self._journals[key] = _Journal(self._stage_dir(app, stage) / "journal.jsonl")
        return self._journals[key]

    async def append(
        self, app: str, stage: str, entries: Sequence[Entry], *, sync: bool = True
    ) -> None:
        if not entries:
            return
        journal = self._journal(app, stage)
        if sync:
            await asyncio.to_thread(journal.append, entries, sync=True)
        else:  # a write to the page cache: quick, and survives the process being killed
            journal.append(entries, sync=False)

    async def checkpoint(self, state: StageState) -> None:
        await asyncio.to_thread(self._checkpoint, state)

    def _checkpoint(self, state: StageState) -> None:
        folder = self._stage_dir(state.app, state.stage)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / "state.json", _snapshot_bytes(state))
        self._journal(state.app, state.stage).clear()
        state.replayed = 0

    async def drop(self, app: str, stage: str) -> None:
        folder = self._stage_dir(app, stage)
        self._journal(app, stage).close()
        for name in ("journal.jsonl", "state.json"):
            with suppress(FileNotFoundError):
                (folder / name).unlink()
        with suppress(OSError):
            folder.rmdir()
        _fsync_dir(folder.parent)

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
        lock = FileLock(self.root / app / "locks" / f"{stage}.lock", app, stage)
        info = await lock.acquire(operation, timeout, on_wait=on_wait, on_takeover=on_takeover)
        try:
            yield info
        finally:
            self._journal(app, stage).close()
            lock.release(info)

    async def current_lock(self, app: str, stage: str) -> LockInfo | None:
        return read_file_lock(self.root / app / "locks" / f"{stage}.lock")

    async def break_lock(self, lock_id: str) -> LockInfo:
        return break_file_lock(self.root, lock_id)

    async def stages(self, app: str) -> list[str]:
        folder = self.root / app
        if not folder.is_dir():
            return []
        return sorted(
            p.name
            for p in folder.iterdir()
            if p.is_dir() and ((p / "state.json").exists() or (p / "journal.jsonl").exists())
        )

    async def ledger_append(
        self, app: str, build: Callable[[dict[str, Any] | None], dict[str, Any]]
    ) -> dict[str, Any]:
        return await asyncio.to_thread(_ledger_append, self.root / app / "ledger.jsonl", build)

    async def ledger_read(self, app: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(_ledger_read, self.root / app / "ledger.jsonl")

    # -------------------------------------------------------- promotion records
    def _doc_path(self, app: str, kind: str, key: str) -> Path:
        if kind not in DOC_KINDS:
            raise ValueError(f"unknown document kind {kind!r}")
        return self.root / app / "promotion" / kind / f"{key}.json"

    def doc_get(self, app: str, kind: str, key: str) -> dict[str, Any] | None:
        path = self._doc_path(app, kind, key)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateCorruptError(
                f"a promotion record is not valid JSON ({exc})",
                where=str(path),
                fix="restore the file from a backup",
            ) from None
        return data  # type: ignore[no-any-return]

    def doc_put(
        self, app: str, kind: str, key: str, value: dict[str, Any], *, create: bool = False
    ) -> dict[str, Any]:
        path = self._doc_path(app, kind, key)
        if create:
            existing = self.doc_get(app, kind, key)
            if existing is not None:
                return existing
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode()
        _atomic_write(path, data)
        return value

    def doc_keys(self, app: str, kind: str) -> list[str]:
        folder = self._doc_path(app, kind, "x").parent
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def blob_put(self, app: str, sha: str, data: bytes) -> None:
        blob = self.root / app / "promotion" / "blobs" / sha
        if blob.exists():
            return
        blob.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(blob, data)

    def blob_get(self, app: str, sha: str) -> bytes | None:
        try:
            return (self.root / app / "promotion" / "blobs" / sha).read_bytes()
        except FileNotFoundError:
            return None

    @asynccontextmanager
    async def promotion_lock(self, app: str, stage: str, *, timeout: float) -> AsyncIterator[None]:
        path = self.root / app / "promotion" / "locks" / f"{stage}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:  # a killed holder's flock goes with its process
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockError(
                            f"another promotion of stage {stage!r} of app {app!r} is running",
                            where=str(path),
                            fix="wait for it to finish",
                        ) from None
                    await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def close(self) -> None:
        for journal in self._journals.values():
            journal.close()


_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
_LINE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _snapshot_bytes(state: StageState) -> bytes:
    """The snapshot as JSON with one resource record to a line, sorted by id.

    Still one JSON document, and as readable in a diff as an indented one (a changed
    resource is a changed line), at a third of the cost: the indenting encoder is
    Python code, this one is C.
    """
    encode = _ENCODER.encode
    head = encode({"app": state.app, "format": FORMAT, "meta": state.meta, "stage": state.stage})
    records = state.records
    lines = ",\n".join(f"{encode(rid)}: {encode(records[rid])}" for rid in sorted(records))
    body = (
        f'{head[:-1]},\n"resources": {{\n{lines}\n}}}}\n'
        if records
        else f'{head[:-1]}, "resources": {{}}}}\n'
    )
    return body.encode()


def _read_snapshot(path: Path, raw: bytes, state: StageState) -> None:
    fix = (
        "restore the file from version control or a backup; if the stage's resources are "
        "gone, delete the file to start the stage afresh"
    )
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        at = f"{path}:{line}" if line else str(path)
        raise StateCorruptError(
            f"state file is not valid JSON ({exc})", where=at, fix=fix
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateCorruptError(
            f"state file is not an alchemy-nb state snapshot (expected format {FORMAT!r})",
            where=str(path),
            fix=fix,
        )
    records = doc.get("resources")
    if not isinstance(records, dict) or not all(
        isinstance(r, dict) and isinstance(r.get("kind"), str) and isinstance(r.get("status"), str)
        for r in records.values()
    ):
        raise StateCorruptError(
            "state file has a damaged resource record", where=str(path), fix=fix
        )
    state.records = records
    state.meta = doc.get("meta") or {}


class _Journal:
    """An append-only JSON-lines file, fsynced on every append."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._valid_length: int | None = None

    def read(self) -> list[Entry]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._valid_length = 0
            return []
        entries: list[Entry] = []
        end = raw.rfind(b"\n") + 1  # a last line without newline is a torn write: ignored
        for lineno, line in enumerate(raw[:end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or entry.get("t") not in ("put", "del", "meta"):
                    raise ValueError("not a journal entry")
            except ValueError as exc:
                raise StateCorruptError(
                    f"journal line {lineno} is damaged ({exc})",
                    where=f"{self.path}:{lineno}",
                    fix="restore the file from a backup, or remove the damaged line if you "
                    "know the operation it recorded did not happen",
                ) from None
            entries.append(entry)
        self._valid_length = end
        return entries

    def append(self, entries: Sequence[Entry], *, sync: bool = True) -> None:
        encode = _LINE_ENCODER.encode
        data = "".join([f"{encode(e)}\n" for e in entries]).encode()
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if self._valid_length is None:  # never read: find where the last whole line ends
                self.read()
            size = os.fstat(self._fd).st_size
            if self._valid_length is not None and size > self._valid_length:
                os.ftruncate(self._fd, self._valid_length)  # drop a torn tail before appending
            if created:
                _fsync_dir(self.path.parent)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if sync:
                os.fsync(self._fd)
        except OSError as exc:
            raise StateError(
                f"cannot write the journal: {exc.strerror}",
                where=str(self.path),
                fix="free disk space or fix the folder's permissions",
            ) from exc

    def clear(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
        elif self.path.exists():
            with open(self.path, "r+b") as fh:
                fh.truncate(0)
                os.fsync(fh.fileno())
        self._valid_length = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._valid_length = None


def _ledger_append(
    path: Path, build: Callable[[dict[str, Any] | None], dict[str, Any]]
) -> dict[str, Any]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise _ledger_io_error(path, "open", exc) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if created:
            _fsync_dir(path.parent)
        size = os.fstat(fd).st_size
        whole, last_line = _last_line(fd, size)
        if size > whole:  # a torn write from a crash mid-append: drop it first
            os.ftruncate(fd, whole)
        last = None if whole == 0 else _ledger_entry(last_line, f"the last line of {path}")
        event = build(last)
        try:
            line = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise LedgerError(
                f"a ledger event must be JSON ({exc})",
                where=str(path),
                fix="pass only strings, numbers, booleans, lists and dicts in the event",
            ) from None
        view = memoryview(line.encode() + b"\n")
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        return event
    except OSError as exc:
        raise _ledger_io_error(path, "append to", exc) from exc
    finally:
        os.close(fd)  # closing releases the flock


def _last_line(fd: int, size: int) -> tuple[int, bytes]:
    """(length up to the last newline, the last whole line without its newline)."""
    buf = b""
    pos = size
    end: int | None = None
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        if end is None:
            newline = buf.rfind(b"\n")
            if newline < 0:
                continue
            end = pos + newline + 1
        start = buf.rfind(b"\n", 0, end - pos - 1)
        if start >= 0:
            return end, buf[start + 1 : end - pos - 1]
    if end is None:
        return 0, b""
    return end, buf[: end - 1]  # pos is 0 here: the file has one whole line


def _ledger_read(path: Path) -> list[dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise _ledger_io_error(path, "read", exc) from exc
    end = raw.rfind(b"\n") + 1  # a last line without newline is a torn write: ignored
    lines = raw[:end].split(b"\n")[:-1]
    return [_ledger_entry(line, f"{path}:{n}") for n, line in enumerate(lines, start=1)]


def _ledger_entry(line: bytes, where: str) -> dict[str, Any]:
    """One ledger line, or ``{"damaged": REASON}`` when it is not a JSON object."""
    if not line.strip():
        return {"damaged": f"{where} is blank"}
    try:
        entry = json.loads(line)
    except ValueError as exc:  # includes UnicodeDecodeError
        return {"damaged": f"{where} is not valid JSON ({exc})"}
    if not isinstance(entry, dict):
        return {"damaged": f"{where} is not a JSON object"}
    return entry


def _ledger_io_error(path: Path, doing: str, exc: OSError) -> LedgerError:
    return LedgerError(
        f"cannot {doing} the ledger: {exc.strerror}",
        where=str(path),
        fix="free disk space or fix the folder's permissions",
    )


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with suppress(OSError):
            tmp.unlink()
        raise StateError(
            f"cannot write {path}: {exc.strerror}",
            where=str(path),
            fix="free disk space or fix the folder's permissions",
        ) from exc
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
