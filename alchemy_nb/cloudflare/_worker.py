"""``cloudflare::Worker``: a Python Worker with its bindings."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal, Union

from .._secret import Secret
from ..engine import Input, Outputs, Props, Provider, Ref, Resource, ResourceContext
from ..errors import ConfigError, ProviderError
from ._common import local_dir, on_cloudflare, physical_name, require_local

__all__ = ["Worker", "WorkerAssets", "WorkerOutputs", "WorkerProps", "WorkerService"]

Binding = Union[str, Secret, Resource[Any, Any], Ref]  # noqa: UP007
"""A binding's value: plain text, a secret, or a resource (KV, D1, R2, ...)."""

DEFAULT_COMPATIBILITY_DATE = "2025-09-01"
_SKIP_DIRS = {"__pycache__", ".alchemy", ".git", ".venv", "node_modules", ".pytest_cache"}


class WorkerAssets(Props):
    """Static assets a worker serves (wrangler's ``[assets]``), as Cloudflare serves them.

    Example::

        Worker("site", entry="src/entry.py",
               assets=WorkerAssets(directory="public", binding="ASSETS",
                                   run_worker_first=["/api/*"]))
    """

    directory: str
    """The folder of files, relative to the app's folder."""
    binding: str | None = None
    """``self.env.NAME`` for ``await self.env.ASSETS.fetch(request)`` (optional)."""
    run_worker_first: bool | list[str] = False
    """Run the worker before looking for a file: always, or for these routes
    (``"/api/*"``; ``"!/api/docs/*"`` excludes)."""
    html_handling: Literal[
        "auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none"
    ] = "auto-trailing-slash"
    """How ``/page``, ``/page/`` and ``/page.html`` map to HTML files (and redirect)."""
    not_found_handling: Literal["none", "404-page", "single-page-application"] = "none"
    """What a path without a file gets: the worker (``none``), the nearest ``404.html``,
    or ``/index.html`` for page navigations."""


class WorkerService(Props):
    """A service binding to a worker that is not part of this app, by its script name.

    Locally it reaches that worker while it runs on this machine (any ``alchemy-nb dev``
    or deploy); until then a call fails with an error naming the binding.

    Example::

        Worker("api", entry="src/entry.py",
               services={"AUTH": WorkerService(service="auth-worker")})
    """

    service: str
    """The other worker's script name (its wrangler ``name``)."""
    entrypoint: str | None = None
    """The class of the other worker that RPC calls reach (default: ``Default``)."""


class WorkerProps(Props):
    """Props of :class:`Worker`."""

    entry: str
    """The worker's Python module, relative to the app's folder (``src/worker.py``)."""
    name: Input[str] | None = None
    """The script's name (default ``{app}-{id}-{stage}``)."""
    bindings: dict[str, Binding] = {}
    """Name -> a resource (KV, D1, R2, Durable Object, Workflow, Queue, Worker), a string
    or a Secret; each becomes ``self.env.NAME`` in the worker."""
    vars: dict[str, Input[str]] = {}
    """Plain-text variables, ``self.env.NAME`` too."""
    compatibility_date: str = DEFAULT_COMPATIBILITY_DATE
    compatibility_flags: list[str] = ["python_workers"]
    crons: list[str] = []
    """Cron triggers; locally fired with ``GET /cdn-cgi/handler/scheduled?cron=...``."""
    queue_consumers: list[Resource[Any, Any]] = []
    """Queues whose messages this worker's ``queue`` handler receives."""
    port: int | None = None
    """A fixed local port (default: a free one, kept across redeploys)."""
    workers_dev: bool = True
    """On the cloudflare target: serve on ``https://NAME.SUBDOMAIN.workers.dev``."""
    remote_bindings: dict[str, str] = {}
    """Bindings only Cloudflare serves, name -> kind (``"ai"``, ``"vectorize"``,
    ``"browser"``, ...): locally the worker starts, and the first use of one raises an
    error naming it."""
    assets: WorkerAssets | None = None
    """Static files served with the worker (see :class:`WorkerAssets`)."""
    services: dict[str, WorkerService] = {}
    """Service bindings to workers outside this app, by script name."""
    worker_loaders: list[str] = []
    """Names of Worker Loader bindings: ``self.env.LOADER.get(id, callback)``."""


class WorkerOutputs(Outputs):
    """Outputs of :class:`Worker`."""

    url: str
    name: str
    port: int = 0
    version: str = ""
    """On the cloudflare target: the id of the Worker version this deploy serves (each
    deploy is a version deployed at 100%)."""
    versions: list[str] = []
    """On the cloudflare target: the last versions deployed, oldest first (the last one
    is ``version``); a gradual deployment splits traffic between two of them."""
    digests: dict[str, str] = {}
    """On the cloudflare target: version id -> digest of what it holds, so a rollback
    deploys an earlier version again instead of uploading it."""
    migration_tag: str | None = None
    """On the cloudflare target: the last Durable Object migration applied."""
    do_classes: dict[str, bool] = {}
    """On the cloudflare target: the Durable Object classes hosted -> SQLite-backed."""
    workers_dev: bool = False
    consumers: dict[str, str] = {}
    """On the cloudflare target: queue id -> consumer id, for each queue this worker
    consumes (``queue_consumers``)."""


def _code_files(root: Path) -> list[tuple[Path, str]]:
    """Every file of the worker's folder with its path relative to it, in order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            found.append((path, str(path.relative_to(root))))
    return found


def _code_digest(entry: Path) -> str:
    """Every file of the worker's folder, by path and content."""
    h = hashlib.sha256()
    for path, relative in _code_files(entry.parent):
        h.update(relative.encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


class WorkerProvider(Provider[WorkerProps, WorkerOutputs]):
    """On the local target, served by the stage's supervisor on 127.0.0.1."""

    def fingerprint(self, ctx: ResourceContext, props: WorkerProps) -> str | None:
        entry = ctx.resolve_path(props.entry)
        if not entry.is_file():
            raise ConfigError(
                f"the worker's entry {props.entry!r} is not a file",
                where=f"{ctx.fqn} ({ctx.kind}), phase {ctx.phase}",
                fix="point entry= at the worker module, relative to the app's folder",
            )
        overlay = json.dumps(dict(ctx.stage_vars), sort_keys=True) if ctx.stage_vars else ""
        return "code:" + _code_digest(entry) + overlay

    def artifacts(self, ctx: ResourceContext, props: WorkerProps) -> list[Path]:
        root = ctx.resolve_path(props.entry).parent
        return [path for path, _ in _code_files(root)]

    def check(
        self, ctx: ResourceContext, props: WorkerProps, outputs: WorkerOutputs | None
    ) -> str | None:
        if ctx.target != "local":
            return None
        from .local._control import serving

        now = serving(local_dir(ctx), ctx.id)
        if now is None:
            return "the worker is not running on this machine"
        return None

    async def create(self, ctx: ResourceContext, props: WorkerProps) -> WorkerOutputs:
        if on_cloudflare(ctx):
            return await self._remote(ctx, props, None)
        return await self._deploy(ctx, props, props.port or _dev_port())

    async def update(
        self,
        ctx: ResourceContext,
        old: WorkerProps,
        props: WorkerProps,
        outputs: WorkerOutputs | None,
    ) -> WorkerOutputs:
        if on_cloudflare(ctx):
            return await self._remote(ctx, props, outputs)
        port = props.port or _dev_port() or (outputs.port if outputs is not None else 0)
        return await self._deploy(ctx, props, port)

    async def delete(
        self, ctx: ResourceContext, props: WorkerProps, outputs: WorkerOutputs | None
    ) -> None:
        if on_cloudflare(ctx):
            from .api._resources import queue_consumers_remove
            from .api._worker import worker_delete

            if outputs is not None:
                await queue_consumers_remove(ctx, outputs.consumers)
            await worker_delete(ctx, outputs.name if outputs else physical_name(ctx, props.name))
            return
        if ctx.target != "local":
            return
        from .local._control import request

        folder = local_dir(ctx)
        if folder.exists():
            await request(folder, {"op": "remove", "name": ctx.id}, start=False)
        if outputs is not None:
            from .local._registry import forget

            forget(outputs.name, folder)
        for path in (folder / "workers").glob(f"{ctx.id}-*.json") if folder.exists() else ():
            path.unlink(missing_ok=True)

    async def read(
        self, ctx: ResourceContext, props: WorkerProps, outputs: WorkerOutputs
    ) -> WorkerOutputs | None:
        if not on_cloudflare(ctx):
            return outputs
        from .api._worker import worker_read

        live = await worker_read(ctx, outputs.name, outputs.consumers)
        if live is None:
            return None
        return outputs.model_copy(update=live)

    async def _remote(
        self, ctx: ResourceContext, props: WorkerProps, outputs: WorkerOutputs | None
    ) -> WorkerOutputs:
        from .api._worker import WorkerUpload, worker_deploy

        entry = ctx.resolve_path(props.entry)
        root = entry.parent
        name = physical_name(ctx, props.name)
        bindings, do_classes, workflows = _api_bindings(ctx, props, name)
        upload = WorkerUpload(
            name=name,
            main_module=str(entry.relative_to(root)),
            modules=[(rel, path) for path, rel in _code_files(root)],
            bindings=bindings,
            compatibility_date=props.compatibility_date,
            compatibility_flags=list(props.compatibility_flags),
            do_classes=do_classes,
            workflows=workflows,
            workers_dev=props.workers_dev,
            queue_consumers=_api_consumers(ctx, props),
        )
        renamed = outputs is not None and outputs.name != name
        previous = outputs.model_dump() if outputs is not None and not renamed else None
        if renamed and outputs is not None:  # the old script stops consuming first
            from .api._resources import queue_consumers_remove

            await queue_consumers_remove(ctx, outputs.consumers)
        deployed = WorkerOutputs(**await worker_deploy(ctx, upload, previous))
        if renamed and outputs is not None:  # a new script under the new name: drop the old
            from .api._worker import worker_delete

            await worker_delete(ctx, outputs.name)
        return deployed

    async def _deploy(self, ctx: ResourceContext, props: WorkerProps, port: int) -> WorkerOutputs:
        require_local(ctx)
        from .local._control import request

        folder = local_dir(ctx)
        name = physical_name(ctx, props.name)
        token = _rpc_token(folder)
        config: dict[str, Any] = {
            "app": ctx.app,
            "stage": ctx.stage,
            "name": ctx.id,
            "script_name": name,
            "entry": str(ctx.resolve_path(props.entry)),
            "compatibility_date": props.compatibility_date,
            "compatibility_flags": list(props.compatibility_flags),
            "bindings": self._bindings(ctx, props),
            "crons": list(props.crons),
            "queue_consumers": [
                {
                    "type": "queue",
                    "queue_name": _outputs(q).get("name", q.id),
                    "path": str(local_dir(ctx, "queues", f"{q.id}.sqlite")),
                }
                for q in props.queue_consumers
            ],
            "rpc_token": token,
        }
        config.update(await _dependencies(ctx, props))
        if props.assets is not None:
            config["assets"] = _assets_config(ctx, props.assets)
            if props.assets.binding:
                config["bindings"][props.assets.binding] = {
                    "type": "assets",
                    **{k: v for k, v in config["assets"].items() if k != "run_worker_first"},
                }
        for key, service in props.services.items():
            config["bindings"][key] = {"type": "service", "service": service.service}
            if service.entrypoint:
                config["bindings"][key]["entrypoint"] = service.entrypoint
        for key in props.worker_loaders:
            config["bindings"][key] = {"type": "worker_loader"}
        version = hashlib.sha256(
            (json.dumps(config, sort_keys=True) + (self.fingerprint(ctx, props) or "")).encode()
        ).hexdigest()
        config["version"] = version
        workers = folder / "workers"
        workers.mkdir(parents=True, exist_ok=True)
        path = workers / f"{ctx.id}-{version[:16]}.json"
        reserved = await request(folder, {"op": "reserve", "name": ctx.id, "port": port})
        if reserved is None or not reserved.get("ok"):
            raise ProviderError(
                f"no port for worker {ctx.id!r}: {(reserved or {}).get('error')}",
                where=f"{ctx.fqn} ({ctx.kind}), phase {ctx.phase}",
                fix="free the port, or leave port= unset to take any free one",
            )
        port = int(reserved["port"])
        config["url"] = f"http://127.0.0.1:{port}"
        _write_private(path, json.dumps(config, indent=1))
        reply = await request(
            folder, {"op": "deploy", "name": ctx.id, "config": str(path), "version": version}
        )
        if reply is None or not reply.get("ok"):
            error = (reply or {}).get("error", "no answer from the stage supervisor")
            raise ProviderError(
                f"worker {ctx.id!r} did not start: {error}",
                where=f"{ctx.fqn} ({ctx.kind}), phase {ctx.phase}",
                fix="fix the worker module; the previous version, if any, keeps serving "
                f"(logs: alchemy-nb logs {ctx.id} --stage {ctx.stage})",
            )
        for old in workers.glob(f"{ctx.id}-*.json"):
            if old != path:
                old.unlink(missing_ok=True)
        from .local._registry import record

        record(name, f"http://127.0.0.1:{port}", folder, ctx.id, token)
        if reserved.get("note") and ctx.log is not None:
            ctx.log("resource.note", id=ctx.id, kind=ctx.kind, note=reserved["note"])
        return WorkerOutputs(url=f"http://127.0.0.1:{port}", name=name, port=port)

    def _bindings(self, ctx: ResourceContext, props: WorkerProps) -> dict[str, Any]:
        from ._d1 import d1_path
        from ._kv import kv_path
        from ._r2 import r2_path

        out: dict[str, Any] = {}
        for key, text in props.vars.items():
            out[key] = {"type": "plain_text", "value": str(text)}
        for key, text in ctx.stage_vars.items():  # the stage's vars win over the program's
            out[key] = {"type": "plain_text", "value": str(text)}
        for key, service in props.remote_bindings.items():
            out[key] = {"type": "remote_only", "service": service}
        for key, value in props.bindings.items():
            if key in ctx.stage_vars and not isinstance(value, Secret | Resource | Ref):
                continue
            if isinstance(value, Secret):
                out[key] = {"type": "secret_text", "value": value.reveal()}
            elif isinstance(value, str):
                out[key] = {"type": "plain_text", "value": value}
            elif isinstance(value, Ref):  # resolved before the provider runs
                raise ProviderError(f"binding {key!r} was not resolved", where=ctx.fqn)
            else:
                kind, rid, outs = value.kind, value.id, _outputs(value)
                if kind == "cloudflare::KVNamespace":
                    out[key] = {"type": "kv_namespace", "path": str(kv_path(ctx, rid))}
                elif kind == "cloudflare::D1Database":
                    out[key] = {
                        "type": "d1",
                        "path": str(d1_path(ctx, rid)),
                        "database_name": outs.get("name", rid),
                    }
                elif kind == "cloudflare::R2Bucket":
                    out[key] = {
                        "type": "r2_bucket",
                        "path": str(r2_path(ctx, outs["name"])),
                        "bucket_name": outs["name"],
                    }
                elif kind == "cloudflare::DurableObjectNamespace":
                    out[key] = {
                        "type": "durable_object_namespace",
                        "class_name": outs["class_name"],
                        "path": str(local_dir(ctx, "do", rid)),
                    }
                elif kind == "cloudflare::Workflow":
                    out[key] = {
                        "type": "workflow",
                        "class_name": outs["class_name"],
                        "workflow_name": outs["workflow_name"],
                        "path": str(local_dir(ctx, "workflows", f"{rid}.sqlite")),
                    }
                elif kind == "cloudflare::Queue":
                    out[key] = {
                        "type": "queue",
                        "queue_name": outs["name"],
                        "path": str(local_dir(ctx, "queues", f"{rid}.sqlite")),
                    }
                elif kind == "cloudflare::Worker":
                    out[key] = {
                        "type": "service",
                        "url": outs["url"],
                        "service": outs.get("name", rid),
                        "rpc_token": _rpc_token(local_dir(ctx)),
                    }
                else:
                    raise ConfigError(
                        f"binding {key!r} is a {kind}, which cannot be bound to a worker",
                        where=f"{ctx.fqn} ({ctx.kind}), phase {ctx.phase}",
                        fix="bind KV, D1, R2, Durable Object, Workflow, Queue or Worker "
                        "resources, strings or Secrets",
                    )
        return out


def _api_bindings(
    ctx: ResourceContext, props: WorkerProps, script: str
) -> tuple[list[dict[str, Any]], dict[str, bool], list[tuple[str, str]]]:
    """The upload's bindings metadata, the Durable Object classes this script hosts, and
    the Workflows it hosts, on the cloudflare target."""
    plain: dict[str, str] = {k: str(v) for k, v in props.vars.items()}
    plain.update({k: str(v) for k, v in ctx.stage_vars.items()})  # the stage's vars win
    out: list[dict[str, Any]] = []
    do_classes: dict[str, bool] = {}
    workflows: list[tuple[str, str]] = []
    for key, value in props.bindings.items():
        if isinstance(value, Secret):
            out.append({"type": "secret_text", "name": key, "text": value.reveal()})
            plain.pop(key, None)
            continue
        if isinstance(value, str):
            plain.setdefault(key, value)
            continue
        if isinstance(value, Ref):  # resolved before the provider runs
            raise ProviderError(f"binding {key!r} was not resolved", where=ctx.fqn)
        plain.pop(key, None)
        kind, outs = value.kind, _outputs(value)
        if kind == "cloudflare::KVNamespace":
            out.append({"type": "kv_namespace", "name": key, "namespace_id": outs["namespace_id"]})
        elif kind == "cloudflare::D1Database":
            out.append({"type": "d1", "name": key, "database_id": outs["database_id"]})
        elif kind == "cloudflare::R2Bucket":
            out.append({"type": "r2_bucket", "name": key, "bucket_name": outs["name"]})
        elif kind == "cloudflare::DurableObjectNamespace":
            binding = {"type": "durable_object_namespace", "name": key}
            binding["class_name"] = outs["class_name"]
            host = outs.get("script_name")
            if host and host != script:
                binding["script_name"] = host
            else:
                do_classes[outs["class_name"]] = bool(outs.get("sqlite", True))
            out.append(binding)
        elif kind == "cloudflare::Workflow":
            binding = {"type": "workflow", "name": key, "workflow_name": outs["workflow_name"]}
            host = outs.get("script_name")
            if host and host != script:
                binding["script_name"] = host
            else:
                binding["class_name"] = outs["class_name"]
                workflows.append((outs["workflow_name"], outs["class_name"]))
            out.append(binding)
        elif kind == "cloudflare::Worker":
            out.append({"type": "service", "name": key, "service": outs["name"]})
        elif kind == "cloudflare::Queue":
            out.append({"type": "queue", "name": key, "queue_name": outs["name"]})
        else:
            raise ConfigError(
                f"binding {key!r} is a {kind}, which the cloudflare target cannot bind",
                where=f"{ctx.fqn} ({ctx.kind}), phase {ctx.phase}",
                fix="bind KV, D1, R2, Durable Object, Workflow, Queue or Worker resources, "
                "strings or Secrets",
            )
    out = [{"type": "plain_text", "name": k, "text": v} for k, v in plain.items()] + out
    return out, do_classes, workflows


def _api_consumers(ctx: ResourceContext, props: WorkerProps) -> dict[str, str]:
    """Queue id -> name of each queue the worker consumes, on the cloudflare target."""
    found: dict[str, str] = {}
    for queue in props.queue_consumers:
        outs = _outputs(queue)
        if getattr(queue, "kind", "") != "cloudflare::Queue" or not outs.get("queue_id"):
            raise ConfigError(
                f"queue_consumers holds {getattr(queue, 'kind', type(queue).__name__)} "
                f"{getattr(queue, 'id', '')!r}, not a deployed Queue",
                where=f"{ctx.fqn} ({ctx.kind}), queue_consumers, phase {ctx.phase}",
                fix="list Queue resources of this app in queue_consumers",
            )
        found[str(outs["queue_id"])] = str(outs["name"])
    return found


def _dev_port() -> int:
    """``alchemy-nb dev --port N``: the port asked for (the first worker to ask gets it)."""
    text = os.environ.get("ALCHEMY_NB_DEV_PORT", "")
    return int(text) if text.isdigit() else 0


async def _dependencies(ctx: ResourceContext, props: WorkerProps) -> dict[str, Any]:
    """The worker's own dependencies (installed on first use) and the Python it runs on:
    what goes into its config (nothing when it declares no dependencies)."""
    import asyncio

    from .local._deps import choose_python, ensure_environment, find_dependencies

    deps = find_dependencies(ctx.resolve_path(props.entry), ctx.root)
    if deps is None:
        return {}

    def note(text: str) -> None:
        if ctx.log is not None:
            ctx.log("resource.note", id=ctx.id, kind=ctx.kind, note=text)

    python, said = await asyncio.to_thread(choose_python, deps)
    if said:
        note(said)
    try:
        folder = await asyncio.to_thread(ensure_environment, deps, log=note, python=python)
    except ProviderError as exc:
        raise ProviderError(
            f"worker {ctx.id!r}: {exc.what}",
            where=f"{ctx.fqn} ({ctx.kind}), {exc.where}",
            fix=exc.fix,
        ) from None
    out: dict[str, Any] = {"site_packages": str(folder)}
    if python.foreign:  # alchemy-nb's code, importable by the other Python
        link = local_dir(ctx, "runtime", "alchemy_nb")
        link.parent.mkdir(parents=True, exist_ok=True)
        package = Path(__file__).resolve().parent.parent
        if not link.is_symlink() or link.resolve() != package:
            link.unlink(missing_ok=True)
            link.symlink_to(package, target_is_directory=True)
        out["python"] = python.executable
        out["python_path"] = [str(link.parent), str(folder)]
    return out


def _assets_config(ctx: ResourceContext, assets: WorkerAssets) -> dict[str, Any]:
    directory = ctx.resolve_path(assets.directory)
    if not directory.is_dir():
        raise ConfigError(
            f"the assets directory {assets.directory!r} of worker {ctx.id!r} does not exist"
            f" ({directory})",
            where=f"{ctx.fqn} ({ctx.kind}), assets.directory, phase {ctx.phase}",
            fix="create the folder (or build the site into it), or fix assets.directory; it"
            " is relative to the app's folder (for a wrangler project: to wrangler.toml)",
        )
    return {
        "directory": str(directory),
        "html_handling": assets.html_handling,
        "not_found_handling": assets.not_found_handling,
        "run_worker_first": assets.run_worker_first,
    }


def _rpc_token(folder: Path) -> str:
    """The stage's secret that service-binding RPC calls between its workers carry."""
    path = folder / "rpc.token"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another deploy made it first
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(16))
    return path.read_text().strip()


def _outputs(resource: Any) -> dict[str, Any]:
    outputs = resource.outputs
    if outputs is None:
        return {}
    return dict(outputs) if not isinstance(outputs, dict) else outputs


def _write_private(path: Path, text: str) -> None:
    """Worker configs hold secret bindings: readable by this user only."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class Worker(Resource[WorkerProps, WorkerOutputs]):
    """A Python Worker: ``class Default(WorkerEntrypoint)`` with ``async def fetch``.

    Example::

        api = Worker("api", entry="src/worker.py",
                     bindings={"DB": db, "CACHE": cache, "FILES": files})
        api.url    # a reference to where it serves
    """

    kind = "cloudflare::Worker"
    props_model = WorkerProps
    outputs_model = WorkerOutputs
    provider = WorkerProvider
