"""The renderer switch: which surfaces alchemy-nb objects render to.

``auto`` (the default) renders static bundles (``text/plain``, ``text/html`` and the
vendor JSON) everywhere, and widgets only with a live frontend: an IPython kernel
started by a Jupyter server for an open notebook, not under papermill, nbval or CI.
``html`` is the static bundle, ``text`` is ``text/plain`` only (plus the vendor JSON),
``widget`` asks for widgets wherever ipywidgets is installed. ``ALCHEMY_NB_DISPLAY``
sets the initial renderer.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from collections.abc import Iterator
from typing import Literal

from ..errors import ConfigError

__all__ = [
    "RENDERERS",
    "Renderer",
    "active",
    "enable",
    "live_frontend",
    "progress_enabled",
    "quiet",
    "renderer",
]

Renderer = Literal["auto", "html", "text", "widget"]
RENDERERS: tuple[str, ...] = ("auto", "html", "text", "widget")

_state: dict[str, str | bool | None] = {"renderer": None, "progress": None}


def enable(renderer: Renderer = "auto", *, progress: bool | None = None) -> str:
    """Choose how alchemy-nb objects render; returns the renderer now in effect.

    ``renderer``: ``"auto"`` (widgets only with a live frontend), ``"html"``, ``"text"``
    or ``"widget"``. ``progress=False`` silences progress displays (the one-line summary
    too); ``True`` turns them back on.

    Example::

        import alchemy_nb.display
        alchemy_nb.display.enable("text")          # plain text, e.g. for a CI log
        alchemy_nb.display.enable(progress=False)  # quiet runs
    """
    if renderer not in RENDERERS:
        raise ConfigError(
            f"unknown renderer {renderer!r}",
            where="alchemy_nb.display.enable",
            fix="use one of " + ", ".join(repr(r) for r in RENDERERS),
        )
    _state["renderer"] = renderer
    if progress is not None:
        _state["progress"] = bool(progress)
    return renderer


def renderer() -> str:
    """The renderer asked for: ``enable``'s choice, else ``ALCHEMY_NB_DISPLAY``, else auto."""
    chosen = _state["renderer"]
    if isinstance(chosen, str):
        return chosen
    env = os.environ.get("ALCHEMY_NB_DISPLAY", "").strip().lower()
    return env if env in RENDERERS else "auto"


_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("alchemy_nb_quiet", default=False)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No progress display for the runs inside (in this task and the tasks it starts).

    Example::

        with alchemy_nb.display.quiet():
            plan = await app.plan("dev")
    """
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def progress_enabled() -> bool:
    """Whether runs show progress (``enable(progress=...)``, else ``ALCHEMY_NB_PROGRESS``)."""
    if _quiet.get():
        return False
    chosen = _state["progress"]
    if isinstance(chosen, bool):
        return chosen
    return os.environ.get("ALCHEMY_NB_PROGRESS", "").lower() not in ("0", "off", "false", "no")


def in_kernel() -> bool:
    """True inside an IPython kernel (a notebook, papermill, nbval), not a terminal IPython."""
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if get is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def live_frontend() -> bool:
    """True when a person is looking at the notebook live: a kernel that a Jupyter server
    started for a notebook session (``JPY_SESSION_NAME``), outside CI, with ipywidgets.

    papermill and nbval start their kernels without a session, so they are never live.
    """
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    if not os.environ.get("JPY_SESSION_NAME") or not in_kernel():
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def active() -> str:
    """The renderer in effect now: ``auto`` resolved to ``widget`` or ``html``."""
    chosen = renderer()
    if chosen == "auto":
        return "widget" if live_frontend() else "html"
    if chosen == "widget":
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return "html"
    return chosen
