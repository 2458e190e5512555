"""``cloudflare::D1Database``: a SQL database with numbered migrations."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path

from ..engine import Input, Outputs, Props, Provider, Resource, ResourceContext
from ..errors import ProviderError
from ._common import local_dir, local_id, on_cloudflare, physical_name, remove_sqlite, require_local
from ._sql import split_statements

__all__ = [
    "D1Database",
    "D1DatabaseOutputs",
    "D1DatabaseProps",
    "pending_migrations",
    "run_migrations",
]

MIGRATIONS_TABLE = "d1_migrations"  # the table and columns wrangler uses


class D1DatabaseProps(Props):
    """Props of :class:`D1Database`."""

    name: Input[str] | None = None
    """The database's name (default ``{app}-{id}-{stage}``)."""
    migrations_dir: str | None = None
    """A folder of numbered ``.sql`` files (``0001_init.sql`` ...), applied in order, once."""
    migrations_table: str = MIGRATIONS_TABLE


class D1DatabaseOutputs(Outputs):
    """Outputs of :class:`D1Database`."""

    database_id: str
    name: str
    migrations: list[str] = []


def migration_files(ctx: ResourceContext, props: D1DatabaseProps) -> list[Path]:
    """The migration files in order of their number (then name)."""
    if not props.migrations_dir:
        return []
    folder = ctx.resolve_path(props.migrations_dir)
    if not folder.is_dir():
        raise ProviderError(
            f"migrations_dir {props.migrations_dir!r} is not a folder",
            where=f"{ctx.fqn} ({ctx.kind}), phase {ctx.phase}",
            fix="create it, or fix the path (relative to the app's folder)",
        )

    def order(path: Path) -> tuple[int, str]:
        match = re.match(r"(\d+)", path.name)
        return (int(match.group(1)) if match else 1 << 62, path.name)

    return sorted(folder.glob("*.sql"), key=order)


def d1_path(ctx: ResourceContext, rid: str | None = None) -> Path:
    """The SQLite file of a database on the local target."""
    return local_dir(ctx, "d1", f"{rid or ctx.id}.sqlite")


def pending_migrations(db: Path, files: list[Path], table: str = MIGRATIONS_TABLE) -> list[Path]:
    """The files not yet recorded as applied in ``db``."""
    with closing(sqlite3.connect(db)) as conn:
        _ensure_table(conn, table)
        done = {row[0] for row in conn.execute(f'SELECT name FROM "{table}"')}
    return [f for f in files if f.name not in done]


def _ensure_table(conn: sqlite3.Connection, table: str) -> None:
    conn.execute(
        f'CREATE TABLE IF NOT EXISTS "{table}" (id INTEGER PRIMARY KEY AUTOINCREMENT, '
        "name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)"
    )


def apply_migrations(ctx: ResourceContext, db: Path, files: list[Path], table: str) -> list[str]:
    """Apply pending migrations, each in its own transaction with its tracking row.

    A failing migration is rolled back whole, the database stays at the previous one, and
    the error names the file and the statement's message.
    """

    def failed(path: Path, exc: sqlite3.Error, stays_at: str) -> ProviderError:
        return ProviderError(
            f"migration {path.name} failed: {exc}; the database stays at {stays_at}",
            where=f"{ctx.fqn} ({ctx.kind}), {path}",
            fix="fix the migration file and deploy again",
        )

    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        return run_migrations(conn, files, table, failed)


def run_migrations(
    conn: sqlite3.Connection,
    files: Iterable[Path],
    table: str,
    failed: Callable[[Path, sqlite3.Error, str], Exception],
    *,
    on_applied: Callable[[str], None] | None = None,
) -> list[str]:
    """Apply on ``conn`` (in autocommit mode) the files not yet recorded in ``table``
    (wrangler's tracking table), each with its tracking row in one transaction; returns
    the names applied now, in order.

    Each file is cut into statements by :func:`split_statements`. A failing file is
    rolled back whole and ``failed(path, error, stays_at)`` is raised, ``stays_at`` naming
    the migration the database stays at. ``on_applied`` hears of each file applied.
    """
    _ensure_table(conn, table)
    done = {row[0] for row in conn.execute(f'SELECT name FROM "{table}"')}
    applied: list[str] = []
    for path in files:
        if path.name in done:
            continue
        sql = path.read_text()
        conn.execute("BEGIN")
        try:
            for statement in split_statements(sql):
                conn.execute(statement)
            conn.execute(f'INSERT INTO "{table}" (name) VALUES (?)', (path.name,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise failed(path, exc, applied[-1] if applied else "its previous migration") from None
        applied.append(path.name)
        if on_applied is not None:
            on_applied(path.name)
    return applied


class D1DatabaseProvider(Provider[D1DatabaseProps, D1DatabaseOutputs]):
    """On the local target, a SQLite file; migrations run on create and on update."""

    def fingerprint(self, ctx: ResourceContext, props: D1DatabaseProps) -> str | None:
        files = migration_files(ctx, props)
        if not files:
            return None
        h = hashlib.sha256()
        for path in files:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return "migrations:" + h.hexdigest()

    def artifacts(self, ctx: ResourceContext, props: D1DatabaseProps) -> list[Path]:
        return migration_files(ctx, props)

    async def create(self, ctx: ResourceContext, props: D1DatabaseProps) -> D1DatabaseOutputs:
        if on_cloudflare(ctx):
            return await self._remote(ctx, props, None)
        require_local(ctx)
        db = d1_path(ctx)
        db.parent.mkdir(parents=True, exist_ok=True)
        files = migration_files(ctx, props)
        apply_migrations(ctx, db, files, props.migrations_table)
        with closing(sqlite3.connect(db)) as conn:
            _ensure_table(conn, props.migrations_table)
            applied = [
                r[0]
                for r in conn.execute(f'SELECT name FROM "{props.migrations_table}" ORDER BY id')
            ]
        return D1DatabaseOutputs(
            database_id=local_id(ctx), name=physical_name(ctx, props.name), migrations=applied
        )

    async def update(
        self,
        ctx: ResourceContext,
        old: D1DatabaseProps,
        props: D1DatabaseProps,
        outputs: D1DatabaseOutputs | None,
    ) -> D1DatabaseOutputs:
        if on_cloudflare(ctx):
            return await self._remote(ctx, props, outputs)
        return await self.create(ctx, props)  # migrations are forward-only; data is kept

    async def _remote(
        self, ctx: ResourceContext, props: D1DatabaseProps, outputs: D1DatabaseOutputs | None
    ) -> D1DatabaseOutputs:
        from .api._resources import d1_create, d1_delete, d1_migrate

        files = migration_files(ctx, props)
        name = physical_name(ctx, props.name)
        if outputs is not None and outputs.name != name:
            raise ProviderError(
                f"D1 databases cannot be renamed ({outputs.name!r} -> {name!r})",
                where=f"{ctx.fqn} ({ctx.kind}), phase {ctx.phase}",
                fix="keep the name, or give the database a new resource id (a new database)",
            )
        created = outputs is None
        if outputs is None:
            db = await d1_create(ctx, name)
        else:
            db = outputs.model_dump()
        if not files and not (outputs is not None and outputs.migrations):
            return D1DatabaseOutputs(database_id=db["database_id"], name=db["name"])
        try:
            applied = await d1_migrate(ctx, db["database_id"], files, props.migrations_table)
        except BaseException:
            if created:  # nothing left half-created
                await d1_delete(ctx, db["database_id"])
            raise
        return D1DatabaseOutputs(database_id=db["database_id"], name=db["name"], migrations=applied)

    async def delete(
        self, ctx: ResourceContext, props: D1DatabaseProps, outputs: D1DatabaseOutputs | None
    ) -> None:
        if on_cloudflare(ctx):
            from .api._resources import d1_delete

            if outputs is not None:
                await d1_delete(ctx, outputs.database_id)
            return
        db = d1_path(ctx)
        remove_sqlite(db)

    async def read(
        self, ctx: ResourceContext, props: D1DatabaseProps, outputs: D1DatabaseOutputs
    ) -> D1DatabaseOutputs | None:
        if not on_cloudflare(ctx):
            return outputs
        from .api._resources import d1_read

        live = await d1_read(ctx, outputs.database_id)
        return None if live is None else D1DatabaseOutputs(**live, migrations=outputs.migrations)


class D1Database(Resource[D1DatabaseProps, D1DatabaseOutputs]):
    """A D1 database. Bind it to a Worker: ``bindings={"DB": db}``.

    Example::

        db = D1Database("db", migrations_dir="migrations")
    """

    kind = "cloudflare::D1Database"
    props_model = D1DatabaseProps
    outputs_model = D1DatabaseOutputs
    provider = D1DatabaseProvider
