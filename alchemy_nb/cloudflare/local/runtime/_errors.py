"""The error the local worker runtime raises when a worker cannot be loaded."""

from __future__ import annotations

from ....errors import ConfigError

__all__ = ["WorkerLoadError"]


class WorkerLoadError(ConfigError):
    """A worker's module failed to import, has no handler, or a binding cannot be opened.

    The message names the worker's file, the exception and the fix. The process that
    calls :func:`create_app` should exit with it, so the previous version keeps serving.

    Example::

        try:
            app = create_app(config)
        except WorkerLoadError as exc:
            sys.exit(str(exc))
    """
