"""The stateful bindings (Durable Objects, Workflows, Queues) and queue consumers.

Registered with :func:`register_binding_type` when the runtime is imported. A Durable
Object class or a Workflow class runs in the worker that defines it; other workers may
bind the same Workflow (instances are shared through its SQLite file, and the hosting
worker runs them), while binding a Durable Object class of another worker is not served
locally yet and says so.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

from ._durable_objects import Namespace
from ._env import BindingContext, register_binding_type
from ._errors import WorkerLoadError
from ._queues import QueueBinding, QueueConsumer
from ._workflows import WorkflowBinding, WorkflowEngine

__all__ = ["queue_handler", "start_queue_consumers"]


def _hosted(ctx: BindingContext) -> bool:
    script = ctx.config.get("script_name")
    return not script or script == ctx.worker["script_name"]


def _class(ctx: BindingContext, kind: str) -> Any:
    name = str(ctx.config["class_name"])
    cls = getattr(ctx.module, name, None)
    if not isinstance(cls, type):
        raise WorkerLoadError(
            f"{kind} binding {ctx.name!r} names class {name!r}, which "
            f"{ctx.worker['entry']} does not define",
            where=f"{ctx.worker['app']}/{ctx.worker['stage']}/{ctx.worker['name']}",
            fix=f"define `class {name}` in the worker module, or fix class_name=",
        )
    return cls


def _to_request(request: Any, init: Any = None) -> Any:
    import workers

    if isinstance(request, workers.Request):
        return request
    options = dict(init.to_py() if hasattr(init, "to_py") else init or {})
    return workers.Request(request, **options)


def _durable_object(ctx: BindingContext) -> object:
    if not _hosted(ctx):
        from ._env import UnsupportedBinding

        return UnsupportedBinding(ctx.name, "cross-script durable_object_namespace")
    namespace = Namespace(
        ctx.name,
        _class(ctx, "Durable Object"),
        Path(ctx.config["path"]),
        lambda: ctx.env,
        _to_request,
    )
    ctx.on_startup(namespace.start_alarms)  # alarms set before a restart fire again
    ctx.on_shutdown(namespace.close)
    return namespace


def _workflow(ctx: BindingContext) -> object:
    path = Path(ctx.config["path"])
    name = str(ctx.config["workflow_name"])
    engine = None
    if _hosted(ctx):
        engine = WorkflowEngine(name, _class(ctx, "Workflow"), path, lambda: ctx.env)
        tasks: list[asyncio.Task[None]] = []

        def start() -> None:
            engine.resume_unfinished()  # after a crash or a redeploy: carry on
            tasks.append(asyncio.ensure_future(engine.poll()))

        def stop() -> None:
            for task in tasks:
                task.cancel()
            engine.close()

        ctx.on_startup(start)
        ctx.on_shutdown(stop)
    binding = WorkflowBinding(name, path, engine)
    if engine is None:
        ctx.on_shutdown(binding.close)
    return binding


def _queue(ctx: BindingContext) -> object:
    producer = QueueBinding(Path(ctx.config["path"]))
    ctx.on_shutdown(producer.close)
    return producer


register_binding_type("durable_object_namespace", _durable_object)
register_binding_type("workflow", _workflow)
register_binding_type("queue", _queue)


def start_queue_consumers(config: Any, module: Any, env: Any, entrypoint: Any) -> list[Any]:
    """Consumers for the worker's ``queue_consumers``: ``Default.queue(batch)`` or
    ``on_queue(batch, env)``. Returns them started; call ``close()`` on each to stop."""
    queues = config.get("queue_consumers") or []
    if not queues:
        return []
    handler = queue_handler(config, module, env, entrypoint)
    consumers = []
    for queue in queues:
        consumer = QueueConsumer(queue["queue_name"], Path(queue["path"]), handler)
        consumer.start()
        consumers.append(consumer)
    return consumers


def queue_handler(config: Any, module: Any, env: Any, entrypoint: Any) -> Any:
    method = getattr(entrypoint, "queue", None) if entrypoint is not None else None
    if method is not None:
        count = len(
            [
                p
                for p in inspect.signature(method).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        )
        return (
            (lambda batch: method(batch))
            if count <= 1
            else (lambda batch: method(batch, env, None))
        )
    function = getattr(module, "on_queue", None)
    if function is not None:
        return lambda batch: function(batch, env)
    raise WorkerLoadError(
        f"worker {config['name']!r} consumes a queue but has no queue handler",
        where=config["entry"],
        fix="add `async def queue(self, batch)` to class Default (or `on_queue(batch, env)`)",
    )
