"""The bridge from the core objects to :mod:`alchemy_nb.display`, loaded only when used.

The engine and promotion layers never import the display package; their objects'
``_repr_mimebundle_`` calls :func:`mimebundle` here, which imports the display package on
the first display, and never raises (a display that fails says so in ``text/plain``).
Runs ask :func:`progress_reporter` for a progress display when none was given: it loads
the display package only in a kernel or on a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

TYPE_CHECKING = False  # `import typing` would cost every command milliseconds
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Displayed", "mimebundle", "progress_reporter"]


def mimebundle(obj: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """The mime bundle of a public object, as :mod:`alchemy_nb.display` renders it."""
    try:
        from .display._bundle import bundle

        return bundle(obj, include, exclude)
    except Exception as exc:  # a display never raises
        name = type(obj).__name__
        return {"text/plain": f"{name} (cannot be displayed: {type(exc).__name__}: {exc})"}


class Displayed:
    """Mixin for the public objects: ``_repr_mimebundle_`` through :func:`mimebundle`, so
    Jupyter, papermill and HTML exports show text, HTML and the vendor JSON."""

    __slots__ = ()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Rich display (``alchemy_nb.display``): text, HTML and the vendor JSON."""
        return mimebundle(self, include, exclude)


def progress_reporter(phase: str, app: str, stage: str) -> Callable[..., None] | None:
    """A progress display for a run given no reporter: in a kernel (updated in place) or
    on a terminal (a bar on stderr); None elsewhere (the engine then only logs)."""
    if os.environ.get("ALCHEMY_NB_PROGRESS", "").lower() in ("0", "off", "false", "no"):
        return None
    in_kernel = "ipykernel" in sys.modules
    if not in_kernel and not _stderr_is_terminal():
        return None
    try:
        from .display._progress import auto_reporter

        return auto_reporter(phase, app, stage)
    except Exception:  # progress is a convenience: never let it stop a run
        return None


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
