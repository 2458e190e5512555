"""Import a worker's module and find its handlers.

Handlers, in order of preference:

- ``class Default(WorkerEntrypoint)`` with ``async def fetch(self, request)`` (also
  ``fetch(self)``) and/or ``async def scheduled(self, controller, env, ctx)``; one
  instance per event, with ``self.env`` and ``self.ctx``;
- module-level ``on_fetch(request, env, ctx)`` and ``on_scheduled(controller, env, ctx)``,
  plain or decorated with ``@handler``; trailing parameters may be left out.

Each handler is compiled once into a one-argument callable, so a request costs one
call, not a signature inspection.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import js
import workers

from .._config import WorkerConfig
from ._errors import WorkerLoadError

__all__ = ["Handlers", "find_handlers", "import_worker"]

_SHIM_MODULES = frozenset({"workers", "js", "pyodide", "asgi", "wsgi"})

_HOW_TO_WRITE_A_HANDLER = (
    "define `class Default(WorkerEntrypoint)` with `async def fetch(self, request)`"
    " (from workers import WorkerEntrypoint, Response), or a module-level"
    " `async def on_fetch(request, env)`"
)


@dataclass(frozen=True, slots=True)
class Handlers:
    """A worker's entry points, each taking the event's one argument."""

    fetch: Callable[[js.Request], Any] | None
    """Called with the incoming JavaScript request; returns a response (or an awaitable)."""
    scheduled: Callable[[Any], Any] | None
    """Called with the ``ScheduledController``."""


def _where(config: WorkerConfig) -> str:
    return f"worker {config['name']!r} ({config['script_name']}), file {config['entry']}"


def import_worker(config: WorkerConfig) -> ModuleType:
    """Import ``config["entry"]`` under its file name, with its folder on ``sys.path``.

    The shim folder must already be first on ``sys.path``; the worker's folder goes
    right after it, so the worker's own modules import as they do on Cloudflare.
    """
    entry = Path(config["entry"])
    if not entry.is_file():
        raise WorkerLoadError(
            f"Worker {config['name']!r} has no module file at {entry}",
            where=_where(config),
            fix="check the Worker's `entry=` path (relative to the app's folder)",
        )
    name = entry.stem
    if name in _SHIM_MODULES or name in sys.stdlib_module_names or not name.isidentifier():
        raise WorkerLoadError(
            f"Worker {config['name']!r} has a module named {name!r}, which is not a valid"
            " worker module name (it would shadow a standard or runtime module)",
            where=_where(config),
            fix=f"rename {entry.name} (for example to entry.py or worker.py) and update `entry=`",
        )
    folder = str(entry.parent)
    site = config.get("site_packages")
    for path in (folder, site):
        while path and path in sys.path:
            sys.path.remove(path)
    sys.path.insert(1, folder)
    if site:  # the worker's own dependencies: after the shims and its folder, before ours
        sys.path.insert(2, site)

    sys.modules.pop(name, None)
    spec = importlib.util.spec_from_file_location(name, entry)
    if spec is None or spec.loader is None:
        raise WorkerLoadError(
            f"Worker {config['name']!r}: {entry} cannot be imported as a Python module",
            where=_where(config),
            fix="the entry must be a .py file",
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise _import_error(config, entry, exc) from exc
    return module


def _import_error(config: WorkerConfig, entry: Path, exc: BaseException) -> WorkerLoadError:
    where = f"{_where(config)}"
    if isinstance(exc, SyntaxError):
        where += f", line {exc.lineno}" if exc.filename == str(entry) else ""
        location = f"{exc.filename}:{exc.lineno}"
        fix = f"fix the syntax error at {location}, then deploy again"
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(entry)]
        if frames:
            where += f", line {frames[-1].lineno}"
        if isinstance(exc, ModuleNotFoundError):
            missing = exc.name or "the module"
            fix = (
                f"add {missing!r} to the worker's dependencies (its pyproject.toml) so the"
                " worker's environment has it, or fix the import; then deploy again"
            )
        else:
            fix = "fix the error in the module's top-level code (it runs at import); deploy again"
    return WorkerLoadError(
        f"Worker {config['name']!r} failed to import: {type(exc).__name__}: {exc}",
        where=where,
        fix=fix,
    )


def _positional_count(fn: Any, *, method: bool) -> int:
    """How many positional arguments ``fn`` takes (3 for ``*args``), ``self`` excluded."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 3
    if method and params:
        params = params[1:]
    count = 0
    for param in params:
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return 3
        if param.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return min(count, 3)


def find_handlers(module: ModuleType, config: WorkerConfig, env: Any, ctx: Any) -> Handlers:
    """Compile the module's handlers into one-argument callables bound to ``env``/``ctx``."""
    default = getattr(module, "Default", None)
    if default is not None:
        return _entrypoint_handlers(default, config, env, ctx)
    on_fetch = getattr(module, "on_fetch", None)
    on_scheduled = getattr(module, "on_scheduled", None)
    if on_fetch is None and on_scheduled is None:
        raise WorkerLoadError(
            f"Worker {config['name']!r} has no handler",
            where=_where(config),
            fix=_HOW_TO_WRITE_A_HANDLER,
        )
    for fn_name, fn in (("on_fetch", on_fetch), ("on_scheduled", on_scheduled)):
        if fn is not None and not callable(fn):
            raise WorkerLoadError(
                f"Worker {config['name']!r}: `{fn_name}` is not a function",
                where=_where(config),
                fix=_HOW_TO_WRITE_A_HANDLER,
            )
    return Handlers(
        fetch=None if on_fetch is None else _function_call(on_fetch, env, ctx),
        scheduled=None if on_scheduled is None else _function_call(on_scheduled, env, ctx),
    )


def _entrypoint_handlers(default: Any, config: WorkerConfig, env: Any, ctx: Any) -> Handlers:
    if not (isinstance(default, type) and issubclass(default, workers.WorkerEntrypoint)):
        raise WorkerLoadError(
            f"Worker {config['name']!r}: `Default` is not a subclass of WorkerEntrypoint",
            where=_where(config),
            fix="declare it as `class Default(WorkerEntrypoint)` with"
            " `from workers import WorkerEntrypoint`",
        )
    fetch = getattr(default, "fetch", None)
    scheduled = getattr(default, "scheduled", None)
    if fetch is None and scheduled is None:
        raise WorkerLoadError(
            f"Worker {config['name']!r}: class Default has no `fetch` (or `scheduled`) method",
            where=_where(config),
            fix="add `async def fetch(self, request)` to class Default",
        )
    return Handlers(
        fetch=None if fetch is None else _method_fetch(default, fetch, env, ctx),
        scheduled=None if scheduled is None else _method_call(default, scheduled, env, ctx),
    )


def _method_fetch(cls: type, fetch: Any, env: Any, ctx: Any) -> Callable[[js.Request], Any]:
    wrap = workers.Request._wrap
    count = _positional_count(fetch, method=True)
    if count == 0:
        return lambda request: cls(ctx, env).fetch()
    if count == 1:
        return lambda request: cls(ctx, env).fetch(wrap(request))
    if count == 2:
        return lambda request: cls(ctx, env).fetch(wrap(request), env)
    return lambda request: cls(ctx, env).fetch(wrap(request), env, ctx)


def _method_call(cls: type, method: Any, env: Any, ctx: Any) -> Callable[[Any], Any]:
    name = method.__name__
    count = _positional_count(method, method=True)
    args: tuple[Any, ...] = (env, ctx)[: max(count - 1, 0)]
    if count == 0:
        return lambda event: getattr(cls(ctx, env), name)()
    return lambda event: getattr(cls(ctx, env), name)(event, *args)


def _function_call(fn: Callable[..., Any], env: Any, ctx: Any) -> Callable[[Any], Any]:
    count = _positional_count(fn, method=False)
    if count == 0:
        return lambda event: fn()
    if count == 1:
        return fn
    if count == 2:
        return lambda event: fn(event, env)
    return lambda event: fn(event, env, ctx)
