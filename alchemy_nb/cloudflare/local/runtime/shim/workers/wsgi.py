"""``workers.wsgi``: serve a WSGI app (Django, Flask) from a worker's fetch handler.

As on Cloudflare::

    from workers import WorkerEntrypoint, wsgi

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await wsgi.fetch(application, request, self.env)

The bindings are in ``environ["workers.env"]``. The app runs synchronously, in a thread
of its own, while the worker's event loop keeps serving: synchronous code inside the app
may call ``pyodide.ffi.run_sync(awaitable)`` to wait for a binding (the Django ORM over
D1 does), which runs the awaitable on the worker's loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from typing import Any
from urllib.parse import unquote, urlsplit

import js
from pyodide.ffi import _serving_loop

__all__ = ["build_environ", "fetch"]

logger = logging.getLogger("wsgi")
NULL_BODY_STATUSES = frozenset({101, 103, 204, 205, 304})


def build_environ(req: Any, env: Any, body: bytes) -> dict[str, Any]:
    """The WSGI environ of ``req`` (PEP 3333), with ``env`` as ``environ["workers.env"]``."""
    request = js._bridged_request(req, "wsgi")
    url = urlsplit(request.url)
    scheme = url.scheme or "http"
    environ: dict[str, Any] = {
        "REQUEST_METHOD": str(request.method),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(url.path or "/").encode("utf-8").decode("latin-1"),
        "QUERY_STRING": url.query,
        "SERVER_NAME": url.hostname or "localhost",
        "SERVER_PORT": str(url.port or (443 if scheme == "https" else 80)),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "workers.env": env,
    }
    for key, value in request.headers:
        name = key.upper().replace("-", "_")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[name] = value
            continue
        http_name = "HTTP_" + name
        environ[http_name] = f"{environ[http_name]},{value}" if http_name in environ else value
    if "CONTENT_LENGTH" not in environ and body:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _run(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    state: dict[str, Any] = {}
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and "status" in state:
            raise exc_info[1].with_traceback(exc_info[2])
        if exc_info is None and "status" in state:
            raise AssertionError("start_response() called more than once")
        state["status"], state["headers"] = status, list(headers)
        return written.append

    result = app(environ, start_response)
    try:
        chunks = [*written, *(chunk for chunk in result if chunk)]
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if "status" not in state:
        raise RuntimeError("The WSGI application did not call start_response()")
    return state["status"], state["headers"], b"".join(chunks)


async def fetch(app: Any, req: Any, env: Any, ctx: Any = None) -> js.Response:
    """Serve ``req`` with the WSGI application ``app``; ``env`` is ``environ["workers.env"]``."""
    request = js._bridged_request(req, "wsgi")
    body = request.body
    data = await body._read_all() if body is not None else b""
    environ = build_environ(request, env, data)
    loop = asyncio.get_running_loop()
    _serving_loop(loop)  # run_sync() in the app's thread runs awaitables on this loop
    try:
        status, headers, payload = await loop.run_in_executor(None, _run, app, environ)
    except Exception:
        logger.exception("WSGI request failed")
        raise
    code, _, reason = status.partition(" ")
    js_headers = js.Headers()
    for key, value in headers:
        js_headers.append(key, value)
    status_code = int(code)
    return js.Response._make(
        None if status_code in NULL_BODY_STATUSES or not payload else payload,
        status_code,
        reason,
        js_headers,
    )
