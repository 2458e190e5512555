"""One local worker process: load the worker, serve it on the socket the supervisor gives.

``python -m alchemy_nb.cloudflare.local._host CONFIG`` with ``ALCHEMY_NB_LISTEN_FD`` (the
listening socket) and ``ALCHEMY_NB_READY_FD`` (written once the worker serves).

``python -m alchemy_nb.cloudflare.local._host --standby FD``: a process started ahead of
need, with the server and the runtime already imported, that waits on the Unix socket
``FD`` for the supervisor to hand it a worker (the config's path, with the listening
socket, the ready pipe and the log file as file descriptors); it then serves that worker
exactly as the first form would. It exits when the socket closes without a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from typing import Any

import uvicorn

from .runtime import WorkerLoadError, create_app

_DRAINING = [False]


def _draining(app: Any) -> Any:
    """While the process drains, every response says ``connection: close``, so clients
    finish their request and reconnect (to the new version) instead of being cut off."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if not _DRAINING[0] or scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def closing(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await app(scope, receive, closing)

    return wrapped


class _Server(uvicorn.Server):
    """Tells the supervisor it is ready once it accepts connections; on SIGTERM stops
    accepting, lets open connections finish (up to a second), then shuts down."""

    def __init__(self, config: uvicorn.Config, ready_fd: int) -> None:
        super().__init__(config)
        self.ready_fd = ready_fd

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # the shared socket stays open in the supervisor and the new version
        if self.ready_fd >= 0:  # tell the supervisor: new connections now go to the new version
            with contextlib.suppress(OSError):
                os.write(self.ready_fd, b"closed\n")
        _DRAINING[0] = True
        deadline = time.monotonic() + 1.0
        while self.server_state.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await super().shutdown(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.ready_fd >= 0 and not self.should_exit:
            os.write(self.ready_fd, b"ready\n")  # kept open: "closed" follows on shutdown


def main() -> None:
    with open(sys.argv[1]) as fh:
        config: Any = json.load(fh)
    try:
        app = create_app(config)
    except WorkerLoadError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None
    listener = socket.socket(fileno=int(os.environ["ALCHEMY_NB_LISTEN_FD"]))
    server = _Server(
        uvicorn.Config(
            _draining(app),
            loop="uvloop",
            http="httptools",
            lifespan="on",
            proxy_headers=False,
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=10,
        ),
        int(os.environ.get("ALCHEMY_NB_READY_FD", "-1")),
    )
    print(
        f"{config['name']}: serving {config['url']} (version {config['version'][:12]}, "
        f"pid {os.getpid()})",
        file=sys.stderr,
        flush=True,
    )
    server.run(sockets=[listener])


def standby(fd: int) -> None:
    """Wait, warm, for a worker to serve (see the module's docstring)."""
    from .runtime import install_shim

    install_shim()  # what create_app does first; then import what every worker needs
    import uvicorn.lifespan.on
    import uvicorn.loops.uvloop
    import uvicorn.protocols.http.httptools_impl  # noqa: F401

    from .runtime import _app  # noqa: F401

    channel = socket.socket(fileno=fd)
    try:
        message, fds, _flags, _address = socket.recv_fds(channel, 65536, 3)
    except OSError:
        message, fds = b"", []
    channel.close()
    if not message or len(fds) != 3:
        raise SystemExit(0)  # the supervisor stopped, or has no worker for us
    listen_fd, ready_fd, log_fd = fds
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.environ["ALCHEMY_NB_LISTEN_FD"] = str(listen_fd)
    os.environ["ALCHEMY_NB_READY_FD"] = str(ready_fd)
    sys.argv[1:] = [message.decode()]
    main()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--standby"]:
        standby(int(sys.argv[2]))
    else:
        main()
