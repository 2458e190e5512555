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

from .._lazy import lazy_exports

TYPE_CHECKING = False  # worker processes import alchemy_nb.cloudflare.local without the engine
if TYPE_CHECKING:
    from ._d1 import D1Database, D1DatabaseOutputs, D1DatabaseProps
    from ._durable_object import (
        DurableObjectNamespace,
        DurableObjectNamespaceOutputs,
        DurableObjectNamespaceProps,
    )
    from ._kv import KVNamespace, KVNamespaceOutputs, KVNamespaceProps
    from ._queue import Queue, QueueOutputs, QueueProps
    from ._r2 import R2Bucket, R2BucketOutputs, R2BucketProps
    from ._worker import Worker, WorkerAssets, WorkerOutputs, WorkerProps, WorkerService
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
    "WorkerAssets",
    "WorkerOutputs",
    "WorkerProps",
    "WorkerService",
    "Workflow",
    "WorkflowOutputs",
    "WorkflowProps",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "._d1": ["D1Database", "D1DatabaseOutputs", "D1DatabaseProps"],
        "._durable_object": [
            "DurableObjectNamespace",
            "DurableObjectNamespaceOutputs",
            "DurableObjectNamespaceProps",
        ],
        "._kv": ["KVNamespace", "KVNamespaceOutputs", "KVNamespaceProps"],
        "._queue": ["Queue", "QueueOutputs", "QueueProps"],
        "._r2": ["R2Bucket", "R2BucketOutputs", "R2BucketProps"],
        "._worker": ["Worker", "WorkerAssets", "WorkerOutputs", "WorkerProps", "WorkerService"],
        "._workflow": ["Workflow", "WorkflowOutputs", "WorkflowProps"],
    },
)
