"""Workflows on the local target: durable steps that survive a crash.

``env.FLOW.create(params=...)`` records an instance and starts ``run(event, step)`` of the
workflow class in the worker that hosts it. Every ``step.do`` result is stored (SQLite)
before the workflow goes on, so an instance resumed after the process died — the
supervisor restarts it, and the host resumes unfinished instances — returns the stored
results of completed steps instead of running them again. ``step.sleep`` is durable too.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import sqlite3
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

_BACKGROUND: set[asyncio.Future[Any]] = set()  # keep waitUntil work alive until done

__all__ = ["WorkflowBinding", "WorkflowEngine"]

_UNITS = {
    "millisecond": 0.001,
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 604800,
}
DEFAULT_RETRIES = {"limit": 5, "delay": 10_000, "backoff": "exponential"}


def seconds(duration: Any) -> float:
    """``"10 seconds"``, ``"1 minute"`` or milliseconds (a number) -> seconds."""
    if isinstance(duration, int | float):
        return float(duration) / 1000
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*", str(duration))
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"invalid duration {duration!r}: use e.g. '10 seconds' or milliseconds")
    return float(match.group(1)) * _UNITS[match.group(2)]


class _Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(
            "CREATE TABLE IF NOT EXISTS instances (id TEXT PRIMARY KEY, workflow TEXT, "
            " status TEXT, params TEXT, output TEXT, error TEXT, created REAL, updated REAL);"
            "CREATE TABLE IF NOT EXISTS steps (instance TEXT, name TEXT, result TEXT, "
            " PRIMARY KEY (instance, name));"
            "CREATE TABLE IF NOT EXISTS sleeps (instance TEXT, name TEXT, wake REAL, "
            " PRIMARY KEY (instance, name));"
        )

    def instance(self, iid: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, status, params, output, error FROM instances WHERE id = ?", (iid,)
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row[0],
            "status": row[1],
            "params": json.loads(row[2]),
            "output": json.loads(row[3]) if row[3] else None,
            "error": row[4],
        }

    def set_status(
        self, iid: str, status: str, *, output: Any = None, error: str | None = None
    ) -> None:
        self.conn.execute(
            "UPDATE instances SET status = ?, output = ?, error = ?, updated = ? WHERE id = ?",
            (status, json.dumps(output) if output is not None else None, error, time.time(), iid),
        )


class Event:
    """What ``run`` receives: ``payload`` (the params), ``timestamp``, ``instanceId``."""

    def __init__(self, payload: Any, timestamp: float, instance_id: str) -> None:
        self.payload = payload
        self.params = payload
        self.timestamp = timestamp
        self.instanceId = instance_id


class Step:
    """``step.do`` (call or decorator form), ``step.sleep``, ``step.sleep_until``."""

    def __init__(self, store: _Store, iid: str) -> None:
        self._store = store
        self._iid = iid
        self._seen: dict[str, int] = {}

    def _key(self, name: str) -> str:
        count = self._seen.get(name, 0)
        self._seen[name] = count + 1
        return name if count == 0 else f"{name}#{count}"

    def do(
        self,
        name: str,
        *args: Any,
        depends: list[Any] | None = None,
        concurrent: bool = False,
        config: dict[str, Any] | None = None,
    ) -> Any:
        """``await step.do("name", fn)`` / ``step.do("name", config, fn)``, or as a decorator:
        ``@step.do("name")`` then ``await fn()``."""
        fn = next((a for a in args if callable(a)), None)
        conf = next((a for a in args if isinstance(a, dict)), config) or {}
        if fn is None:  # decorator form

            def decorate(func: Callable[..., Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
                async def run_step() -> Any:
                    inputs: list[Any] = []
                    if depends:
                        pending = [d() for d in depends]
                        inputs = (
                            list(await asyncio.gather(*pending))
                            if concurrent
                            else [await p for p in pending]
                        )
                    return await self._run(name, func, inputs, conf)

                run_step.__name__ = getattr(func, "__name__", "step")
                return _Memo(run_step)

            return decorate
        return self._run(name, fn, [], conf)

    async def _run(
        self, name: str, fn: Callable[..., Any], inputs: list[Any], conf: dict[str, Any]
    ) -> Any:
        key = self._key(name)
        row = self._store.conn.execute(
            "SELECT result FROM steps WHERE instance = ? AND name = ?", (self._iid, key)
        ).fetchone()
        if row is not None:
            return json.loads(row[0])  # completed before: not run again
        retries = {**DEFAULT_RETRIES, **(conf.get("retries") or {})}
        attempt = 0
        while True:
            try:
                result = fn(*inputs)
                if inspect.isawaitable(result):
                    timeout = conf.get("timeout")
                    result = await (
                        asyncio.wait_for(result, seconds(timeout)) if timeout else result
                    )
                break
            except Exception:
                if attempt >= int(retries["limit"]):
                    raise
                delay = seconds(retries["delay"])
                backoff = retries.get("backoff", "constant")
                if backoff == "exponential":
                    delay *= 2**attempt
                elif backoff == "linear":
                    delay *= attempt + 1
                attempt += 1
                await asyncio.sleep(delay)
        self._store.conn.execute(
            "INSERT OR REPLACE INTO steps (instance, name, result) VALUES (?, ?, ?)",
            (self._iid, key, json.dumps(result)),
        )
        return result

    async def sleep(self, name: str, duration: Any) -> None:
        await self._sleep_until(name, time.time() + seconds(duration))

    async def sleep_until(self, name: str, timestamp: Any) -> None:
        when = timestamp.timestamp() if hasattr(timestamp, "timestamp") else float(timestamp)
        await self._sleep_until(name, when if when < 1e11 else when / 1000)

    sleepUntil = sleep_until

    async def _sleep_until(self, name: str, wake: float) -> None:
        key = self._key(name)
        row = self._store.conn.execute(
            "SELECT wake FROM sleeps WHERE instance = ? AND name = ?", (self._iid, key)
        ).fetchone()
        if row is None:
            self._store.conn.execute(
                "INSERT INTO sleeps (instance, name, wake) VALUES (?, ?, ?)",
                (self._iid, key, wake),
            )
        else:
            wake = row[0]
        remaining = wake - time.time()
        if remaining > 0:
            self._store.set_status(self._iid, "waiting")
            await asyncio.sleep(remaining)
            self._store.set_status(self._iid, "running")


class _Memo:
    """A decorated step: awaiting it runs (or replays) the step once per call site."""

    def __init__(self, run: Callable[[], Awaitable[Any]]) -> None:
        self._run = run
        self._task: asyncio.Future[Any] | None = None

    def __call__(self) -> Awaitable[Any]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        return self._task


class WorkflowEngine:
    """Runs the instances of one workflow class in the worker that hosts it."""

    def __init__(self, name: str, cls: type[Any], path: Path, env: Callable[[], Any]) -> None:
        self.name = name
        self.cls = cls
        self.store = _Store(path)
        self.env = env
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, iid: str) -> None:
        if iid not in self.tasks or self.tasks[iid].done():
            self.tasks[iid] = asyncio.ensure_future(self._execute(iid))

    async def poll(self, interval: float = 0.1) -> None:
        """Start instances created by other workers' bindings (they share the file)."""
        while True:
            rows = self.store.conn.execute(
                "SELECT id FROM instances WHERE status = 'queued' AND workflow = ?",
                (self.name,),
            ).fetchall()
            for (iid,) in rows:
                self.start(iid)
            await asyncio.sleep(interval)

    def resume_unfinished(self) -> None:
        """After a restart: carry on with every instance that had not finished."""
        rows = self.store.conn.execute(
            "SELECT id FROM instances WHERE status IN ('queued', 'running', 'waiting') "
            "AND workflow = ? ORDER BY created",
            (self.name,),
        ).fetchall()
        for (iid,) in rows:
            self.start(iid)

    async def _execute(self, iid: str) -> None:
        info = self.store.instance(iid)
        if info is None:
            return
        self.store.set_status(iid, "running")
        created = self.store.conn.execute(
            "SELECT created FROM instances WHERE id = ?", (iid,)
        ).fetchone()[0]
        try:
            obj = self.cls(_Ctx(), self.env())
            output = await obj.run(Event(info["params"], created, iid), Step(self.store, iid))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            traceback.print_exc()
            self.store.set_status(iid, "errored", error=f"{type(exc).__name__}: {exc}")
            return
        self.store.set_status(iid, "complete", output=output)

    def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        self.store.conn.close()


class _Ctx:
    def waitUntil(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)


class WorkflowInstance:
    """``await instance.status()``, ``pause``, ``resume``, ``terminate``, ``restart``."""

    def __init__(self, binding: WorkflowBinding, iid: str) -> None:
        self._binding = binding
        self.id = iid

    async def status(self) -> Any:
        info = self._binding._store().instance(self.id)
        if info is None:
            raise ValueError(f"instance.not_found: no workflow instance {self.id!r}")
        out: dict[str, Any] = {"status": info["status"], "output": info["output"]}
        if info["error"]:
            out["error"] = {"name": "Error", "message": info["error"]}
        return _js_object(out)

    async def terminate(self) -> None:
        engine = self._binding._engine
        if engine is not None and self.id in engine.tasks:
            engine.tasks[self.id].cancel()
        self._binding._store().set_status(self.id, "terminated")

    async def restart(self) -> None:
        store = self._binding._store()
        store.conn.execute("DELETE FROM steps WHERE instance = ?", (self.id,))
        store.conn.execute("DELETE FROM sleeps WHERE instance = ?", (self.id,))
        store.set_status(self.id, "queued")
        self._binding._kick(self.id)

    async def pause(self) -> None:
        await self.terminate()
        self._binding._store().set_status(self.id, "paused")

    async def resume(self) -> None:
        self._binding._store().set_status(self.id, "queued")
        self._binding._kick(self.id)


class WorkflowBinding:
    """``env.FLOW``: ``create``, ``createBatch``, ``get``."""

    def __init__(self, name: str, path: Path, engine: WorkflowEngine | None) -> None:
        self._name = name
        self._path = path
        self._engine = engine
        self._own_store: _Store | None = None

    def _store(self) -> _Store:
        if self._engine is not None:
            return self._engine.store
        if self._own_store is None:
            self._own_store = _Store(self._path)
        return self._own_store

    def _kick(self, iid: str) -> None:
        if self._engine is not None:
            self._engine.start(iid)

    async def create(
        self, options: dict[str, Any] | None = None, *, id: str | None = None, params: Any = None
    ) -> WorkflowInstance:
        opts = dict(options or {})
        iid = str(opts.get("id", id) or uuid.uuid4())
        payload = opts.get("params", params)
        store = self._store()
        try:
            store.conn.execute(
                "INSERT INTO instances (id, workflow, status, params, created, updated) "
                "VALUES (?, ?, 'queued', ?, ?, ?)",
                (iid, self._name, json.dumps(_to_py(payload)), time.time(), time.time()),
            )
        except sqlite3.IntegrityError:
            raise ValueError(f"instance.already_exists: {iid!r}") from None
        self._kick(iid)
        return WorkflowInstance(self, iid)

    async def createBatch(self, batch: list[dict[str, Any]]) -> list[WorkflowInstance]:
        return [await self.create(item) for item in batch]

    async def get(self, iid: str) -> WorkflowInstance:
        if self._store().instance(iid) is None:
            raise ValueError(f"instance.not_found: no workflow instance {iid!r}")
        return WorkflowInstance(self, iid)

    def close(self) -> None:
        if self._own_store is not None:
            self._own_store.conn.close()


def _to_py(value: Any) -> Any:
    to_py = getattr(value, "to_py", None)
    return to_py() if callable(to_py) else value


def _js_object(data: dict[str, Any]) -> Any:
    """``data`` as a JavaScript object (``Response.json`` writes it compactly, as
    Cloudflare's runtime does for the objects its APIs return)."""
    from . import install_shim

    install_shim()  # a no-op in a worker process, where the shim is first already
    from pyodide.ffi import JsObject

    return JsObject._wrap(data)
