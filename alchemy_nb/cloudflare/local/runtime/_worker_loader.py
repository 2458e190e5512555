"""The Worker Loader binding: workers made at run time from source (dynamic workers).

``env.LOADER.get(id, callback)`` returns a stub for the worker whose code ``callback()``
gives (a dict, or an awaitable of one)::

    {"compatibilityDate": "2025-09-01", "mainModule": "main.py",
     "modules": {"main.py": SOURCE, "helpers.py": SOURCE}, "env": {"NAME": value}}

The code is loaded once per ``id`` and cached (the callback is not called again for an
id already loaded); ``env.LOADER.load(code)`` loads without caching. The stub's
``getEntrypoint(name=None)`` gives a fetcher: ``await fetcher.fetch(request)`` runs the
loaded worker's fetch handler, any other method is an RPC call on its entrypoint class.

Locally the modules run in this worker's process (CPython, no isolate): Python modules
only (``"x.py": source`` or ``{"py": source}``); a JavaScript module is an error that
says so. ``env`` values are passed as they are, bindings included.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import js
import workers
from pyodide.ffi import JsException, JsProxy

from ._env import BindingContext, Env, register_binding_type
from ._loader import Handlers, find_handlers

__all__ = ["WorkerLoader"]


class _Loaded:
    def __init__(self, module: Any, env: Env, handlers: Handlers, ctx: Any) -> None:
        self.module = module
        self.env = env
        self.handlers = handlers
        self.ctx = ctx


class WorkerStub:
    """A loaded (or loading) dynamic worker: ``getEntrypoint(name=None)``."""

    def __init__(self, loader: WorkerLoader, worker_id: str | None, code: Any) -> None:
        self._loader = loader
        self._id = worker_id
        self._code = code  # the WorkerCode, or a callback giving it
        self._loaded: _Loaded | None = None

    def __repr__(self) -> str:
        return f"WorkerStub({self._id!r})"

    def getEntrypoint(self, name: str | None = None, options: Any = None) -> Fetcher:
        """The fetcher for entrypoint ``name`` (``Default`` / the fetch handler if None)."""
        return Fetcher(self, name)

    async def _get(self) -> _Loaded:
        if self._loaded is None:
            code = self._code
            if callable(code):
                code = code()
            if inspect.isawaitable(code):
                code = await code
            self._loaded = self._loader._load(self._id, code)
        return self._loaded


class Fetcher:
    """An entrypoint of a dynamic worker: ``await fetch(request)``, ``await method(...)``."""

    def __init__(self, stub: WorkerStub, entrypoint: str | None) -> None:
        self._stub = stub
        self._entrypoint = entrypoint

    async def fetch(self, input: Any, init: Any = None, **kwargs: Any) -> workers.Response:
        """Run the loaded worker's fetch handler with ``input`` (a Request or a URL)."""
        from ._app import _as_js_response

        loaded = await self._stub._get()
        source = getattr(input, "js_object", input)
        if isinstance(source, js.Request) and not (init or kwargs):
            request = source
        else:
            if isinstance(source, str) and not js.URL.canParse(source):
                source = js.URL(source, "http://dynamic-worker.local").href
            request = js.Request(source, init, **kwargs)
        if self._entrypoint is not None:
            cls = _entrypoint_class(loaded, self._entrypoint)
            result = cls(loaded.ctx, loaded.env).fetch(workers.Request._wrap(request))
        elif loaded.handlers.fetch is None:
            raise JsException("The dynamic worker does not export a fetch() handler.", "TypeError")
        else:
            result = loaded.handlers.fetch(request)
        if inspect.isawaitable(result):
            result = await result
        return workers.FetchResponse._wrap(_as_js_response(result))

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)

        async def rpc(*args: Any, **kwargs: Any) -> Any:
            loaded = await self._stub._get()
            cls = _entrypoint_class(loaded, self._entrypoint or "Default")
            fn = getattr(cls(loaded.ctx, loaded.env), method, None)
            if fn is None or not callable(fn):
                raise JsException(
                    f'The RPC receiver does not implement the method "{method}".', "TypeError"
                )
            result = fn(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return rpc


def _entrypoint_class(loaded: _Loaded, name: str) -> Any:
    cls = getattr(loaded.module, name, None)
    if not isinstance(cls, type):
        raise JsException(f"The dynamic worker has no entrypoint class {name!r}.", "TypeError")
    return cls


class WorkerLoader:
    """``env.LOADER``: ``get(id, callback)`` (cached per id) and ``load(code)``.

    Example::

        worker = self.env.LOADER.get("hello-v1", lambda: {
            "compatibilityDate": "2025-09-01",
            "mainModule": "main.py",
            "modules": {"main.py": SOURCE},
        })
        return await worker.getEntrypoint().fetch(request)
    """

    def __init__(self, name: str, owner: str) -> None:
        self._name = name
        self._owner = owner
        self._stubs: dict[str, WorkerStub] = {}
        self._folders: list[Path] = []
        self._count = 0

    def __repr__(self) -> str:
        return f"WorkerLoader({self._name!r}, {len(self._stubs)} cached)"

    def get(self, worker_id: str, callback: Any) -> WorkerStub:
        """The worker ``worker_id``; ``callback()`` gives its code the first time only."""
        key = str(worker_id)
        stub = self._stubs.get(key)
        if stub is None:
            if not callable(callback):
                raise JsException("LOADER.get(id, callback): the callback is not callable.")
            stub = self._stubs[key] = WorkerStub(self, key, callback)
        return stub

    def load(self, code: Any) -> WorkerStub:
        """A fresh worker from ``code`` (not cached)."""
        return WorkerStub(self, None, code)

    def _load(self, worker_id: str | None, code: Any) -> _Loaded:
        if isinstance(code, JsProxy):
            code = code.to_py()
        if not isinstance(code, dict):
            raise JsException("The worker code must be an object with mainModule and modules.")
        main = code.get("mainModule")
        modules = code.get("modules") or {}
        if not isinstance(main, str) or main not in modules:
            raise JsException(
                f"Dynamic worker {worker_id!r}: mainModule {main!r} is not one of its modules"
                f" ({', '.join(sorted(modules)) or 'none'})",
                "TypeError",
            )
        self._count += 1
        digest = hashlib.sha256(f"{worker_id}:{self._count}".encode()).hexdigest()[:12]
        folder = Path(tempfile.mkdtemp(prefix=f"alchemy-nb-dynamic-{digest}-"))
        self._folders.append(folder)
        for name, module in modules.items():
            source = _python_source(worker_id, name, module)
            path = folder / name
            if not path.resolve().is_relative_to(folder.resolve()):
                raise JsException(f"Dynamic worker {worker_id!r}: bad module name {name!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
        module = _import(folder, folder / main, f"_dynamic_worker_{digest}", worker_id)
        bindings = code.get("env") or {}
        if isinstance(bindings, JsProxy):
            bindings = bindings.to_py()
        env = Env(dict(bindings), dict.fromkeys(bindings, "dynamic"))
        from ._app import ExecutionContext

        ctx = ExecutionContext(f"{self._owner}/{worker_id or 'dynamic'}")
        config: Any = {
            "name": f"{self._owner}:{worker_id or 'dynamic'}",
            "script_name": str(worker_id or "dynamic"),
            "entry": str(folder / main),
        }
        try:
            handlers = find_handlers(module, config, env, ctx)
        except Exception as exc:
            raise JsException(f"Dynamic worker {worker_id!r}: {exc}", "TypeError") from exc
        return _Loaded(module, env, handlers, ctx)

    def close(self) -> None:
        for folder in self._folders:
            shutil.rmtree(folder, ignore_errors=True)
        self._folders.clear()
        self._stubs.clear()


def _python_source(worker_id: str | None, name: str, module: Any) -> str:
    if isinstance(module, JsProxy):
        module = module.to_py()
    if isinstance(module, dict):
        if "py" in module:
            return str(module["py"])
        kinds = ", ".join(sorted(module))
        raise JsException(
            f"Dynamic worker {worker_id!r}: module {name!r} is {kinds}; the local runtime runs"
            " Python modules only ({'py': source} or a .py name with its source)",
            "TypeError",
        )
    if isinstance(module, str) and name.endswith(".py"):
        return module
    raise JsException(
        f"Dynamic worker {worker_id!r}: module {name!r} is not a Python module; the local"
        " runtime runs Python modules only (name it *.py)",
        "TypeError",
    )


def _import(folder: Path, path: Path, name: str, worker_id: str | None) -> Any:
    """Import ``path`` with its sibling modules importable, then forget those siblings
    (another dynamic worker may have modules of the same names)."""
    before = set(sys.modules)
    sys.path.insert(1, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise JsException(
                f"Dynamic worker {worker_id!r} failed to load: {type(exc).__name__}: {exc}",
                "Error",
            ) from exc
    finally:
        sys.path.remove(str(folder))
        for added in set(sys.modules) - before:
            file = getattr(sys.modules[added], "__file__", None) or ""
            if added == name or file.startswith(str(folder)):
                sys.modules.pop(added, None)
    return module


def _worker_loader(ctx: BindingContext) -> object:
    loader = WorkerLoader(ctx.name, ctx.worker["name"])
    ctx.on_shutdown(loader.close)
    return loader


register_binding_type("worker_loader", _worker_loader)
