"""Talking to a stage's supervisor: start it when needed, deploy and remove workers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..._process import process_start_marker, spawn_detached
from ...errors import ProviderError

__all__ = ["control_socket_path", "request", "serving", "supervisor_alive"]

START_TIMEOUT = 15.0
_STARTING = asyncio.Lock()  # one start at a time in this process (dev starts it early)


def control_socket_path(folder: Path) -> Path:
    """A short socket path for the supervisor of ``folder`` (Unix sockets have a length
    limit, and data folders can be deep), in a folder only this user can enter."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/alchemy-nb-{os.getuid()}")
    runtime = base / "alchemy-nb" if os.environ.get("XDG_RUNTIME_DIR") else base
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return runtime / f"stage-{key}.sock"


def supervisor_alive(folder: Path) -> bool:
    """Whether the stage's supervisor runs (from its pid file; no connection made)."""
    try:
        info = json.loads((folder / "supervisor.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(info.get("started")) and process_start_marker(int(info["pid"])) == info["started"]


def serving(folder: Path, name: str) -> dict[str, Any] | None:
    """What the supervisor says it serves for worker ``name``, if it still runs."""
    try:
        data: dict[str, Any] = json.loads((folder / "workers" / f"{name}.serving").read_text())
    except (OSError, ValueError):
        return None
    if process_start_marker(int(data.get("supervisor", 0))) != data.get("supervisor_started"):
        return None
    return data


async def request(
    folder: Path, message: dict[str, Any], *, start: bool = True, timeout: float = 120.0
) -> dict[str, Any] | None:
    """Send one request; start the supervisor first if ``start``. None when none runs."""
    path = control_socket_path(folder)
    if not supervisor_alive(folder):
        if not start:
            return None
        async with _STARTING:
            if not supervisor_alive(folder):
                await _start(folder, path)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except OSError:
        if not start:
            return None
        await _start(folder, path)
        reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    if not line:
        raise ProviderError(
            "the stage supervisor closed the connection without an answer",
            where=str(folder),
            fix="see logs/supervisor.log there",
        )
    reply: dict[str, Any] = json.loads(line)
    return reply


async def _start(folder: Path, path: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    spawn_detached(
        [sys.executable, "-m", "alchemy_nb.cloudflare.local._supervisor", str(folder)],
        log=str(folder / "logs" / "supervisor.log"),
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if supervisor_alive(folder) and path.exists():
            return
        await asyncio.sleep(0.02)
    raise ProviderError(
        "the stage supervisor did not start",
        where=str(folder),
        fix=f"see {folder / 'logs' / 'supervisor.log'}",
    )
