"""Promotion records as plain JSON data that also display well in a notebook.

A release and a gate are dicts, a history, a release list and a ledger timeline are
lists, exactly as before (``json.dumps`` and ``==`` treat them as such); they add only a
``_repr_mimebundle_`` that :mod:`alchemy_nb.display` renders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._ledger import Event

__all__ = ["Gate", "History", "Release", "Releases", "Timeline"]


def _bundle(obj: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    from .._repr import mimebundle

    return mimebundle(obj, include, exclude)


def _pretty(obj: Any, printer: Any, cycle: bool) -> None:
    """IPython's plain-text form: the same text as the bundle's (IPython would otherwise
    print these as the dicts and lists they are)."""
    printer.text(str(_bundle(obj).get("text/plain", "")))


class Release(dict[str, Any]):
    """A release record: ``id``, ``files`` (path to sha256), ``author``, ``branch``, ..."""

    _repr_mimebundle_ = _bundle
    _repr_pretty_ = _pretty


class Gate(dict[str, Any]):
    """A gate: the approval request for (release, stage, plan digest) and its decisions."""

    _repr_mimebundle_ = _bundle
    _repr_pretty_ = _pretty


class History(list[dict[str, Any]]):
    """Deploys, promotions and rollbacks, oldest first (``Pipeline.history()``)."""

    _repr_mimebundle_ = _bundle
    _repr_pretty_ = _pretty


class Releases(list[dict[str, Any]]):
    """Releases by stage, newest first (``Pipeline.releases()``)."""

    _repr_mimebundle_ = _bundle
    _repr_pretty_ = _pretty


class Timeline(list["Event"]):
    """Ledger events, oldest first (``await Ledger.events()``), shown as a timeline."""

    _repr_mimebundle_ = _bundle
    _repr_pretty_ = _pretty
