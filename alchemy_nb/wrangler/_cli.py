"""``alchemy-nb import wrangler`` and ``alchemy-nb export wrangler``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["COMMANDS", "add_commands", "run_command"]

COMMANDS = ("import", "export")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``import`` and ``export`` to the ``alchemy-nb`` parser."""
    im = sub.add_parser(
        "import",
        parents=[common],
        help="write alchemy_run.py (and alchemy_nb.toml) from a wrangler configuration",
    )
    im.add_argument("source", choices=["wrangler"], help="what to import from")
    im.add_argument(
        "path", nargs="?", default=".", help="wrangler.toml/.jsonc or its folder (default: .)"
    )
    im.add_argument("--force", action="store_true", help="overwrite existing files")
    ex = sub.add_parser(
        "export", parents=[common], help="write the wrangler.jsonc that deploys a stage"
    )
    ex.add_argument("target", choices=["wrangler"], help="what to export to")
    ex.add_argument(
        "--out",
        "-o",
        default="wrangler.jsonc",
        metavar="FILE",
        help="default wrangler.jsonc; - for stdout",
    )
    ex.add_argument("--worker", metavar="ID", help="the Worker to export, if there are several")
    ex.add_argument("--force", action="store_true", help="overwrite an existing file")


def run_command(args: argparse.Namespace, out: Any) -> int:
    """Run ``import`` or ``export`` (``out`` is the CLI's output helper)."""
    import asyncio

    if args.command == "import":
        from ._import import import_wrangler

        written = import_wrangler(args.path, force=args.force)
        for path in written:
            out.log(f"wrote {path}")
        if out.json:
            out.emit({"ok": True, "written": [str(p) for p in written]})
        return 0
    from ..engine import default_stage
    from ._export import export_wrangler
    from ._resolve import resolve_app

    app = resolve_app(args)
    stage = args.stage or default_stage()
    to_stdout = args.out == "-"
    text = asyncio.run(
        export_wrangler(app, stage, worker=args.worker, out=None if to_stdout else args.out)
    )
    if to_stdout:
        sys.stdout.write(text)
        return 0
    target = Path(args.out)
    if target.exists() and not args.force:
        raise ConfigError(
            f"{target} already exists",
            where=str(target),
            fix="pass --out FILE, or --force to overwrite it",
        )
    target.write_text(text)
    out.log(f"wrote {target} (stage {stage})")
    if out.json:
        out.emit({"ok": True, "written": [str(target)]})
    return 0
