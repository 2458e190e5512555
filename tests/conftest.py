from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# Every command a test starts runs in a fresh Python of its own, never through a warm server
# left from another test; tests/test_server.py turns the server on where it is the subject.
os.environ["ALCHEMY_NB_SERVER"] = "0"

import things

pytest_plugins = ["pytester"]  # tests of the pytest fixtures alchemy-nb gives its users

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(autouse=True)
def _fresh_journal() -> things.Journal:
    things.JOURNAL.__init__()  # type: ignore[misc]
    return things.JOURNAL


@pytest.fixture
def journal() -> things.Journal:
    return things.JOURNAL


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STAGE", "ALCHEMY_STAGE", "ALCHEMY_PASSWORD", "PHASE", "ALCHEMY_LOCK_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def write_program(folder: Path, body: str, name: str = "alchemy_run.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def cli(
    folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STAGE", "ALCHEMY_STAGE", "ALCHEMY_PASSWORD", "PHASE")
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "alchemy_nb", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def interactive() -> None:
    """``preexec_fn`` for commands a test interrupts with Ctrl-C: a shell's background job
    (as a CI runner may be) starts with SIGINT ignored, a terminal does not."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


class DevSession:
    """``alchemy-nb dev --port N`` in ``folder`` (N a free port unless given), its stderr
    collected; stopped with Ctrl-C.

    Example::

        with DevSession(tmp_path) as dev:
            url = dev.wait_for_url()
    """

    def __init__(self, folder: Path, port: int | None = None) -> None:
        import socket
        import threading

        if port is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        self.folder = folder
        self.port = port
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alchemy_nb", "dev", "--port", str(port)],
            cwd=folder,
            preexec_fn=interactive,  # Ctrl-C works, as in a terminal
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stderr is not None
        stderr = self.proc.stderr
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(stderr.readline, "")))
        self._reader.start()

    def wait_for(self, predicate: Any, what: str, timeout: float = 30) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; output: {''.join(self.lines)}")

    def wait_for_url(self) -> str:
        self.wait_for(lambda: any("url = " in line for line in self.lines), "the first deploy")
        line = next(line for line in self.lines if "url = " in line)
        return line.split("url = ")[1].strip()

    def stop(self) -> int:
        """Ctrl-C; if it does not stop, kill it and destroy the stage (never leave workers)."""
        import signal

        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                cli(self.folder, "destroy", timeout=60)
            self._reader.join()
            assert self.proc.stderr is not None
            self.proc.stderr.close()
        return self.proc.returncode

    def __enter__(self) -> DevSession:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.returncode is None:
            self.stop()
