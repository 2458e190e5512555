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

import things

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
