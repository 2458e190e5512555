"""``cloudflare::Worker``: a Python Worker with its bindings."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Union

from .._secret import Secret
from ..engine import Input, Outputs, Props, Provider, Ref, Resource, ResourceContext
from ..errors import ConfigError, ProviderError
from ._common import local_dir, physical_name, require_local

__all__ = ["Worker", "WorkerOutputs", "WorkerProps"]

Binding = Union[str, Secret, Resource[Any, Any], Ref]  # noqa: UP007
"""A binding's value: plain text, a secret, or a resource (KV, D1, R2, ...)."""

DEFAULT_COMPATIBILITY_DATE = "2025-09-01"
_SKIP_DIRS = {"__pycache__", ".alchemy", ".git", ".venv", "node_modules", ".pytest_cache"}


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
    remote_bindings: dict[str, str] = {}
    """Bindings only Cloudflare serves, name -> kind (``"ai"``, ``"vectorize"``,
    ``"browser"``, ...): locally the worker starts, and the first use of one raises an
    error naming it."""


class WorkerOutputs(Outputs):
    """Outputs of :class:`Worker`."""

    url: str
    name: str
    port: int = 0


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
        return await self._deploy(ctx, props, props.port or _dev_port())

    async def update(
        self,
        ctx: ResourceContext,
        old: WorkerProps,
        props: WorkerProps,
        outputs: WorkerOutputs | None,
    ) -> WorkerOutputs:
        port = props.port or _dev_port() or (outputs.port if outputs is not None else 0)
        return await self._deploy(ctx, props, port)

    async def delete(
        self, ctx: ResourceContext, props: WorkerProps, outputs: WorkerOutputs | None
    ) -> None:
        if ctx.target != "local":
            return
        from .local._control import request

        folder = local_dir(ctx)
        if folder.exists():
            await request(folder, {"op": "remove", "name": ctx.id}, start=False)
        for path in (folder / "workers").glob(f"{ctx.id}-*.json") if folder.exists() else ():
            path.unlink(missing_ok=True)

    async def _deploy(self, ctx: ResourceContext, props: WorkerProps, port: int) -> WorkerOutputs:
        require_local(ctx)
        from .local._control import request

        folder = local_dir(ctx)
        name = physical_name(ctx, props.name)
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
        }
        config.update(await _dependencies(ctx, props))
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
                    out[key] = {"type": "service", "url": outs["url"]}
                else:
                    raise ConfigError(
                        f"binding {key!r} is a {kind}, which cannot be bound to a worker",
                        where=f"{ctx.fqn} ({ctx.kind}), phase {ctx.phase}",
                        fix="bind KV, D1, R2, Durable Object, Workflow, Queue or Worker "
                        "resources, strings or Secrets",
                    )
        return out


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
