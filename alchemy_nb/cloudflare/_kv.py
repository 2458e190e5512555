"""``cloudflare::KVNamespace``: a key-value namespace."""

from __future__ import annotations

from pathlib import Path

from ..engine import Input, Outputs, Props, Provider, Resource, ResourceContext
from ._common import local_dir, local_id, on_cloudflare, physical_name, remove_sqlite, require_local

__all__ = ["KVNamespace", "KVNamespaceOutputs", "KVNamespaceProps"]


class KVNamespaceProps(Props):
    """Props of :class:`KVNamespace`."""

    title: Input[str] | None = None
    """The namespace's title (default ``{app}-{id}-{stage}``)."""


class KVNamespaceOutputs(Outputs):
    """Outputs of :class:`KVNamespace`."""

    namespace_id: str
    title: str


class KVNamespaceProvider(Provider[KVNamespaceProps, KVNamespaceOutputs]):
    """On the local target, a SQLite file in the stage's local data folder; on the
    cloudflare target, a namespace (a title change renames it in place)."""

    async def create(self, ctx: ResourceContext, props: KVNamespaceProps) -> KVNamespaceOutputs:
        if on_cloudflare(ctx):
            from .api._resources import kv_create

            return KVNamespaceOutputs(**await kv_create(ctx, physical_name(ctx, props.title)))
        require_local(ctx)
        local_dir(ctx, "kv").mkdir(parents=True, exist_ok=True)
        return KVNamespaceOutputs(namespace_id=local_id(ctx), title=physical_name(ctx, props.title))

    async def update(
        self,
        ctx: ResourceContext,
        old: KVNamespaceProps,
        props: KVNamespaceProps,
        outputs: KVNamespaceOutputs | None,
    ) -> KVNamespaceOutputs:
        if on_cloudflare(ctx) and outputs is not None:
            from .api._resources import kv_rename

            title = physical_name(ctx, props.title)
            if title == outputs.title:
                return outputs
            return KVNamespaceOutputs(**await kv_rename(ctx, outputs.namespace_id, title))
        return await self.create(ctx, props)  # a rename keeps the data

    async def delete(
        self, ctx: ResourceContext, props: KVNamespaceProps, outputs: KVNamespaceOutputs | None
    ) -> None:
        if on_cloudflare(ctx):
            from .api._resources import kv_delete

            if outputs is not None:
                await kv_delete(ctx, outputs.namespace_id)
            return
        path = kv_path(ctx)
        remove_sqlite(path)

    async def read(
        self, ctx: ResourceContext, props: KVNamespaceProps, outputs: KVNamespaceOutputs
    ) -> KVNamespaceOutputs | None:
        if not on_cloudflare(ctx):
            return outputs
        from .api._resources import kv_read

        live = await kv_read(ctx, outputs.namespace_id)
        return None if live is None else KVNamespaceOutputs(**live)


def kv_path(ctx: ResourceContext, rid: str | None = None) -> Path:
    """The SQLite file of a namespace on the local target."""
    return local_dir(ctx, "kv", f"{rid or ctx.id}.sqlite")


class KVNamespace(Resource[KVNamespaceProps, KVNamespaceOutputs]):
    """A Workers KV namespace. Bind it to a Worker: ``bindings={"CACHE": cache}``.

    Example::

        cache = KVNamespace("cache")
    """

    kind = "cloudflare::KVNamespace"
    props_model = KVNamespaceProps
    outputs_model = KVNamespaceOutputs
    provider = KVNamespaceProvider
