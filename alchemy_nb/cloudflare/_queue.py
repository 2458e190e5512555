"""``cloudflare::Queue``: a message queue."""

from __future__ import annotations

from ..engine import Input, Outputs, Props, Provider, Resource, ResourceContext
from ._common import local_dir, local_id, on_cloudflare, physical_name, remove_sqlite, require_local

__all__ = ["Queue", "QueueOutputs", "QueueProps"]


class QueueProps(Props):
    """Props of :class:`Queue`."""

    name: Input[str] | None = None
    """The queue's name (default ``{app}-{id}-{stage}``); changing it replaces the queue."""


class QueueOutputs(Outputs):
    """Outputs of :class:`Queue`."""

    queue_id: str
    name: str


class QueueProvider(Provider[QueueProps, QueueOutputs]):
    """On the local target, a SQLite file of messages; on the cloudflare target, a queue
    (a name conflict is adopted with ``--adopt``)."""

    replace_on = frozenset({"name"})

    async def create(self, ctx: ResourceContext, props: QueueProps) -> QueueOutputs:
        if on_cloudflare(ctx):
            from .api._resources import queue_create

            return QueueOutputs(**await queue_create(ctx, physical_name(ctx, props.name)))
        require_local(ctx)
        local_dir(ctx, "queues").mkdir(parents=True, exist_ok=True)
        return QueueOutputs(queue_id=local_id(ctx), name=physical_name(ctx, props.name))

    async def delete(
        self, ctx: ResourceContext, props: QueueProps, outputs: QueueOutputs | None
    ) -> None:
        if on_cloudflare(ctx):
            from .api._resources import queue_delete

            if outputs is not None:
                await queue_delete(ctx, outputs.queue_id)
            return
        path = local_dir(ctx, "queues", f"{ctx.id}.sqlite")
        remove_sqlite(path)

    async def read(
        self, ctx: ResourceContext, props: QueueProps, outputs: QueueOutputs
    ) -> QueueOutputs | None:
        if not on_cloudflare(ctx):
            return outputs
        from .api._resources import queue_read

        live = await queue_read(ctx, outputs.queue_id)
        return None if live is None else QueueOutputs(**live)


class Queue(Resource[QueueProps, QueueOutputs]):
    """A Queue: bind it to a producer (``bindings={"JOBS": jobs}``) and name consumers
    with ``Worker(..., queue_consumers=[jobs])``.

    Example::

        jobs = Queue("jobs")
    """

    kind = "cloudflare::Queue"
    props_model = QueueProps
    outputs_model = QueueOutputs
    provider = QueueProvider
