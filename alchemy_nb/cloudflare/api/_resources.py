"""Per-resource calls of the Cloudflare target: KV, D1, R2, Queues, Workflows.

Each function reconciles (observe, ensure, return) and names the resource in its errors.
A create that meets an existing resource of the same name adopts it only when adoption
was asked for (``alchemy-nb deploy --adopt``, or ``ALCHEMY_NB_ADOPT=1``); otherwise it
fails and says how to adopt. A delete of something already gone succeeds.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, ProviderError
from ._client import CloudflareClient, CloudflareError, client_for

if TYPE_CHECKING:
    from ...engine import ResourceContext

__all__ = [
    "adopting",
    "d1_create",
    "d1_delete",
    "d1_migrate",
    "d1_read",
    "kv_create",
    "kv_delete",
    "kv_read",
    "kv_rename",
    "queue_consumers_remove",
    "queue_consumers_sync",
    "queue_create",
    "queue_delete",
    "queue_read",
    "r2_create",
    "r2_delete",
    "r2_read",
    "where",
    "workflow_delete",
    "workflow_read",
    "workflow_register",
]

_GONE = frozenset({404})


def adopting() -> bool:
    """Whether creates may take over existing resources of the same name."""
    return os.environ.get("ALCHEMY_NB_ADOPT", "").lower() in {"1", "true", "yes"}


def where(ctx: ResourceContext) -> str:
    """The resource's full name, kind, target and phase, for error messages."""
    return f"{ctx.fqn} ({ctx.kind}) on the cloudflare target, phase {ctx.phase}"


def may_adopt(ctx: ResourceContext, exc: CloudflareError) -> bool:
    """Adopt on a conflict when asked to, when our own earlier attempt of the same create
    got no answer, or when this create finishes one a killed run started (either most
    likely created the resource)."""
    return adopting() or exc.retried or ctx.resuming


async def _delete(ctx: ResourceContext, path: str) -> None:
    """DELETE ``path`` under the account (gone already: fine)."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))
        await client.call("DELETE", f"{base}/{path}", where=where(ctx), ok_statuses=_GONE)


async def _read(ctx: ResourceContext, path: str) -> Any:
    """GET ``path`` under the account: its result, or None when it is gone."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))
        return await client.call("GET", f"{base}/{path}", where=where(ctx), ok_statuses=_GONE)


async def _create_or_adopt(
    ctx: ResourceContext,
    create: Callable[[], Awaitable[Any]],
    *,
    taken: Callable[[CloudflareError], bool],
    what: str,
    find: Callable[[], Awaitable[Any]],
) -> Any:
    """``create()``'s result; when Cloudflare refuses it because the name is ``taken``,
    the existing resource that ``find()`` returns, if adopting is allowed (else a
    :func:`conflict` naming ``what``). Nothing found: the refusal stands."""
    try:
        return await create()
    except CloudflareError as exc:
        if not taken(exc):
            raise
        if not may_adopt(ctx, exc):
            raise conflict(ctx, what, exc) from None
        found = await find()
        if found is None:
            raise
        return found


def conflict(ctx: ResourceContext, what: str, exc: CloudflareError | None = None) -> ConfigError:
    """A name conflict, with both ways out."""
    code = f" (Cloudflare error {exc.code}: {exc.message})" if exc is not None else ""
    return ConfigError(
        f"{what} already exists in the Cloudflare account{code}",
        where=where(ctx),
        fix="adopt it (alchemy-nb deploy --adopt, or ALCHEMY_NB_ADOPT=1), or give the "
        "resource another name",
    )


# ---------------------------------------------------------------------- KV
async def kv_create(ctx: ResourceContext, title: str) -> dict[str, Any]:
    """Create the namespace ``title`` (or adopt it); returns ``{namespace_id, title}``."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))
        ns = await _create_or_adopt(
            ctx,
            lambda: client.call(
                "POST", f"{base}/storage/kv/namespaces", json={"title": title}, where=where(ctx)
            ),
            taken=lambda exc: exc.code == 10014,
            what=f"a KV namespace titled {title!r}",
            find=lambda: _kv_find(client, base, title, ctx),
        )
        return {"namespace_id": ns["id"], "title": ns["title"]}


async def _kv_find(
    client: CloudflareClient, base: str, title: str, ctx: ResourceContext
) -> dict[str, Any] | None:
    for ns in await client.paginate(f"{base}/storage/kv/namespaces", where=where(ctx)):
        if ns.get("title") == title:
            return ns
    return None


async def kv_rename(ctx: ResourceContext, namespace_id: str, title: str) -> dict[str, Any]:
    """Rename a namespace in place (its data stays)."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))
        try:
            await client.call(
                "PUT",
                f"{base}/storage/kv/namespaces/{namespace_id}",
                json={"title": title},
                where=where(ctx),
            )
        except CloudflareError as exc:
            if exc.code == 10014:
                raise conflict(ctx, f"another KV namespace titled {title!r}", exc) from None
            raise
        return {"namespace_id": namespace_id, "title": title}


async def kv_delete(ctx: ResourceContext, namespace_id: str) -> None:
    """Delete a namespace (gone already: fine)."""
    await _delete(ctx, f"storage/kv/namespaces/{namespace_id}")


async def kv_read(ctx: ResourceContext, namespace_id: str) -> dict[str, Any] | None:
    """The live namespace, or None."""
    ns = await _read(ctx, f"storage/kv/namespaces/{namespace_id}")
    return None if ns is None else {"namespace_id": ns["id"], "title": ns["title"]}


# ---------------------------------------------------------------------- D1
async def d1_create(ctx: ResourceContext, name: str) -> dict[str, Any]:
    """Create the database ``name`` (or adopt it); returns ``{database_id, name}``."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))

        async def find() -> dict[str, Any] | None:
            found = await client.paginate(
                f"{base}/d1/database", params={"name": name}, per_page=1000, where=where(ctx)
            )
            return next((d for d in found if d.get("name") == name), None)

        db = await _create_or_adopt(
            ctx,
            lambda: client.call(
                "POST", f"{base}/d1/database", json={"name": name}, where=where(ctx)
            ),
            taken=lambda exc: "already exists" in exc.message.lower(),
            what=f"a D1 database named {name!r}",
            find=find,
        )
        return {"database_id": db["uuid"], "name": db["name"]}


async def d1_migrate(
    ctx: ResourceContext, database_id: str, files: list[Path], table: str
) -> list[str]:
    """Apply the files not yet recorded in ``table`` (wrangler's tracking table), each with
    its tracking row in one batch; returns every applied migration's name, in order."""
    async with client_for() as client:
        path = f"{await client.account_path(where(ctx))}/d1/database/{database_id}/query"

        async def query(sql: str) -> list[dict[str, Any]]:
            result = await client.call("POST", path, json={"sql": sql}, where=where(ctx))
            return list(result or [])

        await query(
            f'CREATE TABLE IF NOT EXISTS "{table}" (id INTEGER PRIMARY KEY AUTOINCREMENT, '
            "name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)"
        )
        rows = (await query(f'SELECT name FROM "{table}" ORDER BY id'))[0].get("results") or []
        applied = [str(r["name"]) for r in rows]
        for file in files:
            if file.name in applied:
                continue
            sql = file.read_text().rstrip().rstrip(";")
            literal = file.name.replace("'", "''")
            try:
                await query(f"{sql};\nINSERT INTO \"{table}\" (name) VALUES ('{literal}');")
            except CloudflareError as exc:
                raise ProviderError(
                    f"migration {file.name} failed (Cloudflare error {exc.code}: "
                    f"{exc.message}); the database stays at "
                    f"{applied[-1] if applied else 'its previous migration'}",
                    where=f"{where(ctx)}, {file}",
                    fix="fix the migration file and deploy again",
                ) from None
            applied.append(file.name)
        return applied


async def d1_delete(ctx: ResourceContext, database_id: str) -> None:
    """Delete a database (gone already: fine)."""
    await _delete(ctx, f"d1/database/{database_id}")


async def d1_read(ctx: ResourceContext, database_id: str) -> dict[str, Any] | None:
    """The live database, or None."""
    db = await _read(ctx, f"d1/database/{database_id}")
    return None if db is None else {"database_id": db["uuid"], "name": db["name"]}


# ---------------------------------------------------------------------- R2
async def r2_create(ctx: ResourceContext, name: str) -> dict[str, Any]:
    """Create the bucket ``name`` (or adopt it)."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))

        async def find() -> dict[str, Any]:  # a bucket gone meanwhile: its 404 is raised
            await client.call("GET", f"{base}/r2/buckets/{name}", where=where(ctx))
            return {"name": name}

        await _create_or_adopt(
            ctx,
            lambda: client.call(
                "POST", f"{base}/r2/buckets", json={"name": name}, where=where(ctx)
            ),
            taken=lambda exc: exc.status == 409,
            what=f"an R2 bucket named {name!r}",
            find=find,
        )
        return {"name": name}


async def r2_delete(ctx: ResourceContext, name: str) -> None:
    """Delete a bucket (gone already: fine; Cloudflare refuses a non-empty one)."""
    await _delete(ctx, f"r2/buckets/{name}")


async def r2_read(ctx: ResourceContext, name: str) -> dict[str, Any] | None:
    """The live bucket, or None."""
    bucket = await _read(ctx, f"r2/buckets/{name}")
    return None if bucket is None else {"name": bucket["name"]}


# ---------------------------------------------------------------------- Queues
_QUEUE_TAKEN = 11009


async def queue_create(ctx: ResourceContext, name: str) -> dict[str, Any]:
    """Create the queue ``name`` (or adopt it); returns ``{queue_id, name}``."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))
        try:
            queue = await client.call(
                "POST", f"{base}/queues", json={"queue_name": name}, where=where(ctx)
            )
        except CloudflareError as exc:
            # Cloudflare's published error codes name none for a taken queue name (the
            # fake answers 11009), so a refused create is settled by looking, never by
            # the message: a queue of that name exists -> the name was taken; else the
            # refusal stands as it is.
            refused = 400 <= exc.status < 500 and exc.status not in (401, 403)
            if exc.code != _QUEUE_TAKEN and not refused:
                raise
            found = await client.paginate(f"{base}/queues", where=where(ctx))
            queue = next((q for q in found if q.get("queue_name") == name), None)
            if queue is None:
                raise
            if not may_adopt(ctx, exc):
                raise conflict(ctx, f"a queue named {name!r}", exc) from None
        return {"queue_id": queue["queue_id"], "name": queue["queue_name"]}


async def queue_delete(ctx: ResourceContext, queue_id: str) -> None:
    """Delete a queue (gone already: fine)."""
    await _delete(ctx, f"queues/{queue_id}")


async def queue_read(ctx: ResourceContext, queue_id: str) -> dict[str, Any] | None:
    """The live queue, or None."""
    queue = await _read(ctx, f"queues/{queue_id}")
    return None if queue is None else {"queue_id": queue_id, "name": queue["queue_name"]}


def _consumer_script(consumer: dict[str, Any]) -> str:
    """The Worker a consumer delivers to (``script_name``, or ``script``/``service`` as
    other API versions name it)."""
    for key in ("script_name", "script", "service"):
        value = consumer.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


async def queue_consumers_sync(
    ctx: ResourceContext,
    client: CloudflareClient,
    script: str,
    queues: dict[str, str],
    previous: dict[str, str],
) -> dict[str, str]:
    """Make ``script`` the consumer of exactly ``queues`` (queue id -> name) among the
    queues it consumed (``previous``: queue id -> consumer id); returns queue id ->
    consumer id. A consumer already registered for the script is kept."""
    base = await client.account_path(where(ctx))
    for queue_id in sorted(set(previous) - set(queues)):
        await _consumer_delete(ctx, client, base, queue_id, previous[queue_id])
    found: dict[str, str] = {}
    for queue_id, name in queues.items():
        path = f"{base}/queues/{queue_id}/consumers"
        try:
            existing = await client.paginate(path, where=where(ctx))
        except CloudflareError as exc:
            if exc.status == 404:
                raise ConfigError(
                    f"the queue {name!r} this worker consumes does not exist in the "
                    f"Cloudflare account (Cloudflare error {exc.code}: {exc.message})",
                    where=where(ctx),
                    fix="deploy again (the queue is re-created), or remove it from queue_consumers",
                ) from None
            raise
        mine = next((c for c in existing if _consumer_script(c) == script), None)
        if mine is None:
            mine = await client.call(
                "POST", path, json={"script_name": script, "type": "worker"}, where=where(ctx)
            )
        found[queue_id] = str((mine or {}).get("consumer_id", ""))
    return found


async def _consumer_delete(
    ctx: ResourceContext, client: CloudflareClient, base: str, queue_id: str, consumer_id: str
) -> None:
    if not consumer_id:
        return
    await client.call(
        "DELETE",
        f"{base}/queues/{queue_id}/consumers/{consumer_id}",
        where=where(ctx),
        ok_statuses=_GONE,
    )


async def queue_consumers_remove(ctx: ResourceContext, consumers: dict[str, str]) -> None:
    """Remove a script's consumers (queue id -> consumer id); gone already: fine."""
    if not consumers:
        return
    async with client_for() as client:
        base = await client.account_path(where(ctx))
        for queue_id, consumer_id in sorted(consumers.items()):
            await _consumer_delete(ctx, client, base, queue_id, consumer_id)


# ---------------------------------------------------------------------- Workflows
async def workflow_register(
    ctx: ResourceContext, client: CloudflareClient, name: str, class_name: str, script: str
) -> dict[str, Any]:
    """Create or update the Workflow ``name`` for a deployed script's class."""
    base = await client.account_path(where(ctx))
    wf = await client.call(
        "PUT",
        f"{base}/workflows/{name}",
        json={"class_name": class_name, "script_name": script},
        where=where(ctx),
    )
    return dict(wf or {})


async def workflow_delete(ctx: ResourceContext, name: str) -> None:
    """Delete a Workflow (gone already: fine); its Worker stays."""
    await _delete(ctx, f"workflows/{name}")


async def workflow_read(ctx: ResourceContext, name: str) -> dict[str, Any] | None:
    """The live Workflow, or None."""
    wf = await _read(ctx, f"workflows/{name}")
    if wf is None:
        return None
    return {
        "workflow_id": wf.get("id", ""),
        "workflow_name": wf["name"],
        "class_name": wf.get("class_name", ""),
        "script_name": wf.get("script_name"),
    }
