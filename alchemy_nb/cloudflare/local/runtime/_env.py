"""A worker's ``env``: one attribute per binding, built by one factory per binding type.

Binding types this runtime implements: ``plain_text``, ``secret_text``, ``d1``,
``kv_namespace``, ``r2_bucket``, ``service``; ``assets`` and ``worker_loader`` register
themselves from ``_assets.py`` and ``_worker_loader.py``. ``durable_object_namespace``,
``workflow`` and ``queue`` are placeholders that raise ``NotImplementedError`` when
used; their implementation registers a factory with :func:`register_binding_type`.

A factory gets a :class:`BindingContext` (the binding's name and config, the worker's
config and module, the env being built) and returns the object the worker sees. It
registers cleanup with ``ctx.on_shutdown`` and background work with ``ctx.on_startup``.

Example::

    def make_queue(ctx: BindingContext) -> object:
        producer = QueueProducer(ctx.config["path"])
        ctx.on_shutdown(producer.close)
        return producer

    register_binding_type("queue", make_queue)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .._config import WorkerConfig
from ._d1 import D1Database
from ._errors import WorkerLoadError
from ._kv import KVNamespace
from ._r2 import R2Bucket
from ._remote import RemoteOnlyBinding
from ._service import ServiceBinding

__all__ = [
    "NEEDS_MODULE",
    "BindingContext",
    "BindingFactory",
    "Env",
    "UnsupportedBinding",
    "build_env",
    "register_binding_type",
]

Hook = Callable[[], Awaitable[None] | None]


class Env:
    """The bindings of a worker: ``env.DB``, ``env["DB"]``, ``"DB" in env``.

    A name that is not bound raises an error that lists the bindings there are.
    ``repr(env)`` shows binding names and kinds, never secret values.
    """

    def __init__(self, bindings: Mapping[str, Any], kinds: Mapping[str, str]) -> None:
        object.__setattr__(self, "_kinds", dict(kinds))
        self.__dict__.update(bindings)

    def _fill(self, bindings: Mapping[str, Any], kinds: Mapping[str, str]) -> None:
        """Set the bindings of an env made before them (``from workers import env`` at a
        module's top level gets this object while the module imports)."""
        self._kinds.update(kinds)
        self.__dict__.update(bindings)

    def _missing(self, name: str) -> str:
        bound = ", ".join(sorted(self._kinds)) or "none"
        return (
            f"env has no binding named {name!r} (this worker's bindings: {bound}). Fix: add it"
            " to the Worker's bindings and deploy again"
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_kinds":
            raise AttributeError(name)
        raise AttributeError(self._missing(name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("env is read-only: bindings come from the Worker's configuration")

    def __getitem__(self, name: str) -> Any:
        try:
            return self.__dict__[name]
        except KeyError:
            raise KeyError(self._missing(name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}=<{kind}>" for name, kind in self._kinds.items())
        return f"Env({inner})"


class UnsupportedBinding:
    """A binding whose type the local runtime does not implement yet.

    Creating the env succeeds; any use raises ``NotImplementedError`` naming the type.
    """

    def __init__(self, name: str, binding_type: str) -> None:
        self._name = name
        self._type = binding_type

    def _error(self) -> NotImplementedError:
        return NotImplementedError(
            f"{self._type} binding {self._name!r} is not supported by the local runtime yet"
        )

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        raise self._error()

    def __repr__(self) -> str:
        return f"<{self._type} binding {self._name!r} (not supported locally yet)>"


@dataclass
class BindingContext:
    """What a binding factory gets."""

    name: str
    """The binding's name in ``env``."""
    config: Mapping[str, Any]
    """The binding's entry in ``WorkerConfig["bindings"]``."""
    worker: WorkerConfig
    """The whole worker config."""
    module: ModuleType
    """The worker's imported module (for Durable Object / Workflow classes)."""
    env: Env | None = None
    """The env; set once every binding is built (factories may keep ``ctx`` to reach it)."""
    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)

    def on_startup(self, hook: Hook) -> None:
        """Run ``hook`` when the server starts (ASGI lifespan startup)."""
        self.startup.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        """Run ``hook`` when the app is closed (lifespan shutdown or ``aclose()``)."""
        self.shutdown.append(hook)


BindingFactory = Callable[[BindingContext], object]


def _text(ctx: BindingContext) -> object:
    return str(ctx.config["value"])


def _d1(ctx: BindingContext) -> object:
    db = D1Database(ctx.config["path"], ctx.config.get("database_name", ctx.name))
    ctx.on_shutdown(db.close)
    return db


def _kv(ctx: BindingContext) -> object:
    kv = KVNamespace(ctx.config["path"])
    ctx.on_shutdown(kv.close)
    return kv


def _r2(ctx: BindingContext) -> object:
    bucket = R2Bucket(ctx.config["path"], ctx.config.get("bucket_name", ctx.name))
    ctx.on_shutdown(bucket.close)
    return bucket


def _service(ctx: BindingContext) -> object:
    return ServiceBinding(
        ctx.name,
        ctx.config.get("url"),
        service=ctx.config.get("service"),
        entrypoint=ctx.config.get("entrypoint"),
        rpc_token=ctx.config.get("rpc_token"),
    )


def _remote_only(ctx: BindingContext) -> object:
    return RemoteOnlyBinding(ctx.name, str(ctx.config.get("service", "")))


def _unsupported(ctx: BindingContext) -> object:
    return UnsupportedBinding(ctx.name, str(ctx.config["type"]))


_FACTORIES: dict[str, BindingFactory] = {
    "plain_text": _text,
    "secret_text": _text,
    "d1": _d1,
    "kv_namespace": _kv,
    "r2_bucket": _r2,
    "service": _service,
    "remote_only": _remote_only,
    "durable_object_namespace": _unsupported,
    "workflow": _unsupported,
    "queue": _unsupported,
}


def register_binding_type(binding_type: str, factory: BindingFactory) -> None:
    """Make ``factory`` build bindings of ``binding_type`` (replacing any earlier one)."""
    _FACTORIES[binding_type] = factory


@dataclass
class BuiltEnv:
    """An env with the hooks its bindings registered."""

    env: Env
    startup: list[Hook]
    shutdown: list[Hook]


NEEDS_MODULE = frozenset({"durable_object_namespace", "workflow"})
"""Binding types built after the worker's module is imported (they look up its classes);
the others exist while it imports, so its top level may read ``env`` as on Cloudflare."""


def build_env(
    config: WorkerConfig,
    module: ModuleType,
    into: Env | None = None,
    *,
    types: Callable[[str], bool] | None = None,
) -> BuiltEnv:
    """Build the bindings of ``config`` (those whose type ``types`` accepts, default every
    one) into the env ``into``, if given; on failure close what was opened and raise."""
    bindings: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    contexts: list[BindingContext] = []
    for name, binding in config["bindings"].items():
        binding_type = str(binding.get("type"))
        if types is not None and not types(binding_type):
            continue
        factory = _FACTORIES.get(binding_type)
        if factory is None:
            _close_sync(contexts)
            raise WorkerLoadError(
                f"Worker {config['name']!r}: binding {name!r} has an unknown type {binding_type!r}",
                where=f"worker {config['name']!r} ({config['script_name']})",
                fix=f"use one of: {', '.join(sorted(_FACTORIES))}",
            )
        ctx = BindingContext(name=name, config=binding, worker=config, module=module)
        contexts.append(ctx)
        try:
            bindings[name] = factory(ctx)
        except WorkerLoadError:
            _close_sync(contexts)
            raise
        except Exception as exc:
            _close_sync(contexts)
            where = f"worker {config['name']!r} ({config['script_name']})"
            path = binding.get("path")
            if path:
                where += f", store {path}"
            raise WorkerLoadError(
                f"Worker {config['name']!r}: binding {name!r} ({binding_type}) could not be"
                f" opened: {type(exc).__name__}: {exc}",
                where=where,
                fix="deploy the resource the binding points to (it creates the store), then"
                " deploy the worker again",
            ) from exc
        kinds[name] = binding_type
    if into is not None:
        into._fill(bindings, kinds)
        env = into
    else:
        env = Env(bindings, kinds)
    for ctx in contexts:
        ctx.env = env
    return BuiltEnv(
        env=env,
        startup=[hook for ctx in contexts for hook in ctx.startup],
        shutdown=[hook for ctx in reversed(contexts) for hook in ctx.shutdown],
    )


def _close_sync(contexts: list[BindingContext]) -> None:
    for ctx in reversed(contexts):
        for hook in ctx.shutdown:
            result = hook()
            if result is not None and hasattr(result, "close"):
                result.close()  # an un-awaited coroutine: close it instead of leaking it
