"""Arguments the way JavaScript APIs take them: an options object, a dict or keywords."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyodide.ffi import JsMap, JsNull, JsObject, JsProxy

__all__ = ["options", "plain"]


def plain(value: Any) -> Any:
    """``value`` as plain Python data (JavaScript values converted with ``to_py``)."""
    if isinstance(value, JsProxy):
        return value.to_py()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def options(init: Any, kwargs: Mapping[str, Any], method: str) -> dict[str, Any]:
    """Merge an options argument (None, dict, JS object or Map) with keyword arguments.

    Values stay as given (a ``Headers`` stays a ``Headers``). ``None`` values are dropped,
    as JavaScript drops ``undefined``, so a keyword left at ``None`` never hides the same
    field of the options object.
    """
    if init is None or isinstance(init, JsNull):
        merged: dict[str, Any] = {}
    elif isinstance(init, JsObject | JsMap):
        merged = dict(init._js)
    elif isinstance(init, Mapping):
        merged = dict(init)
    else:
        raise TypeError(
            f"{method}: the options argument must be an object, not {type(init).__name__}"
        )
    merged.update((k, v) for k, v in kwargs.items() if v is not None)
    return {k: v for k, v in merged.items() if v is not None}
