"""``alchemy-nb export wrangler``: the ``wrangler.jsonc`` that deploys a stage with wrangler."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..engine import App

__all__ = ["export_wrangler", "render_jsonc"]

_KIND = "cloudflare::"


def _text(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


async def export_wrangler(
    app: App, stage: str, *, worker: str | None = None, out: str | Path | None = None
) -> str:
    """The ``wrangler.jsonc`` text for ``worker`` (its resource id; needed only when the
    app has several) as ``stage`` declares it. ``main`` is made relative to ``out``'s
    folder (default: the app's folder).

    Ids come from state when the stage is deployed to the Cloudflare target; otherwise
    they are placeholders, and a comment says so.

    Example::

        text = await export_wrangler(app, "prod")
        Path("wrangler.jsonc").write_text(text)
    """
    from .._secret import Secret
    from ..engine import Phase, Resource

    run = app._run(stage, Phase.PLAN)
    await run.run_program()
    workers = [r for r in run.declared.values() if r.kind == _KIND + "Worker"]
    if worker is not None:
        workers = [r for r in workers if r.id == worker]
    if len(workers) != 1:
        names = ", ".join(r.id for r in run.declared.values() if r.kind == _KIND + "Worker")
        raise ConfigError(
            f"export needs exactly one worker; app {app.name!r} stage {stage!r} has "
            + (f"{names or 'none'}" if worker is None else f"no worker {worker!r}"),
            where=f"{app.name}/{stage}",
            fix=f"name one with --worker ({names})" if names else "declare a Worker",
        )
    res = workers[0]
    props: Any = res.props
    settings = app.settings(stage)
    deployed = settings.target == "cloudflare"
    records = (await app.state.load(app.name, stage)).records if deployed else {}

    def physical(r: Resource[Any, Any], key: str) -> str:
        return _text(getattr(r.props, key, None), f"{app.name}-{r.id}-{stage}")

    def state_id(r: Resource[Any, Any], key: str, what: str) -> str:
        outputs = (records.get(r.id) or {}).get("outputs") or {}
        value = outputs.get(key) if isinstance(outputs, dict) else None
        return value if isinstance(value, str) else f"<{what}>"

    name = physical(res, "name")
    folder = Path(out).resolve().parent if out else app.root
    main = os.path.relpath(app.root / props.entry, folder)
    config: dict[str, Any] = {
        "$schema": "./node_modules/wrangler/config-schema.json",
        "name": name,
        "main": main,
        "compatibility_date": props.compatibility_date,
        "compatibility_flags": list(props.compatibility_flags),
    }
    plain: dict[str, str] = {k: _text(v, "") for k, v in props.vars.items()}
    secrets: list[str] = []
    d1: list[dict[str, Any]] = []
    kv: list[dict[str, Any]] = []
    r2: list[dict[str, Any]] = []
    dos: list[dict[str, Any]] = []
    new_classes: dict[str, bool] = {}
    flows: list[dict[str, Any]] = []
    producers: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for key, value in props.bindings.items():
        if isinstance(value, Secret):
            secrets.append(key)
        elif isinstance(value, str):
            plain[key] = value
        elif isinstance(value, Resource):
            kind, p = value.kind.removeprefix(_KIND), value.props
            if kind == "D1Database":
                entry = {
                    "binding": key,
                    "database_name": physical(value, "name"),
                    "database_id": state_id(value, "database_id", "D1 database id"),
                }
                if p.migrations_dir:
                    entry["migrations_dir"] = p.migrations_dir
                d1.append(entry)
            elif kind == "KVNamespace":
                kv.append({"binding": key, "id": state_id(value, "namespace_id", "KV id")})
            elif kind == "R2Bucket":
                r2.append({"binding": key, "bucket_name": physical(value, "name")})
            elif kind == "DurableObjectNamespace":
                entry = {"name": key, "class_name": p.class_name}
                script = _text(p.script_name, "")
                if script and script != name:
                    entry["script_name"] = script
                else:
                    new_classes[p.class_name] = p.sqlite
                dos.append(entry)
            elif kind == "Workflow":
                entry = {
                    "name": physical(value, "workflow_name"),
                    "binding": key,
                    "class_name": p.class_name,
                }
                if _text(p.script_name, ""):
                    entry["script_name"] = p.script_name
                flows.append(entry)
            elif kind == "Queue":
                producers.append({"binding": key, "queue": physical(value, "name")})
            elif kind == "Worker":
                services.append({"binding": key, "service": physical(value, "name")})
    plain.update(settings.vars)  # the stage's vars win, as on the local target
    plain.pop("ALCHEMY_RELEASE", None)
    if plain:
        config["vars"] = plain
    for key, value in (("d1_databases", d1), ("kv_namespaces", kv), ("r2_buckets", r2)):
        if value:
            config[key] = value
    if dos:
        config["durable_objects"] = {"bindings": dos}
    if new_classes:
        sqlite = [c for c, s in new_classes.items() if s]
        kv_backed = [c for c, s in new_classes.items() if not s]
        step: dict[str, Any] = {"tag": "v1"}
        if sqlite:
            step["new_sqlite_classes"] = sqlite
        if kv_backed:
            step["new_classes"] = kv_backed
        config["migrations"] = [step]
    if flows:
        config["workflows"] = flows
    consumers = [
        {"queue": physical(q, "name")} for q in props.queue_consumers if isinstance(q, Resource)
    ]
    if producers or consumers:
        config["queues"] = {
            k: v for k, v in (("producers", producers), ("consumers", consumers)) if v
        }
    for key, service in props.services.items():
        entry = {"binding": key, "service": service.service}
        if service.entrypoint:
            entry["entrypoint"] = service.entrypoint
        services.append(entry)
    if services:
        config["services"] = services
    if props.worker_loaders:
        config["worker_loaders"] = [{"binding": key} for key in props.worker_loaders]
    if props.assets is not None:
        assets = props.assets.model_dump(exclude_defaults=True)
        assets["directory"] = os.path.relpath(app.root / props.assets.directory, folder)
        config["assets"] = assets
    if props.crons:
        config["triggers"] = {"crons": list(props.crons)}
    header = [
        f"wrangler.jsonc for {app.name}, stage {stage!r} (worker {res.id!r}),",
        "exported by `alchemy-nb export wrangler`. Deploy with `npx wrangler deploy`.",
    ]
    if not deployed:
        header += [
            "Ids in <angle brackets> are placeholders: this stage is not deployed to",
            "Cloudflare (the cloudflare target does not exist yet), so state holds no real",
            "ids. Create the resources (`wrangler d1 create`, `wrangler kv namespace create`)",
            "and paste their ids in.",
        ]
    if secrets:
        header.append(
            f"Secrets are not exported; set them with `wrangler secret put`: {', '.join(secrets)}."
        )
    comments = {
        "vars": "plain-text vars (the stage's vars from alchemy_nb.toml included)",
        "d1_databases": "D1: `wrangler d1 migrations apply` runs migrations_dir",
        "durable_objects": "Durable Object classes defined in this worker",
        "migrations": "creates the Durable Object classes on first deploy",
    }
    return render_jsonc(config, header, comments)


def render_jsonc(config: dict[str, Any], header: list[str], comments: dict[str, str]) -> str:
    """A JSON object as commented JSONC: ``header`` lines on top, a comment above each
    top-level key named in ``comments``.

    Example::

        >>> print(render_jsonc({"name": "x"}, ["hi"], {}), end="")
        // hi
        {
          "name": "x"
        }
    """
    lines = [f"// {line}" for line in header] + ["{"]
    items = list(config.items())
    for i, (key, value) in enumerate(items):
        if key in comments:
            lines.append(f"  // {comments[key]}")
        body = json.dumps(value, indent=2).replace("\n", "\n  ")
        lines.append(f"  {json.dumps(key)}: {body}" + ("," if i < len(items) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"
