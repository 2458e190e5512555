"""What a local worker process is told: the worker's code and its bindings.

The deploying side (the Worker provider, through the stage's supervisor) writes one
``WorkerConfig`` per worker version as JSON into a file only the user can read (secret
bindings are in it), and starts ``python -m alchemy_nb.cloudflare.local._host CONFIG``.
The host builds the ASGI app with ``alchemy_nb.cloudflare.local.runtime.create_app``.

Paths are absolute. Every data path lives under the stage's local data folder,
``<app root>/.alchemy/<app>/<stage>/local/``, and is created by the resource's provider
before any worker uses it.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

__all__ = [
    "AssetsBinding",
    "AssetsConfig",
    "BindingConfig",
    "D1Binding",
    "DurableObjectBinding",
    "KVBinding",
    "QueueBinding",
    "R2Binding",
    "RemoteOnlyBinding",
    "ServiceBinding",
    "TextBinding",
    "WorkerConfig",
    "WorkerLoaderBinding",
    "WorkflowBinding",
]


class TextBinding(TypedDict):
    type: Literal["plain_text", "secret_text"]
    value: str


class D1Binding(TypedDict):
    type: Literal["d1"]
    path: str  # the SQLite file
    database_name: str


class KVBinding(TypedDict):
    type: Literal["kv_namespace"]
    path: str  # the SQLite file holding the namespace


class R2Binding(TypedDict):
    type: Literal["r2_bucket"]
    path: str  # a folder: objects and their metadata
    bucket_name: str


class DurableObjectBinding(TypedDict):
    type: Literal["durable_object_namespace"]
    class_name: str
    path: str  # a folder: one SQLite storage file per object id
    script_name: NotRequired[str]  # the worker that defines the class (default: this one)


class WorkflowBinding(TypedDict):
    type: Literal["workflow"]
    class_name: str
    workflow_name: str
    path: str  # the SQLite file holding instances and memoized steps
    script_name: NotRequired[str]


class QueueBinding(TypedDict):
    type: Literal["queue"]
    queue_name: str
    path: str  # the SQLite file holding messages


class ServiceBinding(TypedDict):
    type: Literal["service"]
    url: NotRequired[str]  # the other worker's local URL (a worker of the same app)
    service: NotRequired[str]  # else its script name, found in the local dev registry
    entrypoint: NotRequired[str]  # the class whose methods RPC calls reach (default Default)
    rpc_token: NotRequired[str]  # proves an RPC call comes from a worker of this machine


class AssetsBinding(TypedDict):
    type: Literal["assets"]
    directory: str
    html_handling: str
    not_found_handling: str


class WorkerLoaderBinding(TypedDict):
    type: Literal["worker_loader"]


class AssetsConfig(TypedDict):
    directory: str  # absolute
    html_handling: str  # auto-trailing-slash | force-trailing-slash | drop-trailing-slash | none
    not_found_handling: str  # none | 404-page | single-page-application
    run_worker_first: bool | list[str]


class RemoteOnlyBinding(TypedDict):
    type: Literal["remote_only"]
    service: str  # the wrangler key of what only Cloudflare serves: "ai", "vectorize", ...


BindingConfig = (
    TextBinding
    | D1Binding
    | KVBinding
    | R2Binding
    | DurableObjectBinding
    | WorkflowBinding
    | QueueBinding
    | ServiceBinding
    | RemoteOnlyBinding
    | AssetsBinding
    | WorkerLoaderBinding
)


class WorkerConfig(TypedDict):
    app: str
    stage: str
    name: str  # the worker's resource id
    script_name: str  # its physical name, e.g. "demo-api-dev"
    entry: str  # absolute path of the worker's Python module
    compatibility_date: str
    compatibility_flags: list[str]
    bindings: dict[str, BindingConfig]
    url: str  # where it is served, e.g. "http://127.0.0.1:8787"
    version: str  # digest of code + config: changes on every redeploy
    queue_consumers: NotRequired[list[QueueBinding]]  # the queues this worker consumes
    crons: NotRequired[list[str]]
    site_packages: NotRequired[str]  # the worker's own dependencies (see _deps.py)
    assets: NotRequired[AssetsConfig]  # static assets served before (or after) the worker
    rpc_token: NotRequired[str]  # what service-binding RPC calls to this worker must carry
    python: NotRequired[str]  # another interpreter than alchemy-nb's (requires-python)
    python_path: NotRequired[list[str]]  # its PYTHONPATH: alchemy-nb's code, the deps
