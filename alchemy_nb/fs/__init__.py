"""Local files and folders: ``fs::File`` and ``fs::Folder``.

Example::

    from alchemy_nb.fs import File, Folder
"""

from ._file import File, FileOutputs, FileProps
from ._folder import Folder, FolderOutputs, FolderProps

__all__ = ["File", "FileOutputs", "FileProps", "Folder", "FolderOutputs", "FolderProps"]
