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
