"""What every Cloudflare resource kind shares: where it runs and where local data lives."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from ..engine import ResourceContext
from ..errors import ConfigError

__all__ = ["local_dir", "local_id", "on_cloudflare", "remove_sqlite", "require_local"]

_NAMESPACE = uuid.UUID("6b7e3f0e-9a51-4c1e-9d0a-2f3c7d9a1e55")


def on_cloudflare(ctx: ResourceContext) -> bool:
    """Whether the stage deploys to the real account (``target = "cloudflare"``)."""
    return ctx.target == "cloudflare"


def require_local(ctx: ResourceContext) -> None:
    """The local target, or a clear error for a target this kind cannot use."""
    if ctx.target != "local":
        raise ConfigError(
            f"target {ctx.target!r} is not available for {ctx.kind} yet",
            where=f"{ctx.fqn} ({ctx.kind}), phase {ctx.phase}",
            fix="deploy this stage to the local target (the default), target='local'",
        )


def local_dir(ctx: ResourceContext, *parts: str) -> Path:
    """The stage's local data folder (``.alchemy/<app>/<stage>/local``), or a path in it."""
    return (ctx.data_root or ctx.root).joinpath(".alchemy", ctx.app, ctx.stage, "local", *parts)


def local_id(ctx: ResourceContext, rid: str | None = None) -> str:
    """A stable id for a local resource, shaped like Cloudflare's (32 hex digits)."""
    return uuid.uuid5(_NAMESPACE, f"{ctx.app}/{ctx.stage}/{rid or ctx.id}").hex


def physical_name(ctx: ResourceContext, explicit: Any) -> str:
    """The name a user gave, else ``{app}-{id}-{stage}``."""
    return str(explicit) if explicit else ctx.physical_name


def remove_sqlite(path: Path) -> None:
    """Delete a SQLite database with its WAL and shared-memory files (gone already: fine)."""
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
