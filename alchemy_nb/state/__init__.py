"""State stores: where alchemy-nb remembers what it deployed.

The embedded default is :class:`FileStore` (JSON files under ``.alchemy/``). Teams and CI
runners share state in :class:`SQLiteStore` (one file, one machine) or
:class:`PostgresStore`, chosen with ``--state URL`` or ``ALCHEMY_STATE_URL`` (see
:func:`open_store`). Every store follows the :class:`StateStore` protocol.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ._file import FileStore
from ._protocol import DOC_KINDS, Entry, LockInfo, StageState, StateStore
from ._url import open_store, store_from_env

if TYPE_CHECKING:
    from ._postgres import PostgresStore
    from ._sqlite import SQLiteStore

__all__ = [
    "DOC_KINDS",
    "Entry",
    "FileStore",
    "LockInfo",
    "PostgresStore",
    "SQLiteStore",
    "StageState",
    "StateStore",
    "open_store",
    "store_from_env",
]

__getattr__, __dir__ = lazy_exports(
    globals(), {"._postgres": ["PostgresStore"], "._sqlite": ["SQLiteStore"]}
)
