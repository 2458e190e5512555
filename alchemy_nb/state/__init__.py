"""State stores: where alchemy-nb remembers what it deployed.

The embedded default is :class:`FileStore` (JSON files under ``.alchemy/``). Every store
follows the :class:`StateStore` protocol.
"""

from ._file import FileStore
from ._protocol import Entry, LockInfo, StageState, StateStore

__all__ = ["Entry", "FileStore", "LockInfo", "StageState", "StateStore"]
