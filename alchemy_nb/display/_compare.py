"""Stages side by side: which release each runs, its health, outputs and drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["StageComparison", "StageRow", "compare_stages"]


@dataclass
class StageRow:
    """One stage in a :class:`StageComparison`."""

    stage: str
    target: str
    release: str | None = None
    healthy: bool | None = None
    resources: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)
    drift: str | None = None
    """``in sync``, ``N change(s)`` (the state differs from what its release declares), or
    None when nothing is deployed or drift was not checked."""
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "target": self.target,
            "release": self.release,
            "healthy": self.healthy,
            "resources": self.resources,
            "outputs": self.outputs,
            "drift": self.drift,
            "problems": self.problems,
        }


@dataclass
class StageComparison:
    """Every stage of an app against the others (``await compare_stages(pipeline)``)."""

    app: str
    stages: list[StageRow]

    def row(self, stage: str) -> StageRow:
        """The row of ``stage``."""
        for row in self.stages:
            if row.stage == stage:
                return row
        raise KeyError(stage)

    def same_release(self) -> str:
        """One line: which stages run the same release."""
        by_release: dict[str, list[str]] = {}
        for row in self.stages:
            if row.release:
                by_release.setdefault(row.release[:12], []).append(row.stage)
        if not by_release:
            return "no stage runs a release yet"
        return "; ".join(
            f"{', '.join(stages)} run{'s' if len(stages) == 1 else ''} {release}"
            for release, stages in by_release.items()
        )

    def to_json(self) -> dict[str, Any]:
        return {"app": self.app, "stages": [row.to_json() for row in self.stages]}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from ._bundle import bundle

        return bundle(self, include, exclude)


async def compare_stages(
    pipeline: Any, stages: list[str] | None = None, *, drift: bool = True
) -> StageComparison:
    """Compare ``stages`` (default: every configured or deployed stage) of a pipeline's app.

    ``drift=True`` plans each stage's current release against its state (nothing is
    changed) to tell whether the stage still is what its release declares.

    Example::

        from alchemy_nb.display import compare_stages
        await compare_stages(pipeline)      # dev, staging, prod: release, health, outputs
    """
    from ._switch import quiet

    app = pipeline.app
    names = list(stages or [])
    if not names:
        try:
            names = list(app.config.stages)
        except Exception:
            names = []
        names += [s for s in pipeline.records.stages() if s not in names]
    rows = []
    with quiet():
        for name in names:
            rows.append(await _row(pipeline, name, drift))
    return StageComparison(app.name, rows)


async def _row(pipeline: Any, name: str, drift: bool) -> StageRow:
    app = pipeline.app
    try:
        target = app.settings(name).target
    except Exception:
        target = "?"
    row = StageRow(name, target)
    try:
        status = await app.status(name)
        row.resources = len(status.resources)
        row.outputs = dict(status.outputs)
        if status.interrupted:
            row.problems.append("a run was interrupted; deploy again to finish it")
    except Exception as exc:
        row.problems.append(f"state cannot be read: {exc}")
        return row
    try:
        record = pipeline.records.stage(name)
    except Exception as exc:
        row.problems.append(f"promotion records cannot be read: {exc}")
        return row
    row.release = record.get("current")
    history = record.get("history") or []
    if history:
        row.healthy = bool(history[-1].get("healthy"))
    if drift and row.release and row.resources:
        try:
            _, plan = await pipeline._plan_digest(name, pipeline.records.release(row.release))
            changed = sum(1 for c in plan.changes if c.action.value != "noop")
            row.drift = f"{changed} change(s)" if changed else "in sync"
        except Exception as exc:
            row.problems.append(f"drift cannot be checked: {exc}")
    return row
