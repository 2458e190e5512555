"""``cloudflare::Queue``: a message queue."""

from __future__ import annotations

from ..engine import Input, Outputs, Props, Provider, Resource, ResourceContext
from ..errors import ConfigError
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
    """On the local target, a SQLite file of messages."""

    replace_on = frozenset({"name"})

    async def create(self, ctx: ResourceContext, props: QueueProps) -> QueueOutputs:
        if on_cloudflare(ctx):
            raise ConfigError(
                "Queues are not available on the cloudflare target yet: the Cloudflare API "
                "description this build is tested against has no Queues operations",
                where=f"{ctx.fqn} ({ctx.kind}), phase {ctx.phase}",
                fix="deploy queues on the local target, or leave them out of this stage",
            )
        require_local(ctx)
        local_dir(ctx, "queues").mkdir(parents=True, exist_ok=True)
        return QueueOutputs(queue_id=local_id(ctx), name=physical_name(ctx, props.name))

    async def delete(
        self, ctx: ResourceContext, props: QueueProps, outputs: QueueOutputs | None
    ) -> None:
        if on_cloudflare(ctx):
            return  # never created there
        path = local_dir(ctx, "queues", f"{ctx.id}.sqlite")
        remove_sqlite(path)


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
