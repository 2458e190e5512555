"""Which app a command acts on, without loading the wrangler machinery unless needed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine import App

__all__ = ["resolve_app"]

DEFAULT_PROGRAM = "alchemy_run.py"


def resolve_app(args: argparse.Namespace) -> App:
    """The app the CLI acts on: ``--program``; else ``./alchemy_run.py``; else, in a
    wrangler project (``wrangler.toml``/``wrangler.jsonc``), the app its configuration
    describes.

    Example::

        app = resolve_app(argparse.Namespace(program="alchemy_run.py"))
    """
    from ..engine import load_program

    program = Path(args.program)
    if args.program == DEFAULT_PROGRAM and not program.exists():
        from ._config import find_wrangler
        from ._program import write_program_stub

        found = find_wrangler(program.parent)
        if found is not None:
            return load_program(write_program_stub(found))
    return load_program(program)
