"""``cloudflare::R2Bucket``: an object store."""

from __future__ import annotations

import shutil
from contextlib import suppress
from pathlib import Path

from ..engine import Input, Outputs, Props, Provider, Resource, ResourceContext
from ._common import local_dir, on_cloudflare, physical_name, require_local

__all__ = ["R2Bucket", "R2BucketOutputs", "R2BucketProps"]


class R2BucketProps(Props):
    """Props of :class:`R2Bucket`."""

    name: Input[str] | None = None
    """The bucket's name (default ``{app}-{id}-{stage}``); changing it replaces the bucket."""


class R2BucketOutputs(Outputs):
    """Outputs of :class:`R2Bucket`."""

    name: str


def r2_path(ctx: ResourceContext, name: str) -> Path:
    """The folder of a bucket on the local target (by name: a new name is a new bucket)."""
    return local_dir(ctx, "r2", name)


class R2BucketProvider(Provider[R2BucketProps, R2BucketOutputs]):
    """On the local target, a folder of objects in the stage's local data folder."""

    replace_on = frozenset({"name"})

    async def create(self, ctx: ResourceContext, props: R2BucketProps) -> R2BucketOutputs:
        if on_cloudflare(ctx):
            from .api._resources import r2_create

            return R2BucketOutputs(**await r2_create(ctx, physical_name(ctx, props.name)))
        require_local(ctx)
        name = physical_name(ctx, props.name)
        r2_path(ctx, name).mkdir(parents=True, exist_ok=True)
        return R2BucketOutputs(name=name)

    async def delete(
        self, ctx: ResourceContext, props: R2BucketProps, outputs: R2BucketOutputs | None
    ) -> None:
        name = outputs.name if outputs is not None else physical_name(ctx, props.name)
        if on_cloudflare(ctx):
            from .api._resources import r2_delete

            await r2_delete(ctx, name)
            return
        with suppress(FileNotFoundError):
            shutil.rmtree(r2_path(ctx, name))

    async def read(
        self, ctx: ResourceContext, props: R2BucketProps, outputs: R2BucketOutputs
    ) -> R2BucketOutputs | None:
        if not on_cloudflare(ctx):
            return outputs
        from .api._resources import r2_read

        live = await r2_read(ctx, outputs.name)
        return None if live is None else R2BucketOutputs(**live)


class R2Bucket(Resource[R2BucketProps, R2BucketOutputs]):
    """An R2 bucket. Bind it to a Worker: ``bindings={"FILES": files}``.

    Example::

        files = R2Bucket("files")
    """

    kind = "cloudflare::R2Bucket"
    props_model = R2BucketProps
    outputs_model = R2BucketOutputs
    provider = R2BucketProvider
