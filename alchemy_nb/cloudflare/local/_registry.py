"""The local dev registry: which worker, by script name, serves where on this machine.

A deploy on the local target records ``<script name> -> url`` in a folder only this
user can enter (beside the supervisors' control sockets). A service binding that names a
worker outside its own app (wrangler's ``[[services]]``) looks it up there at call time,
so two projects under ``alchemy-nb dev`` reach each other, as two ``wrangler dev``
sessions do. An entry whose supervisor no longer runs counts as absent.
``ALCHEMY_NB_DEV_REGISTRY`` names another folder, to keep a set of sessions apart.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from ._control import control_socket_path, serving

__all__ = ["forget", "lookup", "record"]


def _folder() -> Path:
    """``$ALCHEMY_NB_DEV_REGISTRY`` if set (a separate set of dev sessions), else the
    per-user folder beside the supervisors' sockets."""
    chosen = os.environ.get("ALCHEMY_NB_DEV_REGISTRY")
    base = Path(chosen) if chosen else control_socket_path(Path("/")).parent / "registry"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    return base


def _path(script_name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in script_name)
    return _folder() / f"{safe}.json"


def record(script_name: str, url: str, folder: Path, worker_id: str, rpc_token: str) -> None:
    """Say that ``script_name`` serves at ``url`` (worker ``worker_id`` of the stage ``folder``)."""
    path = _path(script_name)
    data = {"url": url, "folder": str(folder), "id": worker_id, "rpc_token": rpc_token}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def forget(script_name: str, folder: Path) -> None:
    """Remove ``script_name``'s entry if the stage ``folder`` made it."""
    path = _path(script_name)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("folder") == str(folder):
            path.unlink()


def lookup(script_name: str) -> dict[str, Any] | None:
    """``{"url", "rpc_token"}`` of a worker serving now, or None."""
    try:
        data: dict[str, Any] = json.loads(_path(script_name).read_text())
    except (OSError, ValueError):
        return None
    if serving(Path(data["folder"]), data["id"]) is None:
        return None
    return data
