"""Drift detection: what the Cloudflare account holds now, against what state recorded.

``alchemy-nb plan --refresh`` calls :func:`detect_drift` after the plan: every resource
of a ``cloudflare``-target stage is read live (no writes) and each difference is
reported; a resource deleted out of band is reported as ``gone`` (the next deploy
re-creates it once its state record is removed, or adopts it again with ``--adopt``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from ...engine import ResourceContext, kind_registry

__all__ = ["Drift", "detect_drift"]


@dataclass(frozen=True)
class Drift:
    """One resource whose live state differs from state: ``fields`` maps a changed output
    to ``(recorded, live)``; ``gone`` means it no longer exists."""

    id: str
    kind: str
    gone: bool = False
    fields: tuple[tuple[str, Any, Any], ...] = ()

    def describe(self) -> str:
        """One line for humans."""
        if self.gone:
            return f"{self.id} ({self.kind}): gone from the Cloudflare account"
        changes = ", ".join(f"{f}: {old!r} -> {new!r}" for f, old, new in self.fields)
        return f"{self.id} ({self.kind}): {changes}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if self.gone:
            cells = "<em>gone from the Cloudflare account</em>"
        else:
            cells = "".join(
                f"<li><code>{html.escape(f)}</code>: {html.escape(repr(old))} &rarr; "
                f"{html.escape(repr(new))}</li>"
                for f, old, new in self.fields
            )
            cells = f"<ul>{cells}</ul>"
        title = f"<strong>{html.escape(self.id)}</strong> ({html.escape(self.kind)})"
        return {"text/plain": self.describe(), "text/html": f"<div>{title} {cells}</div>"}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, for ``--json``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "gone": self.gone,
            "fields": {f: {"state": old, "live": new} for f, old, new in self.fields},
        }


async def detect_drift(app: Any, stage: str) -> list[Drift]:
    """Read every Cloudflare resource of ``stage`` live and compare it with state.

    Only stages whose target is ``cloudflare`` are read; others return ``[]``."""
    settings = app.settings(stage)
    if settings.target != "cloudflare":
        return []
    state = await app.state.load(app.name, stage)
    found: list[Drift] = []
    for rid, rec in sorted(state.records.items()):
        kind = str(rec.get("kind", ""))
        cls = kind_registry.get(kind) if kind.startswith("cloudflare::") else None
        outputs = rec.get("outputs")
        if cls is None or not isinstance(outputs, dict) or not outputs:
            continue
        ctx = ResourceContext(
            app=app.name,
            stage=stage,
            id=rid,
            kind=kind,
            phase="plan",
            root=app.root,
            target=settings.target,
            data_root=app.data_root,
            stage_vars=settings.vars,
        )
        recorded = cls.outputs_model.model_validate(outputs)
        live = await cls.provider().read(ctx, cls.props_model.model_construct(), recorded)
        if live is None:
            found.append(Drift(rid, kind, gone=True))
            continue
        was, now = recorded.model_dump(mode="json"), live.model_dump(mode="json")
        fields = tuple((k, was.get(k), now[k]) for k in sorted(now) if was.get(k) != now[k])
        if fields:
            found.append(Drift(rid, kind, fields=fields))
    return found
