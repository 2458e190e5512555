"""The pytest plugin alchemy-nb registers (entry point ``pytest11``): ``alchemy_nb_dev``.

Example::

    def test_hello(alchemy_nb_dev):
        url = alchemy_nb_dev("path/to/worker-project")   # alchemy-nb dev on a free port
        assert httpx.get(url).status_code == 200
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ._dev import _factory

__all__ = ["alchemy_nb_dev"]


@pytest.fixture
def alchemy_nb_dev() -> Iterator[Callable[..., str]]:
    """Start ``alchemy-nb dev`` for a project: ``alchemy_nb_dev(path, stage=None)`` returns
    its base URL; every server started is stopped when the test ends."""
    with _factory() as start:
        yield start
