"""Run ``alchemy-nb dev`` for a worker project from a test, as one would ``wrangler dev``.

Example (``conftest.py`` of a worker project)::

    from alchemy_nb.testing import dev_fixture

    api = dev_fixture(".", scope="session")        # a fixture named "api"

    def test_hello(api):                            # the base URL, e.g. http://127.0.0.1:51234
        assert httpx.get(f"{api}/").text == "Hello"

or, with the ``alchemy_nb_dev`` fixture that the pytest plugin provides::

    def test_hello(alchemy_nb_dev):
        url = alchemy_nb_dev("path/to/project")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["DevServer", "dev_fixture", "free_port"]

READY = "Ready on "


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DevServer:
    """``alchemy-nb dev --port N`` in ``project``; ``url`` once it says ``Ready on``.

    ``output`` holds what it printed on stderr (deploy lines, the workers' logs).
    Leaving the ``with`` block (or :meth:`stop`) stops it and every process it started.

    Example::

        with DevServer("examples/api") as dev:
            httpx.get(dev.url + "/health")
    """

    def __init__(
        self,
        project: str | Path,
        *,
        port: int | None = None,
        stage: str | None = None,
        timeout: float = 120.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.project = Path(project).resolve()
        if not self.project.is_dir():
            raise ConfigError(
                f"no project folder at {self.project}",
                where=str(self.project),
                fix="pass the folder holding wrangler.toml/wrangler.jsonc or alchemy_run.py",
            )
        self.port = port or free_port()
        self.timeout = timeout
        self.urls: list[str] = []
        self.output: list[str] = []
        command = [sys.executable, "-m", "alchemy_nb", "dev", "--port", str(self.port)]
        if stage:
            command += ["--stage", stage]
        self._proc = subprocess.Popen(
            command,
            cwd=self.project,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(READY):
                self.urls.append(line[len(READY) :].split()[0])

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self.output.append(line)

    def wait_ready(self) -> str:
        """Wait until a worker serves; its base URL (raises with the output if it fails)."""
        deadline = time.monotonic() + self.timeout
        while not self.urls:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"alchemy-nb dev in {self.project} did not become ready "
                    f"(exit code {self._proc.returncode}):\n{''.join(self.output)}"
                )
            time.sleep(0.02)
        return self.urls[0]

    @property
    def url(self) -> str:
        """The first worker's base URL (waits for it)."""
        return self.wait_ready()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as Ctrl-C would; kill if it does not stop within ``timeout``."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
        return self._proc.returncode

    def __enter__(self) -> DevServer:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dev_fixture(
    project: str | Path, *, scope: Any = "session", name: str | None = None, **options: Any
) -> Callable[..., Any]:
    """A pytest fixture that serves ``project`` with ``alchemy-nb dev`` on a free port
    and yields its base URL; the fixture's name is the variable it is assigned to (or
    ``name``). ``options`` go to :class:`DevServer` (``stage``, ``timeout``, ``env``).

    Example::

        api = dev_fixture("workers/api")

        def test_health(api):
            assert httpx.get(f"{api}/health").status_code == 200
    """
    import pytest

    def serve() -> Iterator[str]:
        with DevServer(project, **options) as dev:
            yield dev.url

    fixture: Callable[..., Any] = pytest.fixture(scope=scope, name=name)(serve)
    return fixture


@contextlib.contextmanager
def _factory() -> Iterator[Callable[..., str]]:
    servers: list[DevServer] = []

    def start(project: str | Path, **options: Any) -> str:
        server = DevServer(project, **options)
        servers.append(server)
        return server.wait_ready()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
