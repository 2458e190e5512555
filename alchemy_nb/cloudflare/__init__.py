"""Cloudflare resource kinds: Workers, D1, KV, R2, Durable Objects, Workflows, Queues.

The same kinds deploy to the stage's target: ``local`` (the default: served for real on
127.0.0.1, offline) or, later, ``cloudflare`` (the real account).

Example::

    from alchemy_nb.cloudflare import D1Database, KVNamespace, R2Bucket, Worker

    @app.program
    def infra(stage):
        db = D1Database("db", migrations_dir="migrations")
        cache = KVNamespace("cache")
        files = R2Bucket("files")
        api = Worker("api", entry="src/worker.py",
                     bindings={"DB": db, "CACHE": cache, "FILES": files})
        return {"url": api.url}
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # worker processes import alchemy_nb.cloudflare.local without the engine
if TYPE_CHECKING:
    from typing import Any

    from ._d1 import D1Database, D1DatabaseOutputs, D1DatabaseProps
    from ._durable_object import (
        DurableObjectNamespace,
        DurableObjectNamespaceOutputs,
        DurableObjectNamespaceProps,
    )
    from ._kv import KVNamespace, KVNamespaceOutputs, KVNamespaceProps
    from ._queue import Queue, QueueOutputs, QueueProps
    from ._r2 import R2Bucket, R2BucketOutputs, R2BucketProps
    from ._worker import Worker, WorkerOutputs, WorkerProps
    from ._workflow import Workflow, WorkflowOutputs, WorkflowProps

__all__ = [
    "D1Database",
    "D1DatabaseOutputs",
    "D1DatabaseProps",
    "DurableObjectNamespace",
    "DurableObjectNamespaceOutputs",
    "DurableObjectNamespaceProps",
    "KVNamespace",
    "KVNamespaceOutputs",
    "KVNamespaceProps",
    "Queue",
    "QueueOutputs",
    "QueueProps",
    "R2Bucket",
    "R2BucketOutputs",
    "R2BucketProps",
    "Worker",
    "WorkerOutputs",
    "WorkerProps",
    "Workflow",
    "WorkflowOutputs",
    "WorkflowProps",
]

_LAZY = {
    "D1Database": "alchemy_nb.cloudflare._d1",
    "D1DatabaseOutputs": "alchemy_nb.cloudflare._d1",
    "D1DatabaseProps": "alchemy_nb.cloudflare._d1",
    "DurableObjectNamespace": "alchemy_nb.cloudflare._durable_object",
    "DurableObjectNamespaceOutputs": "alchemy_nb.cloudflare._durable_object",
    "DurableObjectNamespaceProps": "alchemy_nb.cloudflare._durable_object",
    "KVNamespace": "alchemy_nb.cloudflare._kv",
    "KVNamespaceOutputs": "alchemy_nb.cloudflare._kv",
    "KVNamespaceProps": "alchemy_nb.cloudflare._kv",
    "Queue": "alchemy_nb.cloudflare._queue",
    "QueueOutputs": "alchemy_nb.cloudflare._queue",
    "QueueProps": "alchemy_nb.cloudflare._queue",
    "R2Bucket": "alchemy_nb.cloudflare._r2",
    "R2BucketOutputs": "alchemy_nb.cloudflare._r2",
    "R2BucketProps": "alchemy_nb.cloudflare._r2",
    "Worker": "alchemy_nb.cloudflare._worker",
    "WorkerOutputs": "alchemy_nb.cloudflare._worker",
    "WorkerProps": "alchemy_nb.cloudflare._worker",
    "Workflow": "alchemy_nb.cloudflare._workflow",
    "WorkflowOutputs": "alchemy_nb.cloudflare._workflow",
    "WorkflowProps": "alchemy_nb.cloudflare._workflow",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alchemy_nb.cloudflare' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
