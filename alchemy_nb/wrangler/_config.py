"""The wrangler configuration (``wrangler.toml`` / ``wrangler.jsonc``) as typed models.

Only the keys the local target can honour are modelled; every other key is reported once
as a warning (:attr:`WranglerConfig.warnings`), never silently dropped.

Environments follow wrangler's rules: ``name`` becomes ``<name>-<env>`` unless the
environment sets it; ``main``, ``compatibility_date``, ``compatibility_flags`` and
``triggers`` are inherited from the top level; ``vars`` and every binding
(``d1_databases``, ``kv_namespaces``, ``r2_buckets``, ``durable_objects``, ``workflows``,
``queues``) are not inherited, so an environment without them has none.
"""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from ._jsonc import loads_jsonc

__all__ = [
    "CONFIG_FILES",
    "Assets",
    "D1Binding",
    "DevSettings",
    "DurableObjectBinding",
    "DurableObjectMigration",
    "KVBinding",
    "QueueConsumer",
    "QueueProducer",
    "R2Binding",
    "ServiceBinding",
    "WorkerLoaderBinding",
    "WorkflowBinding",
    "WranglerConfig",
    "WranglerEnv",
    "find_wrangler",
    "load_wrangler",
    "var_text",
]

log = logging.getLogger("alchemy_nb.wrangler")

CONFIG_FILES = ("wrangler.jsonc", "wrangler.json", "wrangler.toml")
"""The file names wrangler reads, in its order of preference."""

INHERITED = ("main", "compatibility_date", "compatibility_flags", "triggers", "assets")
"""Top-level keys an ``[env.NAME]`` section inherits unless it sets them."""

REMOTE_ONLY_KEYS = {
    "ai": "Workers AI",
    "vectorize": "Vectorize indexes",
    "browser": "Browser Rendering",
    "images": "Images",
}
"""Binding types only Cloudflare serves: locally the binding exists and its first use
raises an error naming it (the rest of the worker runs)."""

KNOWN_BINDING_KEYS = {
    "hyperdrive": "Hyperdrive",
    "analytics_engine_datasets": "Analytics Engine datasets",
    "send_email": "Email bindings",
    "dispatch_namespaces": "dispatch namespaces",
    "mtls_certificates": "mTLS certificates",
    "version_metadata": "version metadata",
    "secrets_store_secrets": "Secrets Store secrets",
    "tail_consumers": "tail consumers",
    "unsafe": "unsafe bindings",
    "pipelines": "Pipelines",
}
"""Binding types wrangler knows that the local target cannot provide."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class D1Binding(_Model):
    """One ``[[d1_databases]]`` entry."""

    binding: str
    database_name: str | None = None
    database_id: str | None = None
    preview_database_id: str | None = None
    migrations_dir: str | None = None
    migrations_table: str | None = None


class KVBinding(_Model):
    """One ``[[kv_namespaces]]`` entry."""

    binding: str
    id: str | None = None
    preview_id: str | None = None


class R2Binding(_Model):
    """One ``[[r2_buckets]]`` entry."""

    binding: str
    bucket_name: str | None = None
    preview_bucket_name: str | None = None
    jurisdiction: str | None = None


class DurableObjectBinding(_Model):
    """One ``durable_objects.bindings`` entry."""

    name: str
    class_name: str
    script_name: str | None = None
    environment: str | None = None


class DurableObjectMigration(_Model):
    """One ``[[migrations]]`` step (tags and the classes it creates, renames, deletes)."""

    tag: str
    new_classes: list[str] = []
    new_sqlite_classes: list[str] = []
    renamed_classes: list[dict[str, str]] = []
    deleted_classes: list[str] = []


class WorkflowBinding(_Model):
    """One ``[[workflows]]`` entry."""

    name: str
    binding: str
    class_name: str
    script_name: str | None = None


class QueueProducer(_Model):
    """One ``[[queues.producers]]`` entry."""

    binding: str
    queue: str


class QueueConsumer(_Model):
    """One ``[[queues.consumers]]`` entry (only ``queue`` is honoured locally)."""

    queue: str


class Assets(_Model):
    """The ``[assets]`` table: static files served with the worker."""

    directory: str | None = None
    binding: str | None = None
    run_worker_first: bool | list[str] = False
    html_handling: str = "auto-trailing-slash"
    not_found_handling: str = "none"


class ServiceBinding(_Model):
    """One ``[[services]]`` entry: another worker, by its script name."""

    binding: str
    service: str
    entrypoint: str | None = None
    environment: str | None = None


class WorkerLoaderBinding(_Model):
    """One ``[[worker_loaders]]`` entry."""

    binding: str


class _Queues(_Model):
    producers: list[QueueProducer] = []
    consumers: list[QueueConsumer] = []


class _DurableObjects(_Model):
    bindings: list[DurableObjectBinding] = []


class _Triggers(_Model):
    crons: list[str] = []


class DevSettings(_Model):
    """The ``[dev]`` table: what ``wrangler dev`` (and ``alchemy-nb dev``) serves on."""

    port: int | None = None
    ip: str | None = None


class WranglerEnv(_Model):
    """One environment: the top level, or an ``[env.NAME]`` section (resolved by
    :meth:`WranglerConfig.for_stage`).

    Example::

        env = config.for_stage("staging")
        env.name, [d.binding for d in env.d1_databases]
    """

    name: str | None = None
    main: str | None = None
    compatibility_date: str | None = None
    compatibility_flags: list[str] = []
    vars: dict[str, Any] = {}
    d1_databases: list[D1Binding] = []
    kv_namespaces: list[KVBinding] = []
    r2_buckets: list[R2Binding] = []
    durable_objects: _DurableObjects = Field(default_factory=_DurableObjects)
    workflows: list[WorkflowBinding] = []
    queues: _Queues = Field(default_factory=_Queues)
    triggers: _Triggers = Field(default_factory=_Triggers)
    ai: dict[str, Any] | None = None
    vectorize: list[dict[str, Any]] = []
    browser: dict[str, Any] | None = None
    images: dict[str, Any] | None = None

    def remote_only(self) -> dict[str, str]:
        """The bindings only Cloudflare serves: name -> wrangler key (``"ai"``, ...)."""
        out: dict[str, str] = {}
        for key in REMOTE_ONLY_KEYS:
            for name in _binding_names(getattr(self, key)):
                out[name] = key
        return out

    assets: Assets | None = None
    services: list[ServiceBinding] = []
    worker_loaders: list[WorkerLoaderBinding] = []


class WranglerConfig(WranglerEnv):
    """A whole wrangler configuration: the top level, its environments and DO migrations.

    Example::

        config = load_wrangler("wrangler.toml")
        config.name, sorted(config.env), config.warnings
    """

    env: dict[str, WranglerEnv] = {}
    migrations: list[DurableObjectMigration] = []
    dev: DevSettings = Field(default_factory=DevSettings)
    source: str = "wrangler.toml"
    warnings: list[str] = []

    @property
    def root(self) -> Path:
        """The folder of the configuration file (``main`` is relative to it)."""
        return Path(self.source).resolve().parent

    def for_stage(self, stage: str) -> WranglerEnv:
        """The environment named ``stage`` with wrangler's inheritance applied, or the top
        level when there is no such ``[env.*]`` section."""
        top = WranglerEnv.model_validate({k: getattr(self, k) for k in WranglerEnv.model_fields})
        if stage not in self.env:
            return top
        section = self.env[stage]
        values = {
            k: getattr(section, k)
            for k in section.model_fields_set
            if k in WranglerEnv.model_fields
        }
        for key in INHERITED:
            if key not in section.model_fields_set:
                values[key] = getattr(top, key)
        if "name" not in values and top.name:
            values["name"] = f"{top.name}-{stage}"
        return WranglerEnv.model_validate(values)


def find_wrangler(folder: str | Path = ".") -> Path | None:
    """The wrangler configuration file in ``folder``, if any (jsonc, json, then toml).

    Example::

        find_wrangler(".")   # Path('wrangler.toml') or None
    """
    for name in CONFIG_FILES:
        path = Path(folder) / name
        if path.is_file():
            return path
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", where=str(path), fix="check the path"
        ) from None
    if path.suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line, col = _toml_position(str(exc))
            raise ConfigError(
                f"{path} is not valid TOML: {exc}",
                where=f"{path}:{line}:{col}",
                fix="fix the syntax at that line and column",
            ) from None
    else:
        data = loads_jsonc(text, source=str(path))
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold an object at the top, not {type(data).__name__}",
            where=f"{path}:1:1",
            fix="write the configuration as one object",
        )
    return data


def _toml_position(message: str) -> tuple[int, int]:
    import re

    match = re.search(r"line (\d+), column (\d+)", message)
    return (int(match.group(1)), int(match.group(2))) if match else (1, 1)


_IGNORED_SILENTLY = {"$schema"}


def _unsupported(data: dict[str, Any], model: type[BaseModel], prefix: str) -> list[str]:
    """Keys of ``data`` that ``model`` (and its nested models) do not know."""
    found: list[str] = []
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key in _IGNORED_SILENTLY:
            continue
        field = model.model_fields.get(key)
        if key in REMOTE_ONLY_KEYS:
            names = _binding_names(value)
            found.append(
                f"{where}: {REMOTE_ONLY_KEYS[key]} ({', '.join(names) or key}) runs only on "
                "Cloudflare; locally the worker starts and the first use of "
                f"{' or '.join(f'env.{n}' for n in names) or 'the binding'} raises an error"
            )
            continue
        if field is None:
            if key in KNOWN_BINDING_KEYS:
                names = _binding_names(value)
                found.append(
                    f"{where}: {KNOWN_BINDING_KEYS[key]} ({', '.join(names) or key}) cannot "
                    "be provided by the local target; the worker runs without "
                    + ("these bindings" if len(names) != 1 else f"self.env.{names[0]}")
                )
            else:
                found.append(f"{where}: not supported by alchemy-nb, ignored")
            continue
        inner = _inner_model(field.annotation)
        if inner is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    found.extend(_unsupported(item, inner, f"{where}[{i}]."))
        elif isinstance(value, dict) and key != "vars":
            found.extend(_unsupported(value, inner, f"{where}."))
    return found


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _binding_names(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    names = []
    for item in items:
        if isinstance(item, dict):
            name = item.get("binding") or item.get("name")
            if isinstance(name, str):
                names.append(name)
    return names


def load_wrangler(path: str | Path, *, warn: bool = True) -> WranglerConfig:
    """Read and validate a wrangler configuration file.

    Unsupported keys are collected in ``.warnings`` and, with ``warn=True``, logged once
    to the ``alchemy_nb.wrangler`` logger (stderr by default). Errors are
    :class:`~alchemy_nb.errors.ConfigError` naming the file (and line and column for
    syntax errors).

    Example::

        config = load_wrangler("wrangler.jsonc")
        print(config.name, config.main)
    """
    file = Path(path)
    data = _read(file)
    warnings = _unsupported({k: v for k, v in data.items() if k != "env"}, WranglerConfig, "")
    envs = data.get("env") or {}
    if not isinstance(envs, dict):
        raise ConfigError(
            f"{file}: env must be a table of environments", where=str(file), fix="use [env.NAME]"
        )
    for name, section in envs.items():
        if isinstance(section, dict):
            for key in ("migrations", "env"):
                if key in section:
                    warnings.append(f"env.{name}.{key}: only allowed at the top level, ignored")
            warnings.extend(
                _unsupported(
                    {k: v for k, v in section.items() if k not in ("migrations", "env")},
                    WranglerEnv,
                    f"env.{name}.",
                )
            )
    try:
        config = WranglerConfig.model_validate({**data, "source": str(file), "warnings": warnings})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            problems.append(f"{key}: {err['msg']}")
        raise ConfigError(
            f"invalid wrangler configuration: {'; '.join(problems)}",
            where=str(file),
            fix="fix the keys named above (see wrangler's configuration reference)",
        ) from None
    if not config.name:
        raise ConfigError(
            f"{file} has no name", where=str(file), fix='add name = "my-worker" at the top'
        )
    for stage in ["", *config.env]:
        env = config.for_stage(stage)
        prefix = f"env.{stage}." if stage else ""
        for what, items in (
            ("durable_objects.bindings", env.durable_objects.bindings),
            ("workflows", env.workflows),
        ):
            for item in items:
                if item.script_name and item.script_name != env.name:
                    config.warnings.append(
                        f"{prefix}{what}: {item.class_name} is in script "
                        f"{item.script_name!r}, which the local target does not run; the "
                        "class is looked up in this worker"
                    )
    if warn:
        for line in config.warnings:
            log.warning("%s: %s", file.name, line)
    return config


def var_text(value: Any) -> str:
    """A var as the plain text a local worker sees (JSON for non-strings)."""
    return value if isinstance(value, str) else json.dumps(value)
