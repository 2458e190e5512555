"""Fixtures shared by the cloudflare target's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alchemy_nb.testing.cloudflare import FakeCloudflare

_CLEARED = (
    "CLOUDFLARE_PROFILE",
    "ALCHEMY_NB_ADOPT",
    "CLOUDFLARE_MAX_CONCURRENCY",
    "CLOUDFLARE_MAX_ATTEMPTS",
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeCloudflare]:
    """The contract fake, with the Cloudflare target pointed at it and no profile, adoption
    or retry settings leaking in from outside; a contract violation fails the test."""
    with FakeCloudflare() as server:
        for key, value in server.environ().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        for key in _CLEARED:
            monkeypatch.delenv(key, raising=False)
        yield server
        assert server.violations == []
