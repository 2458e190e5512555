"""Canonical JSON and digests: the same props always give the same bytes."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

__all__ = ["canonical_json", "digest", "walk"]

Hook = Callable[[Any], Any]


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: stable across runs and machines."""
    return _ENCODER.encode(value)  # what json.dumps does, less building an encoder each call


def digest(*parts: str) -> str:
    """``sha256:<hex>`` over the parts, separated so that ("ab", "c") != ("a", "bc")."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode()
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return "sha256:" + h.hexdigest()


def walk(value: Any, hooks: Mapping[type, Hook], *, skip_defaults: bool = False) -> Any:
    """Turn a props value into JSON-ready data.

    ``hooks`` maps a type (Secret, Resource, Ref ...) to the function that encodes it;
    the engine passes different hooks for digests, state records and displays. With
    ``skip_defaults`` a model field still at its default is left out, so a provider
    that gains a new optional field does not change every existing digest.
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    for kind, hook in hooks.items():
        if isinstance(value, kind):
            return hook(value)
    if isinstance(value, Mapping):
        return {str(k): walk(v, hooks, skip_defaults=skip_defaults) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [walk(v, hooks, skip_defaults=skip_defaults) for v in value]
        if isinstance(value, set | frozenset):
            items.sort(key=canonical_json)
        return items
    if isinstance(value, enum.Enum):
        return walk(value.value, hooks, skip_defaults=skip_defaults)
    if isinstance(value, PurePath):
        return str(value)
    fields = getattr(type(value), "model_fields", None)
    if fields is not None:  # a pydantic model, walked field by field (secrets stay objects)
        out: dict[str, Any] = {}
        for name, info in fields.items():
            item = getattr(value, name)
            if skip_defaults and not info.is_required() and item == info.default:
                continue
            out[name] = walk(item, hooks, skip_defaults=skip_defaults)
        return out
    raise TypeError(f"cannot store a value of type {type(value).__name__}")
