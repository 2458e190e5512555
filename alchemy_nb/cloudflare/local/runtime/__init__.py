"""The in-process runtime of a local worker process: a Cloudflare-style Python Worker as ASGI.

``create_app(config)`` imports the worker's module (``config["entry"]``) with the
``workers``/``js``/``pyodide`` shims first on ``sys.path``, finds its handler
(``class Default(WorkerEntrypoint)`` or ``on_fetch``), opens its bindings (D1 and KV on
SQLite, R2 in a folder, vars, secrets, service bindings) and returns a plain ASGI3
application. The host process serves it with uvicorn on 127.0.0.1.

Importing this package does not touch ``sys.path``; only :func:`create_app` does.

Example::

    from alchemy_nb.cloudflare.local.runtime import WorkerLoadError, create_app

    app = create_app(config)          # raises WorkerLoadError on a broken worker
    uvicorn.run(app, host="127.0.0.1", port=8787, lifespan="on")
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import WorkerLoadError

if TYPE_CHECKING:
    from .._config import WorkerConfig
    from ._app import WorkerApp

__all__ = ["SHIM_PATH", "WorkerLoadError", "create_app", "install_shim"]

SHIM_PATH = str(Path(__file__).resolve().parent / "shim")
"""The folder holding the ``workers``, ``js`` and ``pyodide`` shim modules."""


def install_shim() -> None:
    """Put :data:`SHIM_PATH` first on ``sys.path`` (idempotent)."""
    if sys.path[:1] != [SHIM_PATH]:
        while SHIM_PATH in sys.path:
            sys.path.remove(SHIM_PATH)
        sys.path.insert(0, SHIM_PATH)


def create_app(config: WorkerConfig) -> WorkerApp:
    """Load the worker described by ``config`` and return its ASGI application.

    Raises :class:`WorkerLoadError` when the module fails to import, defines no
    handler, or a binding cannot be opened. The returned app handles the ASGI
    ``lifespan`` protocol (shutdown closes the bindings); without lifespan, call
    ``await app.aclose()``.

    Example::

        app = create_app(config)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app)) as client:
            await client.get("http://127.0.0.1:8787/")
        await app.aclose()
    """
    install_shim()
    from ._app import build_app  # after install_shim: it imports the shim modules

    return build_app(config)
