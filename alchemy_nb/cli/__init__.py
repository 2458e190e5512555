"""The ``alchemy-nb`` command: a thin shell over the library API.

Results go to stdout (one JSON object with ``--json``); progress and logs go to stderr.
Exit codes: 0 success, 1 failure, 2 usage error.

This module stays tiny: a command that goes to the warm server (``_server.py``) is handed
over before anything heavy is imported. ``ALCHEMY_NB_SERVER`` chooses: ``auto`` (the
default) sends the short engine commands there, except under CI; ``1`` sends every
command; ``0`` none.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["main"]

_ON = ("1", "on", "true", "yes")
_OFF = ("0", "off", "false", "no")
# What ``auto`` sends to the server: short commands, run often, that never prompt. (A child
# of the server has no controlling terminal, so a password prompt could not hide what is
# typed; `dev` runs for hours, where a warm start saves nothing.)
AUTO_COMMANDS = frozenset({"plan", "deploy", "read", "destroy", "status"})


def use_server(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``alchemy-nb ARGV`` runs through the warm server (see the module docstring)."""
    if environ.get("ALCHEMY_NB_SERVER_CHILD") or sys.platform != "linux":
        return False  # already in one; or not Linux (the server needs SO_PEERCRED)
    setting = environ.get("ALCHEMY_NB_SERVER", "").strip().lower() or "auto"
    if setting in _ON:
        return True
    if setting != "auto":
        return False
    if environ.get("CI", "").strip().lower() not in ("", *_OFF):
        return False  # a CI job's processes should end with the job
    return bool(argv) and argv[0] in AUTO_COMMANDS


def main(argv: Sequence[str] | None = None, *, _via_server: bool = False) -> int:
    """Entry point of the ``alchemy-nb`` console script."""
    if argv is None and not _via_server and use_server(sys.argv[1:]):
        from . import _server  # a warm start (see _server.py)

        code = _server.connect_and_run(sys.argv[1:])
        if code is not None:
            return code
        _server.start_in_background()  # for the next command; this one runs here
    from ._main import run

    # argv None: this process was started as the command (console script, python -m)
    return run(argv, fresh_process=argv is None and not _via_server)
