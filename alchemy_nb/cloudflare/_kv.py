"""``cloudflare::KVNamespace``: a key-value namespace."""

from __future__ import annotations

from pathlib import Path

from ..engine import Input, Outputs, Props, Provider, Resource, ResourceContext
from ._common import local_dir, local_id, physical_name, remove_sqlite, require_local

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
    """On the local target, a SQLite file in the stage's local data folder."""

    async def create(self, ctx: ResourceContext, props: KVNamespaceProps) -> KVNamespaceOutputs:
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
        return await self.create(ctx, props)  # a rename keeps the data

    async def delete(
        self, ctx: ResourceContext, props: KVNamespaceProps, outputs: KVNamespaceOutputs | None
    ) -> None:
        path = kv_path(ctx)
        remove_sqlite(path)


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
