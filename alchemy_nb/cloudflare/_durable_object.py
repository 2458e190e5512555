"""``cloudflare::DurableObjectNamespace``: a class of Durable Objects."""

from __future__ import annotations

import shutil
from contextlib import suppress

from ..engine import Input, Outputs, Props, Provider, Resource, ResourceContext
from ._common import local_dir, local_id, on_cloudflare, require_local

__all__ = [
    "DurableObjectNamespace",
    "DurableObjectNamespaceOutputs",
    "DurableObjectNamespaceProps",
]


class DurableObjectNamespaceProps(Props):
    """Props of :class:`DurableObjectNamespace`."""

    class_name: str
    """The Python class (``class Counter(DurableObject)``) in the hosting worker."""
    script_name: Input[str] | None = None
    """The worker that defines the class (default: the worker it is bound to)."""
    sqlite: bool = True
    """SQLite-backed storage (Cloudflare's default for new classes)."""


class DurableObjectNamespaceOutputs(Outputs):
    """Outputs of :class:`DurableObjectNamespace`."""

    namespace_id: str
    class_name: str
    script_name: str | None = None
    """The worker hosting the class, when it is not the worker the namespace is bound to."""
    sqlite: bool = True


class DurableObjectNamespaceProvider(
    Provider[DurableObjectNamespaceProps, DurableObjectNamespaceOutputs]
):
    """On the local target, a folder holding each object's storage."""

    replace_on = frozenset({"class_name"})

    async def create(
        self, ctx: ResourceContext, props: DurableObjectNamespaceProps
    ) -> DurableObjectNamespaceOutputs:
        if on_cloudflare(ctx):  # created by the hosting Worker's upload, with a migration
            return DurableObjectNamespaceOutputs(
                namespace_id="",
                class_name=props.class_name,
                script_name=str(props.script_name) if props.script_name else None,
                sqlite=props.sqlite,
            )
        require_local(ctx)
        local_dir(ctx, "do", ctx.id).mkdir(parents=True, exist_ok=True)
        return DurableObjectNamespaceOutputs(
            namespace_id=local_id(ctx), class_name=props.class_name
        )

    async def update(
        self,
        ctx: ResourceContext,
        old: DurableObjectNamespaceProps,
        props: DurableObjectNamespaceProps,
        outputs: DurableObjectNamespaceOutputs | None,
    ) -> DurableObjectNamespaceOutputs:
        return await self.create(ctx, props)

    async def delete(
        self,
        ctx: ResourceContext,
        props: DurableObjectNamespaceProps,
        outputs: DurableObjectNamespaceOutputs | None,
    ) -> None:
        if on_cloudflare(ctx):
            return  # deleted with its class (a deleted_classes migration) or its Worker
        with suppress(FileNotFoundError):
            shutil.rmtree(local_dir(ctx, "do", ctx.id))


class DurableObjectNamespace(Resource[DurableObjectNamespaceProps, DurableObjectNamespaceOutputs]):
    """A Durable Object class, bound to workers: ``bindings={"COUNTER": counters}``.

    Example::

        counters = DurableObjectNamespace("counters", class_name="Counter")
    """

    kind = "cloudflare::DurableObjectNamespace"
    props_model = DurableObjectNamespaceProps
    outputs_model = DurableObjectNamespaceOutputs
    provider = DurableObjectNamespaceProvider
