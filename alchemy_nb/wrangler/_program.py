"""From a wrangler configuration to resources: declared in memory, or written as a program.

Both paths go through one list of :class:`Declaration` s, so ``alchemy-nb deploy`` on a
wrangler project and the ``alchemy_run.py`` that ``alchemy-nb import wrangler`` writes
declare exactly the same resources.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._config import WranglerConfig, WranglerEnv, load_wrangler, var_text

if TYPE_CHECKING:
    from ..engine import App, Stage

__all__ = [
    "DEFAULT_PROGRAM",
    "Declaration",
    "Use",
    "declarations",
    "wrangler_app",
    "write_program_stub",
]

from ._resolve import DEFAULT_PROGRAM


@dataclass(frozen=True)
class Use:
    """A reference, inside a declaration's arguments, to an earlier declaration."""

    var: str


@dataclass
class Declaration:
    """One resource to declare: ``var = Kind("id", **kwargs)``."""

    var: str
    kind: str
    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def slug(text: str) -> str:
    """A resource id from a wrangler name (``MY_KV`` -> ``my-kv``)."""
    out = re.sub(r"[^a-z0-9_.-]+", "-", text.lower().replace("_", "-")).strip("-.")
    return out or "resource"


def _identifier(text: str) -> str:
    name = re.sub(r"\W+", "_", text.lower()).strip("_") or "resource"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "r_" + name
    return name


class _Names:
    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.vars: set[str] = {"app", "infra", "stage", "alchemy_nb"}

    def take(self, base: str) -> tuple[str, str]:
        rid, var = slug(base), _identifier(base)
        n = 2
        while rid in self.ids or var in self.vars:
            rid, var = f"{slug(base)}-{n}", f"{_identifier(base)}_{n}"
            n += 1
        self.ids.add(rid)
        self.vars.add(var)
        return rid, var


def check_main(config: WranglerConfig, env: WranglerEnv, where: str, base: Path) -> str:
    """``main`` of ``env``, checked to be a file in the project folder ``base``."""
    if not env.main:
        raise ConfigError(
            f"{config.source} has no main{where}",
            where=config.source,
            fix='set main = "src/entry.py" (the worker module, relative to the file)',
        )
    if not (base / env.main).is_file():
        raise ConfigError(
            f"main {env.main!r}{where} in {Path(config.source).name} does not exist",
            where=str(base / env.main),
            fix="point main at the worker's Python module, relative to the configuration file",
        )
    return env.main


def declarations(
    config: WranglerConfig, stage: str, *, with_vars: bool = True, base: Path | None = None
) -> list[Declaration]:
    """The resources the configuration describes for ``stage`` (its ``[env.*]`` section,
    else the top level), the Worker last. Paths are relative to ``base``, the project
    folder (default: the configuration's).

    Example::

        for d in declarations(load_wrangler("wrangler.toml"), "dev"):
            print(d.kind, d.id)
    """
    env = config.for_stage(stage)
    where = f" (env.{stage})" if stage in config.env else ""
    base = base or config.root
    main = check_main(config, env, where, base)
    names = _Names()
    worker_id, worker_var = names.take(config.name or "worker")
    out: list[Declaration] = []
    bindings: dict[str, Any] = {}
    new_kv_classes = {c for m in config.migrations for c in m.new_classes}

    for d1 in env.d1_databases:
        rid, var = names.take(d1.binding)
        kwargs: dict[str, Any] = {}
        if d1.database_name:
            kwargs["name"] = d1.database_name
        migrations = d1.migrations_dir
        if migrations is None and (base / "migrations").is_dir():
            migrations = "migrations"  # wrangler's default folder
        if migrations:
            kwargs["migrations_dir"] = migrations
        if d1.migrations_table:
            kwargs["migrations_table"] = d1.migrations_table
        out.append(Declaration(var, "D1Database", rid, kwargs))
        bindings[d1.binding] = Use(var)
    for kv in env.kv_namespaces:
        rid, var = names.take(kv.binding)
        out.append(Declaration(var, "KVNamespace", rid))
        bindings[kv.binding] = Use(var)
    for r2 in env.r2_buckets:
        rid, var = names.take(r2.binding)
        kwargs = {"name": r2.bucket_name} if r2.bucket_name else {}
        out.append(Declaration(var, "R2Bucket", rid, kwargs))
        bindings[r2.binding] = Use(var)
    for do in env.durable_objects.bindings:
        rid, var = names.take(do.name)
        kwargs = {"class_name": do.class_name}
        if do.script_name:
            kwargs["script_name"] = do.script_name
        if do.class_name in new_kv_classes:
            kwargs["sqlite"] = False
        out.append(Declaration(var, "DurableObjectNamespace", rid, kwargs))
        bindings[do.name] = Use(var)
    for wf in env.workflows:
        rid, var = names.take(wf.binding)
        kwargs = {"class_name": wf.class_name, "workflow_name": wf.name}
        if wf.script_name:
            kwargs["script_name"] = wf.script_name
        out.append(Declaration(var, "Workflow", rid, kwargs))
        bindings[wf.binding] = Use(var)
    queues: dict[str, str] = {}

    def queue(name: str) -> str:
        if name not in queues:
            rid, var = names.take(name)
            out.append(Declaration(var, "Queue", rid, {"name": name}))
            queues[name] = var
        return queues[name]

    for producer in env.queues.producers:
        bindings[producer.binding] = Use(queue(producer.queue))
    consumers = [Use(queue(c.queue)) for c in env.queues.consumers]

    worker: dict[str, Any] = {"entry": main}
    if env.name:
        worker["name"] = env.name
    if bindings:
        worker["bindings"] = bindings
    if with_vars and env.vars:
        worker["vars"] = {k: var_text(v) for k, v in env.vars.items()}
    if env.compatibility_date:
        worker["compatibility_date"] = env.compatibility_date
    if env.compatibility_flags:
        worker["compatibility_flags"] = list(env.compatibility_flags)
    remote = env.remote_only()
    if remote:
        worker["remote_bindings"] = remote
    if env.triggers.crons:
        worker["crons"] = list(env.triggers.crons)
    if consumers:
        worker["queue_consumers"] = consumers
    if env.assets is not None:
        worker["assets"] = _assets(config, env, where)
    if env.services:
        worker["services"] = {
            s.binding: {
                "service": s.service,
                **({"entrypoint": s.entrypoint} if s.entrypoint else {}),
            }
            for s in env.services
        }
    if env.worker_loaders:
        worker["worker_loaders"] = [loader.binding for loader in env.worker_loaders]
    out.append(Declaration(worker_var, "Worker", worker_id, worker))
    return out


_HTML_HANDLING = ("auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none")
_NOT_FOUND_HANDLING = ("none", "404-page", "single-page-application")


def _assets(config: WranglerConfig, env: WranglerEnv, where: str) -> dict[str, Any]:
    """The ``[assets]`` table as the Worker's ``assets=`` (checked, defaults left out)."""
    assets = env.assets
    assert assets is not None
    if not assets.directory:
        raise ConfigError(
            f"assets{where} in {Path(config.source).name} has no directory",
            where=config.source,
            fix='set directory = "./public" (the folder of files, relative to the file)',
        )
    for key, value, allowed in (
        ("html_handling", assets.html_handling, _HTML_HANDLING),
        ("not_found_handling", assets.not_found_handling, _NOT_FOUND_HANDLING),
    ):
        if value not in allowed:
            raise ConfigError(
                f"assets.{key}{where} in {Path(config.source).name} is {value!r}",
                where=config.source,
                fix=f"use one of: {', '.join(allowed)}",
            )
    out: dict[str, Any] = {"directory": assets.directory}
    if assets.binding:
        out["binding"] = assets.binding
    if assets.run_worker_first:
        out["run_worker_first"] = assets.run_worker_first
    if assets.html_handling != "auto-trailing-slash":
        out["html_handling"] = assets.html_handling
    if assets.not_found_handling != "none":
        out["not_found_handling"] = assets.not_found_handling
    return out


def declare(config: WranglerConfig, stage: str, base: Path) -> dict[str, Any]:
    """Declare the resources of ``stage`` (inside a program run); the Worker's url is the
    program's output."""
    from .. import cloudflare

    made: dict[str, Any] = {}

    def resolve(value: Any) -> Any:
        if isinstance(value, Use):
            return made[value.var]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    worker: Any = None
    for decl in declarations(config, stage, base=base):
        kind = getattr(cloudflare, decl.kind)
        made[decl.var] = worker = kind(decl.id, **resolve(decl.kwargs))
    return {"url": worker.url}


def wrangler_app(path: str | Path, *, root: str | Path | None = None, warn: bool = True) -> App:
    """An :class:`~alchemy_nb.App` whose program declares what the wrangler configuration
    at ``path`` describes (``[env.S]`` for stage ``S``). The file is read again on every
    run, so ``alchemy-nb dev`` follows edits to it.

    Example::

        app = wrangler_app("wrangler.toml")
        result = await app.deploy("dev")
    """
    from ..engine import App

    source = Path(path)
    config = load_wrangler(source, warn=warn)
    base = Path(root).resolve() if root else config.root
    check_main(config, config.for_stage(""), "", base)
    app = App(slug(config.name or "worker"), root=base)

    @app.program
    def infra(stage: Stage) -> dict[str, Any]:
        current = load_wrangler(source, warn=False) if source.exists() else config
        return declare(current, stage.name, app.root)

    return app


_STUB = '''"""Generated by alchemy-nb from {name} on every command; edits here are lost.

For a program to keep and edit instead: alchemy-nb import wrangler
"""

from pathlib import Path

from alchemy_nb.wrangler import wrangler_app

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # the project folder: this file is .alchemy/<app>/wrangler/{file}
CONFIG = ROOT / "{name}"  # the live file; a release's copy sits beside this one

app = wrangler_app(CONFIG if CONFIG.exists() else HERE / "{name}", root=ROOT)
'''

STUB_NAME = "wrangler_program.py"


def write_program_stub(config_path: str | Path) -> Path:
    """Write ``.alchemy/<app>/wrangler/wrangler_program.py`` (and a copy of the
    configuration beside it) for a wrangler project, and return its path.

    A real program file lets deploys record releases exactly as for ``alchemy_run.py``:
    the release stores this stub, the configuration's copy and the worker's files.

    Example::

        app = load_program(write_program_stub("wrangler.toml"))
    """
    source = Path(config_path).resolve()
    config = load_wrangler(source, warn=False)
    folder = source.parent / ".alchemy" / slug(config.name or "worker") / "wrangler"
    folder.mkdir(parents=True, exist_ok=True)
    _write_if_changed(folder / source.name, source.read_bytes())
    stub = _STUB.format(name=source.name, file=STUB_NAME)
    _write_if_changed(folder / STUB_NAME, stub.encode())
    for other in folder.iterdir():  # a project that switched from toml to jsonc
        if other.name not in (source.name, STUB_NAME) and other.is_file():
            other.unlink()
    return folder / STUB_NAME


def _write_if_changed(path: Path, data: bytes) -> None:
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
