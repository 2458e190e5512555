"""``alchemy-nb state``: migrate an app's state between stores, export it as JSON.

Thin over :func:`alchemy_nb.state._migrate.migrate` and ``export_state``; the ledger's
chain is checked with :class:`alchemy_nb.promotion.Ledger`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["STATE_HELP", "add_commands", "run_command"]

STATE_HELP = (
    "state store URL: file:PATH, sqlite:///PATH or postgresql://USER@HOST/DB "
    "(default: $ALCHEMY_STATE_URL, else .alchemy/ beside the program)"
)

EPILOG = """\
examples:
  alchemy-nb state export -o state.json                       every stage, readable JSON
  alchemy-nb state migrate --to sqlite:///state.db            files -> SQLite, all stages
  alchemy-nb state migrate --stage prod \\
      --to postgresql://deploy@db.internal/alchemy            one stage -> PostgreSQL
  ALCHEMY_STATE_URL=postgresql://deploy@db.internal/alchemy alchemy-nb deploy
"""


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``state migrate`` and ``state export`` to the top-level parser."""
    st = sub.add_parser(
        "state",
        help="migrate state between stores (files, SQLite, PostgreSQL), export it as JSON",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ssub = st.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    mg = ssub.add_parser(
        "migrate",
        parents=[common],
        help="copy the app's state (one --stage or all) from --state to --to; the ledger "
        "chain is verified on both sides",
        description="Copy the app's resources, releases, stage histories, gates and ledger "
        "from the --state store to the --to store: every stage with state, or only --stage. "
        "Nothing is written unless the source's ledger verifies and the target holds no "
        "different state (--force overwrites it).",
    )
    mg.add_argument("--to", required=True, metavar="URL", help="the store to copy into")
    mg.add_argument(
        "--force", action="store_true", help="overwrite different state the target holds"
    )
    ex = ssub.add_parser(
        "export",
        parents=[common],
        help="the app's state (one --stage or all) as JSON",
        description="Write the app's state as one readable JSON document: every stage with "
        "state, or only --stage; secrets stay sealed.",
    )
    ex.add_argument("--output", "-o", metavar="FILE", help="write to FILE (default: stdout)")


def run_command(app: Any, args: argparse.Namespace, out: Any) -> int:
    """Run ``state migrate`` or ``state export`` for ``app``."""
    import asyncio

    from ..promotion import Ledger
    from ..state import StateStore, open_store
    from ..state._migrate import export_state, migrate

    async def verify(store: StateStore) -> tuple[bool, str]:
        result = await Ledger(store, app.name).verify()
        return result.ok, result.describe()

    if args.state_command == "migrate":
        target = open_store(args.to)
        try:
            report = asyncio.run(
                migrate(
                    app.state,
                    target,
                    app.name,
                    stage=args.stage,
                    force=args.force,
                    verify=verify,
                )
            )
        finally:
            target.close()
        out.log(report.describe())
        if out.json:
            out.emit({"ok": True, **report.to_json()})
        return 0
    doc = asyncio.run(export_state(app.state, app.name, stage=args.stage, verify=verify))
    text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    if args.output:
        path = Path(args.output)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ConfigError(
                f"cannot write the export: {exc.strerror}",
                where=str(path),
                fix="pick a writable path for --output",
            ) from None
        out.log(f"exported {len(doc['stages'])} stage(s) of {app.name} to {path}")
        if out.json:
            out.emit({"ok": True, "path": str(path), "stages": sorted(doc["stages"])})
    else:
        sys.stdout.write(text)
    return 0
