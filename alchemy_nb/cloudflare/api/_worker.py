"""Worker scripts on the Cloudflare target: the multipart module upload with its bindings
metadata, Durable Object migrations derived from the classes bound, the workers.dev
subdomain, and Workflow registration.

Every deploy is a Worker version deployed to 100% of traffic: the first one (and any one
that carries a Durable Object migration, which only a script upload may apply) uploads the
script, which creates a version and its deployment; the others upload a version
(``POST .../versions``) and then deploy it (``POST .../deployments``). The outputs keep the
version ids with a digest of what each one holds, so a deploy of code and configuration
that an earlier version already holds (a rollback) deploys that version again instead of
uploading it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, ProviderError
from ._client import CloudflareClient, CloudflareError, client_for
from ._resources import (
    adopting,
    conflict,
    queue_consumers_sync,
    where,
    workflow_register,
)
from ._versions import deploy_split

if TYPE_CHECKING:
    from ...engine import ResourceContext

__all__ = [
    "MAX_BUNDLE_BYTES",
    "WorkerUpload",
    "do_namespace_read",
    "worker_delete",
    "worker_deploy",
    "worker_read",
]

MAX_BUNDLE_BYTES = 10 * 1024 * 1024
"""Cloudflare's largest Worker bundle (paid plan); bigger ones are refused before upload."""
_KEEP_VERSIONS = 10
_EXPECTED_TAG = re.compile(r"expected tag is '([^']*)'")
_MODULE_TYPES = {
    ".py": "text/x-python",
    ".txt": "text/plain",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".js": "application/javascript+module",
    ".mjs": "application/javascript+module",
}


class WorkerUpload:
    """What one upload sends: the script name, modules, bindings and settings."""

    def __init__(
        self,
        *,
        name: str,
        main_module: str,
        modules: list[tuple[str, Path]],
        bindings: list[dict[str, Any]],
        compatibility_date: str,
        compatibility_flags: list[str],
        do_classes: dict[str, bool],
        workflows: list[tuple[str, str]],
        workers_dev: bool,
        queue_consumers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.main_module = main_module
        self.modules = modules
        self.bindings = bindings
        self.compatibility_date = compatibility_date
        self.compatibility_flags = compatibility_flags
        self.do_classes = do_classes
        """Durable Object classes this script hosts -> SQLite-backed."""
        self.workflows = workflows
        """(workflow name, class name) of the Workflows this script hosts."""
        self.workers_dev = workers_dev
        self.queue_consumers = dict(queue_consumers or {})
        """Queue id -> name of each queue this script consumes."""


def _migration(
    previous_tag: str | None, previous: dict[str, bool], current: dict[str, bool]
) -> dict[str, Any] | None:
    """The Durable Object migration from the classes deployed to the classes bound now."""
    new = sorted(set(current) - set(previous))
    deleted = sorted(set(previous) - set(current))
    if not new and not deleted:
        return None
    number = int(previous_tag[1:]) if previous_tag and previous_tag[1:].isdigit() else 0
    migration: dict[str, Any] = {"new_tag": f"v{number + 1}"}
    if previous_tag:
        migration["old_tag"] = previous_tag
    sqlite = [c for c in new if current[c]]
    kv = [c for c in new if not current[c]]
    if sqlite:
        migration["new_sqlite_classes"] = sqlite
    if kv:
        migration["new_classes"] = kv
    if deleted:
        migration["deleted_classes"] = deleted
    return migration


def _parts(
    ctx: ResourceContext, upload: WorkerUpload, metadata: dict[str, Any]
) -> list[tuple[str, tuple[str, bytes, str]]]:
    parts: list[tuple[str, tuple[str, bytes, str]]] = [
        ("metadata", ("blob", json.dumps(metadata).encode(), "application/json"))
    ]
    size = 0
    for name, path in upload.modules:
        content = path.read_bytes()
        size += len(content)
        ctype = _MODULE_TYPES.get(path.suffix, "application/octet-stream")
        if path.name == "requirements.txt":
            ctype = "text/x-python-requirement"
        parts.append((name, (name, content, ctype)))
    if size > MAX_BUNDLE_BYTES:
        raise ConfigError(
            f"the worker bundle is {size / 1048576:.1f} MiB, more than Cloudflare's "
            f"{MAX_BUNDLE_BYTES // 1048576} MiB limit; nothing was uploaded",
            where=where(ctx),
            fix="move large files out of the worker's folder (into R2, say)",
        )
    return parts


def _digest(upload: WorkerUpload) -> str:
    """What a version holds (modules, bindings, settings), as one hash. A secret's value
    enters it only through a slow, salted key derivation, so the digest (kept in outputs)
    is no shortcut to guessing the secret."""
    digest = hashlib.sha256()
    bindings = []
    for binding in upload.bindings:
        if binding.get("type") == "secret_text":
            salt = f"alchemy-nb:{upload.name}:{binding.get('name', '')}".encode()
            sealed = hashlib.pbkdf2_hmac(
                "sha256", str(binding.get("text", "")).encode(), salt, 100_000
            )
            binding = {**binding, "text": sealed.hex()}
        bindings.append(binding)
    settings = {
        "main_module": upload.main_module,
        "compatibility_date": upload.compatibility_date,
        "compatibility_flags": upload.compatibility_flags,
        "bindings": bindings,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for name, path in upload.modules:
        digest.update(f"\0{name}\0{len(name)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


async def worker_deploy(
    ctx: ResourceContext, upload: WorkerUpload, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """Deploy a version of the script at 100% (uploading it unless an earlier version
    holds the same code and configuration), then set workers.dev, register Workflows and
    make the script the consumer of exactly the queues it lists.

    On a first deploy whose later steps fail, the script is deleted again, so nothing is
    left half-created."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))
        script_path = f"{base}/workers/scripts/{upload.name}"
        if previous is None:
            await _check_free(ctx, client, base, upload.name)
        prev_tag = (previous or {}).get("migration_tag")
        prev_classes = dict((previous or {}).get("do_classes") or {})
        digest = _digest(upload)
        known: dict[str, str] = dict((previous or {}).get("digests") or {})
        version_id, tag = None, prev_tag
        if previous is not None and _migration(prev_tag, prev_classes, upload.do_classes) is None:
            version_id = await _redeploy(ctx, client, script_path, upload.name, known, digest)
        if version_id is None:
            if previous is None or _migration(prev_tag, prev_classes, upload.do_classes):
                result = await _upload(ctx, client, script_path, upload, prev_tag, prev_classes)
                tag = result["migration_tag"]
                version_id = await _serving_version(ctx, client, script_path)
            else:
                version_id = await _upload_version(ctx, client, script_path, upload, digest)
                await deploy_split(
                    client, script_path, upload.name, {version_id: 100}, where=where(ctx)
                )
        try:
            subdomain = await _set_subdomain(ctx, client, script_path, upload, previous)
            for workflow_name, class_name in upload.workflows:
                await workflow_register(ctx, client, workflow_name, class_name, upload.name)
            consumers = await queue_consumers_sync(
                ctx,
                client,
                upload.name,
                upload.queue_consumers,
                dict((previous or {}).get("consumers") or {}),
            )
        except BaseException:
            if previous is None:
                await client.call(
                    "DELETE",
                    script_path,
                    params={"force": "true"},
                    where=where(ctx),
                    ok_statuses=frozenset({404}),
                )
            raise
        earlier = [v for v in (previous or {}).get("versions") or [] if v != version_id]
        versions = [*earlier, version_id][-_KEEP_VERSIONS:]
        known[version_id] = digest
        return {
            "name": upload.name,
            "url": f"https://{upload.name}.{subdomain}.workers.dev" if subdomain else "",
            "port": 0,
            "version": version_id,
            "versions": versions,
            "digests": {v: known[v] for v in versions if v in known},
            "migration_tag": tag,
            "do_classes": upload.do_classes,
            "workers_dev": upload.workers_dev,
            "consumers": consumers,
        }


async def _redeploy(
    ctx: ResourceContext,
    client: CloudflareClient,
    script_path: str,
    name: str,
    known: dict[str, str],
    digest: str,
) -> str | None:
    """Deploy the newest earlier version holding exactly this upload at 100%; None when
    there is none (or Cloudflare no longer has it)."""
    for version_id in reversed(list(known)):
        if known[version_id] != digest:
            continue
        try:
            await deploy_split(client, script_path, name, {version_id: 100}, where=where(ctx))
        except CloudflareError as exc:
            if exc.code == 10007 or exc.status == 404:
                continue  # gone from the account: upload it again
            raise
        return version_id
    return None


async def _serving_version(ctx: ResourceContext, client: CloudflareClient, script_path: str) -> str:
    """The version serving most of the script's traffic now."""
    result = await client.call("GET", f"{script_path}/deployments", where=where(ctx))
    deployments = (result or {}).get("deployments") or []
    split = (deployments[0].get("versions") or []) if deployments else []
    if not split:
        raise ProviderError(
            "Cloudflare shows no deployment of the script just uploaded",
            where=where(ctx),
            fix="deploy again; if it persists, check the Worker's deployments in the dashboard",
        )
    return str(max(split, key=lambda v: v["percentage"])["version_id"])


async def _upload_version(
    ctx: ResourceContext,
    client: CloudflareClient,
    script_path: str,
    upload: WorkerUpload,
    digest: str,
) -> str:
    """Upload a version (deployed to no traffic yet); its id."""
    metadata: dict[str, Any] = {
        "main_module": upload.main_module,
        "compatibility_date": upload.compatibility_date,
        "compatibility_flags": upload.compatibility_flags,
        "bindings": upload.bindings,
        "annotations": {
            "workers/message": f"alchemy-nb {ctx.stage}"[:50],
            "workers/tag": digest[:20],
        },
    }
    try:
        result = await client.call(
            "POST", f"{script_path}/versions", files=_parts(ctx, upload, metadata), where=where(ctx)
        )
    except CloudflareError as exc:
        raise _upload_error(ctx, exc) from None
    return str((result or {})["id"])


async def _check_free(ctx: ResourceContext, client: CloudflareClient, base: str, name: str) -> None:
    scripts = await client.call("GET", f"{base}/workers/scripts", where=where(ctx))
    if any(s.get("id") == name for s in scripts or []) and not (adopting() or ctx.resuming):
        raise conflict(ctx, f"a Worker script named {name!r}")


async def _upload(
    ctx: ResourceContext,
    client: CloudflareClient,
    script_path: str,
    upload: WorkerUpload,
    prev_tag: str | None,
    prev_classes: dict[str, bool],
) -> dict[str, Any]:
    migration = _migration(prev_tag, prev_classes, upload.do_classes)
    for _ in range(2):
        metadata: dict[str, Any] = {
            "main_module": upload.main_module,
            "compatibility_date": upload.compatibility_date,
            "compatibility_flags": upload.compatibility_flags,
            "bindings": upload.bindings,
        }
        if migration is not None:
            metadata["migrations"] = migration
        try:
            result = await client.call(
                "PUT", script_path, files=_parts(ctx, upload, metadata), where=where(ctx)
            )
        except CloudflareError as exc:
            found = _EXPECTED_TAG.search(exc.message) if exc.status == 412 else None
            if found is None or migration is None:
                raise _upload_error(ctx, exc) from None
            expected = found.group(1) or None
            if expected == migration["new_tag"]:
                migration = None  # applied by an earlier, interrupted deploy
            elif expected is None:
                migration.pop("old_tag", None)
            else:
                migration["old_tag"] = expected
            continue
        tag = migration["new_tag"] if migration is not None else prev_tag
        return {"etag": (result or {}).get("etag", ""), "migration_tag": tag}
    raise ProviderError(
        "the Durable Object migration tags did not converge",
        where=where(ctx),
        fix="compare the script's migration tag in the dashboard with the state",
    )


def _upload_error(ctx: ResourceContext, exc: CloudflareError) -> CloudflareError:
    fixes = {
        10021: "fix the worker's code or bindings named in the message and deploy again",
        10027: "make the bundle smaller (move assets to R2)",
        10006: "the upload was not understood; check the worker's entry and modules",
    }
    return CloudflareError(
        f"the Worker upload was refused (HTTP {exc.status}, Cloudflare error {exc.code}: "
        f"{exc.message})",
        status=exc.status,
        code=exc.code,
        message=exc.message,
        where=where(ctx),
        fix=fixes.get(exc.code, exc.fix or "see Cloudflare's message"),
    )


async def _set_subdomain(
    ctx: ResourceContext,
    client: CloudflareClient,
    script_path: str,
    upload: WorkerUpload,
    previous: dict[str, Any] | None,
) -> str | None:
    was = bool((previous or {}).get("workers_dev", False))
    if upload.workers_dev:
        for attempt in range(10):  # just after an upload the script can 404 for a moment
            try:
                await client.call(
                    "POST",
                    f"{script_path}/subdomain",
                    json={"enabled": True, "previews_enabled": False},
                    where=where(ctx),
                )
                break
            except CloudflareError as exc:
                if exc.status != 404 or attempt == 9:
                    raise
                await asyncio.sleep(0.5)
        return await client.workers_subdomain(where(ctx))
    if was:
        await client.call(
            "DELETE", f"{script_path}/subdomain", where=where(ctx), ok_statuses=frozenset({404})
        )
    return None


async def worker_delete(ctx: ResourceContext, name: str) -> None:
    """Delete the script, with its Durable Object namespaces (gone already: fine)."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))
        await client.call(
            "DELETE",
            f"{base}/workers/scripts/{name}",
            params={"force": "true"},
            where=where(ctx),
            ok_statuses=frozenset({404}),
        )


async def worker_read(
    ctx: ResourceContext, name: str, consumers: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """The version serving most of the live script's traffic, its workers.dev setting and
    which of ``consumers`` (queue id -> consumer id) still deliver to it, or None when
    the script is gone."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))
        scripts = await client.call("GET", f"{base}/workers/scripts", where=where(ctx))
        found = next((s for s in scripts or [] if s.get("id") == name), None)
        if found is None:
            return None
        script_path = f"{base}/workers/scripts/{name}"
        sub = await client.call("GET", f"{script_path}/subdomain", where=where(ctx))
        version = await _serving_version(ctx, client, script_path)
        live: dict[str, Any] = {"version": version, "workers_dev": bool((sub or {}).get("enabled"))}
        if consumers:
            live["consumers"] = await _live_consumers(ctx, client, base, consumers)
        return live


async def _live_consumers(
    ctx: ResourceContext, client: CloudflareClient, base: str, consumers: dict[str, str]
) -> dict[str, str]:
    found: dict[str, str] = {}
    for queue_id, consumer_id in sorted(consumers.items()):
        try:
            listed = await client.paginate(f"{base}/queues/{queue_id}/consumers", where=where(ctx))
        except CloudflareError as exc:
            if exc.status == 404:
                continue  # the queue is gone, and its consumer with it
            raise
        if any(c.get("consumer_id") == consumer_id for c in listed):
            found[queue_id] = consumer_id
    return found


async def do_namespace_read(
    ctx: ResourceContext, script: str, class_name: str
) -> dict[str, Any] | None:
    """The live namespace of ``class_name`` in ``script``, or None."""
    async with client_for() as client:
        base = await client.account_path(where(ctx))
        namespaces = await client.call(
            "GET", f"{base}/workers/durable_objects/namespaces", where=where(ctx)
        )
        for ns in namespaces or []:
            if ns.get("script") == script and ns.get("class") == class_name:
                return {"namespace_id": ns.get("id", ""), "class_name": class_name}
        return None
