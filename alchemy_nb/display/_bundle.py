"""``bundle(obj)``: the mime bundle an object shows under the active renderer."""

from __future__ import annotations

from typing import Any

from . import _switch
from ._doc import MIME, Doc
from ._views import broken, doc_for

__all__ = ["bundle", "static_bundle"]


def static_bundle(obj: Any, doc: Doc | None = None) -> dict[str, Any]:
    """``text/plain``, ``text/html`` and the vendor JSON of ``obj``; never raises."""
    if doc is None:
        try:
            doc = doc_for(obj)
        except Exception as exc:
            doc = broken(obj, exc)
    if doc is None:
        return {"text/plain": repr(obj)}
    try:
        return {"text/plain": doc.text(), "text/html": doc.html(), MIME: doc.json()}
    except Exception as exc:
        doc = broken(obj, exc)
        return {"text/plain": doc.text(), "text/html": doc.html(), MIME: doc.json()}


def bundle(obj: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """The bundle of ``obj`` under :func:`alchemy_nb.display.enable`'s renderer."""
    data = static_bundle(obj)
    chosen = _switch.active()
    if chosen == "text":
        data.pop("text/html", None)
    elif chosen == "widget":
        try:
            from ._widgets import widget_for

            widget = widget_for(obj)
        except Exception:
            widget = None
        if widget is not None:
            data.update(widget.widget_bundle())
    return data
