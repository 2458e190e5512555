"""``alchemy-nb d1``: a local D1 database by its name, as ``wrangler d1 ... --local`` does.

    alchemy-nb d1 execute NAME --local --command "SELECT * FROM users"
    alchemy-nb d1 execute NAME --local --file seed.sql
    alchemy-nb d1 migrations apply NAME --local

``NAME`` is the ``database_name`` of a ``[[d1_databases]]`` entry of the wrangler
configuration (its ``binding`` works too); in a program, a D1Database's id or physical
name. The database is the stage's local SQLite file, the one ``alchemy-nb dev`` serves.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cloudflare._sql import split_statements
from ..errors import ConfigError

if TYPE_CHECKING:
    import sqlite3

__all__ = ["add_commands", "run_command"]


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``d1 execute`` and ``d1 migrations apply`` to the parser."""
    d1 = sub.add_parser("d1", help="query and migrate a local D1 database by its name")
    d1_sub = d1.add_subparsers(dest="d1_command", metavar="COMMAND", required=True)
    ex = d1_sub.add_parser(
        "execute", parents=[common], help="run SQL (--command or --file) on the database"
    )
    ex.add_argument("database", metavar="NAME", help="its database_name (or binding)")
    what = ex.add_mutually_exclusive_group(required=True)
    what.add_argument("--command", dest="sql", metavar="SQL", help="the SQL to run")
    what.add_argument("--file", metavar="FILE", help="a .sql file to run")
    _local_flags(ex)
    mig = d1_sub.add_parser("migrations", help="the database's migrations")
    mig_sub = mig.add_subparsers(dest="migrations_command", metavar="COMMAND", required=True)
    ap = mig_sub.add_parser(
        "apply", parents=[common], help="apply the pending migrations, in order"
    )
    ap.add_argument("database", metavar="NAME", help="its database_name (or binding)")
    _local_flags(ap)


def _local_flags(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--local", action="store_true", help="the local database (the default, as in dev)"
    )
    where.add_argument(
        "--remote", action="store_true", help="the database on Cloudflare (not supported)"
    )


@dataclass(frozen=True)
class _Database:
    name: str
    path: Path
    migrations: Path | None
    table: str


def run_command(app: Any, stage: str, args: argparse.Namespace, out: Any) -> int:
    """Run ``d1 execute`` or ``d1 migrations apply``."""
    if args.remote:
        raise ConfigError(
            "--remote is not supported: alchemy-nb d1 works on the local databases",
            fix="drop --remote (deploy to Cloudflare to change a remote database)",
        )
    db = _find(app, stage, args.database)
    if args.d1_command == "execute":
        return _execute(db, args, out)
    return _apply(db, out)


def _find(app: Any, stage: str, name: str) -> _Database:
    from ..wrangler._config import find_wrangler, load_wrangler
    from ..wrangler._program import declarations

    folder = app.root / ".alchemy" / app.name / stage / "local" / "d1"
    source = find_wrangler(app.root)
    known: list[str] = []
    if source is not None:
        config = load_wrangler(source, warn=False)
        entries = {d1.binding: d1 for d1 in config.for_stage(stage).d1_databases}
        for decl in declarations(config, stage, with_vars=False, base=app.root):
            if decl.kind != "D1Database":
                continue
            binding = next(
                (b for b, d in entries.items() if d.database_name == decl.kwargs.get("name")),
                None,
            )
            names = {decl.kwargs.get("name"), binding, decl.id}
            known.append(str(decl.kwargs.get("name") or binding))
            if name in names:
                migrations = decl.kwargs.get("migrations_dir")
                return _Database(
                    name,
                    folder / f"{decl.id}.sqlite",
                    app.root / migrations if migrations else None,
                    decl.kwargs.get("migrations_table") or "d1_migrations",
                )
    else:
        for path in sorted(folder.glob("*.sqlite")) if folder.exists() else []:
            known.append(path.stem)
            if name in (path.stem, f"{app.name}-{path.stem}-{stage}"):
                return _Database(name, path, None, "d1_migrations")
    raise ConfigError(
        f"no D1 database named {name!r} in stage {stage!r}",
        where=str(source or app.root),
        fix=f"use one of: {', '.join(known)}"
        if known
        else "declare it ([[d1_databases]] with database_name) and deploy",
    )


def _connect(db: _Database) -> sqlite3.Connection:
    import sqlite3  # only the d1 commands need it

    db.path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db.path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _execute(db: _Database, args: argparse.Namespace, out: Any) -> int:
    import sqlite3

    if args.file:
        try:
            sql = Path(args.file).read_text()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {args.file}: {exc.strerror}", where=args.file, fix="check the path"
            ) from None
    else:
        sql = args.sql
    results: list[dict[str, Any]] = []
    number = 0
    with closing(_connect(db)) as conn:
        conn.execute("BEGIN")
        try:
            for statement in split_statements(sql):
                number += 1
                start = time.perf_counter()
                cursor = conn.execute(statement)
                names = [d[0] for d in cursor.description or ()]
                rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
                results.append(
                    {
                        "results": rows,
                        "success": True,
                        "meta": {
                            "duration": (time.perf_counter() - start) * 1000,
                            "changes": max(cursor.rowcount, 0),
                            "last_row_id": cursor.lastrowid or 0,
                            "rows_read": len(rows),
                        },
                    }
                )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise ConfigError(
                f"D1 {db.name}: statement {number} failed: {exc}; nothing was changed",
                where=args.file or "--command",
                fix="fix the SQL and run again",
            ) from None
    if out.json:
        out.emit_list(results)
        return 0
    for result in results:
        rows = result["results"]
        if rows:
            print(json.dumps(rows, indent=2, default=_bytes))
    out.log(f"executed {len(results)} statement(s) on {db.name} ({db.path})")
    return 0


def _bytes(value: Any) -> Any:
    return list(value) if isinstance(value, bytes) else str(value)


def _apply(db: _Database, out: Any) -> int:
    if db.migrations is None or not db.migrations.is_dir():
        raise ConfigError(
            f"D1 {db.name} has no migrations folder"
            + (f" ({db.migrations})" if db.migrations else ""),
            where=str(db.migrations or db.path),
            fix="create migrations/ with numbered .sql files, or set migrations_dir",
        )

    def order(path: Path) -> tuple[int, str]:
        digits = "".join(c for c in path.name.split("_")[0] if c.isdigit())
        return (int(digits) if digits else 1 << 62, path.name)

    files = sorted(db.migrations.glob("*.sql"), key=order)
    from ..cloudflare._d1 import run_migrations

    def failed(path: Path, exc: sqlite3.Error, stays_at: str) -> ConfigError:
        return ConfigError(
            f"migration {path.name} of D1 {db.name} failed: {exc}; the database stays "
            f"at {stays_at}",
            where=str(path),
            fix="fix the migration file and run again",
        )

    with closing(_connect(db)) as conn:
        applied = run_migrations(
            conn,
            files,
            db.table,
            failed,
            on_applied=lambda name: out.log(f"applied {name}"),
        )
    if out.json:
        out.emit({"ok": True, "database": db.name, "applied": applied})
    elif not applied:
        out.log(f"no migrations to apply on {db.name}")
    return 0
