"""Plans and results: what a run will do, and what it did."""

from __future__ import annotations

import enum
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._canonical import canonical_json, digest
from .._repr import Displayed
from ..errors import PlanError

__all__ = ["Action", "Change", "FieldChange", "Phase", "Plan", "ResourceStatus", "RunResult"]

UNKNOWN = "(known after apply)"


class Phase(enum.StrEnum):
    """What a run does: ``up`` applies, ``read`` only reads, ``destroy`` deletes all,
    ``plan`` computes what ``up`` would do."""

    UP = "up"
    READ = "read"
    DESTROY = "destroy"
    PLAN = "plan"


class Action(enum.StrEnum):
    """What happens to one resource in a run."""

    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "noop"


class ResourceStatus(enum.StrEnum):
    """A resource record's status in state; the ``-ing`` forms mark work in flight."""

    CREATING = "creating"
    CREATED = "created"
    UPDATING = "updating"
    UPDATED = "updated"
    REPLACING = "replacing"
    DELETING = "deleting"


COUNT_KEYS = tuple(a.value for a in Action)


@dataclass(frozen=True)
class FieldChange:
    """One changed prop: ``path`` like ``content`` or ``vars.GREETING``; values masked."""

    path: str
    before: Any
    after: Any
    forces_replacement: bool = False

    def to_json(self) -> dict[str, Any]:
        data = {"path": self.path, "before": self.before, "after": self.after}
        if self.forces_replacement:
            data["forces_replacement"] = True
        return data


@dataclass(frozen=True)
class Change(Displayed):
    """One resource's line in a plan."""

    id: str
    kind: str
    action: Action
    reason: str = ""
    fields: tuple[FieldChange, ...] = ()
    deps: tuple[str, ...] = ()
    declared: str = ""
    """Digest of the declared props (refs as names): ties a saved plan to the program."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "action": self.action.value}
        if self.reason:
            data["reason"] = self.reason
        if self.fields:
            data["fields"] = [f.to_json() for f in self.fields]
        if self.deps:
            data["deps"] = list(self.deps)
        if self.declared:
            data["declared"] = self.declared
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(
            id=data["id"],
            kind=data["kind"],
            action=Action(data["action"]),
            reason=data.get("reason", ""),
            fields=tuple(
                FieldChange(
                    f["path"], f.get("before"), f.get("after"), f.get("forces_replacement", False)
                )
                for f in data.get("fields", [])
            ),
            deps=tuple(data.get("deps", [])),
            declared=data.get("declared", ""),
        )


def _counts(actions: list[Action]) -> dict[str, int]:
    tally = Counter(a.value for a in actions)
    return {key: tally.get(key, 0) for key in COUNT_KEYS}


@dataclass(frozen=True)
class Plan(Displayed):
    """Exactly what ``up`` (or ``destroy``) would do to a stage, computed without changing it.

    A plan has a ``digest``; ``app.deploy(stage, plan=plan)`` applies exactly this plan or
    refuses when the program or the state changed since it was computed.

    Example::

        plan = await app.plan("dev")
        print(plan.counts)        # {"create": 1, "update": 0, ...}
        plan.save("plan.json")
    """

    app: str
    stage: str
    phase: Phase
    changes: tuple[Change, ...]
    base: str
    """Fingerprint of the state the plan was computed from."""

    @property
    def digest(self) -> str:
        body = {
            "app": self.app,
            "stage": self.stage,
            "phase": self.phase.value,
            "base": self.base,
            "changes": [c.to_json() for c in self.changes],
        }
        return digest(canonical_json(body))

    @property
    def counts(self) -> dict[str, int]:
        return _counts([c.action for c in self.changes])

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.NOOP for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "alchemy-nb/plan@1",
            "app": self.app,
            "stage": self.stage,
            "phase": self.phase.value,
            "digest": self.digest,
            "base": self.base,
            "counts": self.counts,
            "changes": [c.to_json() for c in self.changes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        try:
            if data.get("format") != "alchemy-nb/plan@1":
                raise ValueError("not an alchemy-nb plan")
            plan = cls(
                app=data["app"],
                stage=data["stage"],
                phase=Phase(data["phase"]),
                changes=tuple(Change.from_json(c) for c in data["changes"]),
                base=data["base"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(
                f"the saved plan cannot be read ({exc})",
                fix="make a new plan with `alchemy-nb plan --out FILE`",
            ) from None
        if data.get("digest") != plan.digest:
            raise PlanError(
                "the saved plan was edited: its digest does not match its content",
                fix="make a new plan with `alchemy-nb plan --out FILE`",
            )
        return plan

    def save(self, path: str | Path) -> None:
        """Write the plan as JSON (secrets are masked; it holds no secret values)."""
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan written by :meth:`save` (or ``alchemy-nb plan --out``)."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise PlanError(
                f"no plan file at {path}",
                where=str(path),
                fix="make one with `alchemy-nb plan --out FILE`",
            ) from None
        except ValueError as exc:
            raise PlanError(
                f"the plan file is not JSON ({exc})",
                where=str(path),
                fix="make a new plan with `alchemy-nb plan --out FILE`",
            ) from None
        return cls.from_json(data)

    def __str__(self) -> str:
        return self.render_text()

    def __repr__(self) -> str:
        c = self.counts
        return (
            f"Plan({self.app}/{self.stage} {self.phase.value}: {c['create']} create, "
            f"{c['update']} update, {c['replace']} replace, {c['delete']} delete, "
            f"{c['noop']} unchanged; {self.digest[:19]})"
        )

    def render_text(self) -> str:
        """The plan as a reader wants it in a terminal or a CI log."""
        symbols = {"create": "+", "update": "~", "replace": "±", "delete": "-", "noop": " "}
        lines = [f"Plan for {self.app}/{self.stage} ({self.phase.value}):"]
        for change in self.changes:
            if change.action is Action.NOOP:
                continue
            note = f"  ({change.reason})" if change.reason else ""
            lines.append(f"  {symbols[change.action.value]} {change.kind} {change.id}{note}")
            for f in change.fields:
                tag = "  # forces replacement" if f.forces_replacement else ""
                lines.append(f"      {f.path}: {_short(f.before)} -> {_short(f.after)}{tag}")
        c = self.counts
        lines.append(
            f"  {c['create']} to create, {c['update']} to update, {c['replace']} to replace, "
            f"{c['delete']} to delete, {c['noop']} unchanged."
        )
        return "\n".join(lines)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) and value == UNKNOWN else json.dumps(value)
    if value is None:
        text = "(none)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class ResourceResult:
    """What a run did to one resource."""

    id: str
    kind: str
    action: Action
    ok: bool = True
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "action": self.action.value,
            "ok": self.ok,
        }
        if self.error:
            data["error"] = self.error
        return data


@dataclass
class RunResult(Displayed):
    """The outcome of ``up``, ``read`` or ``destroy`` on one stage."""

    app: str
    stage: str
    phase: Phase
    resources: list[ResourceResult] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    outputs_masked: dict[str, Any] = field(default_factory=dict)
    outputs_stored: Any = field(default=None, repr=False)
    plan_digest: str | None = None
    recovered: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return _counts([r.action for r in self.resources if r.ok])

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.resources)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready; secrets in outputs are masked."""
        return {
            "ok": self.ok,
            "app": self.app,
            "stage": self.stage,
            "phase": self.phase.value,
            "counts": self.counts,
            "outputs": self.outputs_masked,
            "resources": [r.to_json() for r in self.resources],
            "plan_digest": self.plan_digest,
            "recovered": self.recovered,
        }

    def __repr__(self) -> str:
        return f"RunResult({self.summary()})"

    def summary(self) -> str:
        """One line, e.g. ``up hello/dev: 1 created, 0 updated, ... (ok)``."""
        c = self.counts
        failed = sum(1 for r in self.resources if not r.ok)
        parts = [
            f"{c['create']} created",
            f"{c['update']} updated",
            f"{c['replace']} replaced",
            f"{c['delete']} deleted",
            f"{c['noop']} unchanged",
        ]
        if failed:
            parts.append(f"{failed} failed")
        return f"{self.phase.value} {self.app}/{self.stage}: {', '.join(parts)}"
