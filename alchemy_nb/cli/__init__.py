"""The ``alchemy-nb`` command: a thin shell over the library API.

Results go to stdout (one JSON object with ``--json``); progress and logs go to stderr.
Exit codes: 0 success, 1 failure, 2 usage error.

This module stays tiny: with ``ALCHEMY_NB_SERVER=1`` a command is handed to the warm
server before anything heavy is imported.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

_ON = ("1", "on", "true", "yes")


def main(argv: Sequence[str] | None = None, *, _via_server: bool = False) -> int:
    """Entry point of the ``alchemy-nb`` console script."""
    if (
        argv is None
        and not _via_server
        and os.environ.get("ALCHEMY_NB_SERVER", "").lower() in _ON
        and not os.environ.get("ALCHEMY_NB_SERVER_CHILD")
    ):
        from . import _server  # a warm start (see _server.py)

        code = _server.connect_and_run(sys.argv[1:])
        if code is not None:
            return code
        _server.start_in_background()  # for the next command; this one runs here
    from ._main import run

    return run(argv)
