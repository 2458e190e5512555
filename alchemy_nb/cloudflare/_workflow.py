"""``cloudflare::Workflow``: durable multi-step work defined by a worker class."""

from __future__ import annotations

from ..engine import Input, Outputs, Props, Provider, Resource, ResourceContext
from ._common import local_dir, local_id, physical_name, remove_sqlite, require_local

__all__ = ["Workflow", "WorkflowOutputs", "WorkflowProps"]


class WorkflowProps(Props):
    """Props of :class:`Workflow`."""

    class_name: str
    """The ``WorkflowEntrypoint`` subclass in the hosting worker."""
    workflow_name: Input[str] | None = None
    """The workflow's name (default ``{app}-{id}-{stage}``)."""
    script_name: Input[str] | None = None
    """The worker that defines the class (default: the worker it is bound to)."""


class WorkflowOutputs(Outputs):
    """Outputs of :class:`Workflow`."""

    workflow_id: str
    workflow_name: str
    class_name: str


class WorkflowProvider(Provider[WorkflowProps, WorkflowOutputs]):
    """On the local target, a SQLite file of instances and memoized steps."""

    async def create(self, ctx: ResourceContext, props: WorkflowProps) -> WorkflowOutputs:
        require_local(ctx)
        local_dir(ctx, "workflows").mkdir(parents=True, exist_ok=True)
        return WorkflowOutputs(
            workflow_id=local_id(ctx),
            workflow_name=physical_name(ctx, props.workflow_name),
            class_name=props.class_name,
        )

    async def update(
        self,
        ctx: ResourceContext,
        old: WorkflowProps,
        props: WorkflowProps,
        outputs: WorkflowOutputs | None,
    ) -> WorkflowOutputs:
        return await self.create(ctx, props)

    async def delete(
        self, ctx: ResourceContext, props: WorkflowProps, outputs: WorkflowOutputs | None
    ) -> None:
        path = local_dir(ctx, "workflows", f"{ctx.id}.sqlite")
        remove_sqlite(path)


class Workflow(Resource[WorkflowProps, WorkflowOutputs]):
    """A Workflow, bound to workers: ``bindings={"FLOW": flow}``.

    Example::

        flow = Workflow("signup", class_name="SignupFlow")
    """

    kind = "cloudflare::Workflow"
    props_model = WorkflowProps
    outputs_model = WorkflowOutputs
    provider = WorkflowProvider
