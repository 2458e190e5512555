"""Local files and folders: ``fs::File`` and ``fs::Folder``.

Example::

    from alchemy_nb.fs import File, Folder

Each kind's module loads on first use (a program of files never builds the folder models).
"""

from __future__ import annotations

from .._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._file import File, FileOutputs, FileProps
    from ._folder import Folder, FolderOutputs, FolderProps

__all__ = ["File", "FileOutputs", "FileProps", "Folder", "FolderOutputs", "FolderProps"]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "._file": ["File", "FileOutputs", "FileProps"],
        "._folder": ["Folder", "FolderOutputs", "FolderProps"],
    },
)
