"""``cloudflare::Workflow``: durable multi-step work defined by a worker class."""

from __future__ import annotations

from ..engine import Input, Outputs, Props, Provider, Resource, ResourceContext
from ._common import local_dir, local_id, on_cloudflare, physical_name, remove_sqlite, require_local

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
    script_name: str | None = None
    """The worker hosting the class, when it is not the worker the Workflow is bound to."""


class WorkflowProvider(Provider[WorkflowProps, WorkflowOutputs]):
    """On the local target, a SQLite file of instances and memoized steps."""

    async def create(self, ctx: ResourceContext, props: WorkflowProps) -> WorkflowOutputs:
        if on_cloudflare(ctx):  # registered by the Worker that hosts the class, on upload
            return WorkflowOutputs(
                workflow_id="",
                workflow_name=physical_name(ctx, props.workflow_name),
                class_name=props.class_name,
                script_name=str(props.script_name) if props.script_name else None,
            )
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
        new = await self.create(ctx, props)
        if (
            on_cloudflare(ctx)
            and outputs is not None
            and outputs.workflow_name != new.workflow_name
        ):
            from .api._resources import workflow_delete

            await workflow_delete(ctx, outputs.workflow_name)  # the Worker registers the new
        return new

    async def delete(
        self, ctx: ResourceContext, props: WorkflowProps, outputs: WorkflowOutputs | None
    ) -> None:
        if on_cloudflare(ctx):
            from .api._resources import workflow_delete

            name = outputs.workflow_name if outputs else physical_name(ctx, props.workflow_name)
            await workflow_delete(ctx, name)
            return
        path = local_dir(ctx, "workflows", f"{ctx.id}.sqlite")
        remove_sqlite(path)

    async def read(
        self, ctx: ResourceContext, props: WorkflowProps, outputs: WorkflowOutputs
    ) -> WorkflowOutputs | None:
        if not on_cloudflare(ctx):
            return outputs
        from .api._resources import workflow_read

        live = await workflow_read(ctx, outputs.workflow_name)
        if live is None:
            return None
        return outputs.model_copy(update={"class_name": live["class_name"]})


class Workflow(Resource[WorkflowProps, WorkflowOutputs]):
    """A Workflow, bound to workers: ``bindings={"FLOW": flow}``.

    Example::

        flow = Workflow("signup", class_name="SignupFlow")
    """

    kind = "cloudflare::Workflow"
    props_model = WorkflowProps
    outputs_model = WorkflowOutputs
    provider = WorkflowProvider
