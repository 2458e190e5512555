"""Choosing a store by URL: ``--state URL`` or ``ALCHEMY_STATE_URL``.

======================================  =============================================
``file:PATH``                           JSON files under the folder PATH (``.alchemy``)
``sqlite:///PATH``                      one SQLite database file (``sqlite:////abs.db``)
``postgresql://USER@HOST:PORT/DB``      a PostgreSQL database (``postgres://`` too)
======================================  =============================================

A relative PATH is relative to the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from ._protocol import StateStore

__all__ = ["ENV_VAR", "open_store", "store_from_env"]

ENV_VAR = "ALCHEMY_STATE_URL"

_FIX = (
    "use file:PATH (a folder of JSON files), sqlite:///PATH (one database file) or "
    "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
)


def open_store(url: str, *, base: Path | None = None) -> StateStore:
    """The store a state URL names (nothing is opened until it is first used).

    Example::

        store = open_store("sqlite:///state/alchemy.db")
        app = alchemy_nb.App("hello", state=store)
    """
    text = url.strip()
    folder = base or Path.cwd()
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise ConfigError(f"{_shown(text)!r} is not a state URL", fix=_FIX)
    if scheme == "file":
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise ConfigError("the file: state URL names no folder", where=text, fix=_FIX)
        from ._file import FileStore

        return FileStore(folder / path)
    if scheme == "sqlite":
        if not rest.startswith("///") or not rest[3:]:
            raise ConfigError(
                f"{text!r} names no database file",
                fix="write sqlite:///relative/path.db or sqlite:////absolute/path.db",
            )
        from ._sqlite import SQLiteStore

        return SQLiteStore(folder / rest[3:])
    if scheme in ("postgresql", "postgres"):
        from ._postgres import PostgresStore

        return PostgresStore(text)
    raise ConfigError(
        f"unknown state URL scheme {scheme!r} in {_shown(text)!r}",
        where=f"--state or ${ENV_VAR}",
        fix=_FIX,
    )


def store_from_env(default: Path) -> StateStore:
    """``$ALCHEMY_STATE_URL``'s store, else files under ``default``."""
    url = os.environ.get(ENV_VAR, "").strip()
    if url:
        return open_store(url)
    from ._file import FileStore

    return FileStore(default)


def _shown(url: str) -> str:
    """``url`` without a password."""
    from urllib.parse import urlsplit

    try:
        if urlsplit(url).password is not None:
            from ._postgres import masked_url

            return masked_url(url)
    except ValueError:
        return "(an unparsable URL)"
    return url
