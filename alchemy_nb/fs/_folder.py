"""``fs::Folder``: a directory."""

from __future__ import annotations

import shutil
from contextlib import suppress

from ..engine import Input, Outputs, Props, Provider, Resource, ResourceContext

__all__ = ["Folder", "FolderOutputs", "FolderProps"]


class FolderProps(Props):
    """Props of :class:`Folder`."""

    path: Input[str]
    """The folder; relative paths are relative to the app's folder."""
    delete: bool = True
    """Remove the folder when the resource is deleted."""
    recursive: bool = True
    """On delete, remove what the folder holds too (otherwise only an empty folder goes)."""


class FolderOutputs(Outputs):
    """Outputs of :class:`Folder`."""

    path: str


class FolderProvider(Provider[FolderProps, FolderOutputs]):
    """Creates the folder (and its parents); a changed ``path`` replaces it."""

    replace_on = frozenset({"path"})

    async def create(self, ctx: ResourceContext, props: FolderProps) -> FolderOutputs:
        ctx.resolve_output(str(props.path)).mkdir(parents=True, exist_ok=True)
        return FolderOutputs(path=str(props.path))

    async def update(
        self,
        ctx: ResourceContext,
        old: FolderProps,
        props: FolderProps,
        outputs: FolderOutputs | None,
    ) -> FolderOutputs:
        return await self.create(ctx, props)

    async def delete(
        self, ctx: ResourceContext, props: FolderProps, outputs: FolderOutputs | None
    ) -> None:
        if not props.delete:
            return
        target = ctx.resolve_output(str(props.path))
        if props.recursive:
            with suppress(FileNotFoundError):
                shutil.rmtree(target)
            return
        try:
            target.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            if ctx.log is not None:
                ctx.log(
                    "resource.note",
                    id=ctx.id,
                    kind=ctx.kind,
                    note=f"kept {props.path}: it is not empty and recursive=False",
                )


class Folder(Resource[FolderProps, FolderOutputs]):
    """A folder, created with its parents; removed on delete unless ``delete=False``.

    Example::

        out = Folder("out", path="out")
        File("readme", path="out/README.txt", content="generated")
    """

    kind = "fs::Folder"
    props_model = FolderProps
    outputs_model = FolderOutputs
    provider = FolderProvider
