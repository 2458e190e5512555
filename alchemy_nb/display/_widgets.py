"""Widgets (ipywidgets 8): the approval panel, stage comparison, plan view, ledger timeline.

Imported only when a widget is asked for. Each widget keeps the object it shows as plain
data (the model) and only binds views to it; each carries the object's static bundle, so
a saved or exported notebook (no widget state) and a CI log still show it, and its
``repr`` is deterministic. Tests drive ``.value`` and ``.click()`` without a browser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from html import escape
from typing import Any

import ipywidgets as w

from ._bundle import static_bundle
from ._doc import Cell, Doc, Table
from ._views import broken, doc_for, plan_view

__all__ = [
    "ApprovalPanel",
    "ComparisonView",
    "PlanView",
    "TimelineView",
    "approval_panel",
    "widget_for",
]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _run_async(
    coro: Coroutine[Any, Any, Any], done: Callable[[Any, BaseException | None], None]
) -> None:
    """Run ``coro`` for a button: as a task on the kernel's running loop, else to the end."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        try:
            result = asyncio.run(coro)
        except Exception as exc:
            done(None, exc)
        else:
            done(result, None)
        return
    task = loop.create_task(coro)

    def finished(t: asyncio.Task[Any]) -> None:
        exc = t.exception() if not t.cancelled() else asyncio.CancelledError()
        done(None if exc else t.result(), exc)

    task.add_done_callback(finished)


class _Shown(w.VBox):  # type: ignore[misc]
    """A widget with a deterministic repr and the static bundle of what it shows."""

    def static_doc(self) -> Doc | None:
        raise NotImplementedError

    def static(self) -> dict[str, Any]:
        try:
            doc = self.static_doc()
        except Exception as exc:  # a display never raises: say what is wrong instead
            doc = broken(self, exc)
        return static_bundle(self, doc)

    def widget_bundle(self) -> dict[str, Any]:
        data = super()._repr_mimebundle_()
        return {WIDGET_MIME: data[WIDGET_MIME]} if data and WIDGET_MIME in data else {}

    def __repr__(self) -> str:
        return str(self.static().get("text/plain", type(self).__name__))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return {**self.static(), **self.widget_bundle()}


def _html(doc: Doc | None) -> str:
    return doc.html() if doc is not None else ""


# ------------------------------------------------------------------------ plan
class PlanView(_Shown):
    """A plan with a filter (changes only / everything) and one resource's field diff.

    Example::

        view = PlanView(await app.plan("dev"))
        view.show_unchanged.value = True
        view.resource.value = "api"       # its field-by-field diff below the table
    """

    def __init__(self, plan: Any) -> None:
        self.plan = plan
        self.show_unchanged = w.Checkbox(value=False, description="show unchanged")
        changed = [c.id for c in plan.changes if c.action.value != "noop"]
        self.resource = w.Dropdown(
            options=[("(pick a resource)", "")] + [(i, i) for i in changed],
            value="",
            description="diff of",
        )
        self.table = w.HTML()
        self.detail = w.HTML()
        super().__init__([w.HBox([self.show_unchanged, self.resource]), self.table, self.detail])
        self.show_unchanged.observe(lambda _: self._render(), names="value")
        self.resource.observe(lambda _: self._render(), names="value")
        self._render()

    def static_doc(self) -> Doc | None:
        return plan_view(self.plan)

    def visible_changes(self) -> list[Any]:
        return [
            c for c in self.plan.changes if self.show_unchanged.value or c.action.value != "noop"
        ]

    def _render(self) -> None:
        doc = plan_view(self.plan)
        rows = {c.id for c in self.visible_changes()}
        for table in doc.tables:
            table.rows = [r for r in table.rows if r[2] in rows]
            table.empty = "(no changes)"
        self.table.value = doc.html()
        chosen = next((c for c in self.plan.changes if c.id == self.resource.value), None)
        self.detail.value = _html(doc_for(chosen)) if chosen is not None else ""


# ------------------------------------------------------------------ timeline
class TimelineView(_Shown):
    """Ledger events filtered by kind and stage.

    Example::

        view = TimelineView(await ledger.events())
        view.kind.value = "approval"
    """

    def __init__(self, events: Any) -> None:
        from ..promotion._shown import Timeline

        self.events = events if isinstance(events, Timeline) else Timeline(events)
        kinds = sorted({str(e.get("kind")) for e in self.events})
        stages = sorted({str(e.get("stage")) for e in self.events if e.get("stage")})
        self.kind = w.Dropdown(options=[("every event", "")] + [(k, k) for k in kinds])
        self.kind.description = "event"
        self.stage = w.Dropdown(options=[("every stage", "")] + [(s, s) for s in stages])
        self.stage.description = "stage"
        self.table = w.HTML()
        super().__init__([w.HBox([self.kind, self.stage]), self.table])
        self.kind.observe(lambda _: self._render(), names="value")
        self.stage.observe(lambda _: self._render(), names="value")
        self._render()

    def static_doc(self) -> Doc | None:
        return doc_for(self.visible())

    def visible(self) -> list[Any]:
        from ..promotion._shown import Timeline

        return Timeline(
            e
            for e in self.events
            if (not self.kind.value or e.get("kind") == self.kind.value)
            and (not self.stage.value or e.get("stage") == self.stage.value)
        )

    def _render(self) -> None:
        self.table.value = _html(doc_for(self.visible()))


# ---------------------------------------------------------------- comparison
class ComparisonView(_Shown):
    """Stages side by side, with a Refresh button when it knows its pipeline.

    Example::

        view = ComparisonView(await compare_stages(pipeline), pipeline=pipeline)
        view.refresh.click()
    """

    def __init__(self, comparison: Any, *, pipeline: Any = None) -> None:
        self.comparison = comparison
        self.pipeline = pipeline
        self.table = w.HTML()
        self.refresh = w.Button(description="Refresh", disabled=pipeline is None)
        self.refresh.on_click(lambda _: self._refresh())
        super().__init__([self.refresh, self.table])
        self._render()

    def static_doc(self) -> Doc | None:
        return doc_for(self.comparison)

    def _render(self) -> None:
        self.table.value = _html(doc_for(self.comparison))

    def _refresh(self) -> None:
        from ._compare import compare_stages

        if self.pipeline is None:
            return
        stages = [row.stage for row in self.comparison.stages]

        def done(result: Any, exc: BaseException | None) -> None:
            if result is not None:
                self.comparison = result
            self._render()
            self.refresh.disabled = False

        self.refresh.disabled = True
        _run_async(compare_stages(self.pipeline, stages), done)


# ------------------------------------------------------------------ approval
class ApprovalPanel(_Shown):
    """Approve or reject a release for a stage: the release, its plan against the target,
    the gate's conditions (met and unmet), and Approve / Reject with a comment.

    A decision is recorded through :meth:`Pipeline.approve` / :meth:`Pipeline.reject`, the
    calls the CLI makes, so the panel refuses exactly what the rules refuse (the author
    approving their own release, a second approval by the same person, a policy).

    Example::

        panel = await approval_panel(pipeline, "prod", actor="bob")
        panel.comment.value = "looks good"
        panel.approve.click()
        panel.decision        # "approved by bob" (or why it was refused)
    """

    def __init__(
        self,
        pipeline: Any,
        stage: str,
        release: dict[str, Any],
        plan: Any,
        *,
        actor: str,
    ) -> None:
        self.pipeline = pipeline
        self.stage = stage
        self.release = release
        self.plan = plan
        self.decision = ""
        self.refused: list[str] = []
        self.header = w.HTML()
        self.diff = w.HTML(plan_view(plan).html())
        self.actor = w.Text(value=actor, description="as")
        self.comment = w.Textarea(
            value="", placeholder="a comment for the ledger", description="comment"
        )
        self.approve = w.Button(description="Approve", button_style="success", icon="check")
        self.reject = w.Button(description="Reject", button_style="danger", icon="times")
        self.status = w.HTML()
        self.approve.on_click(lambda _: self._decide(True))
        self.reject.on_click(lambda _: self._decide(False))
        super().__init__(
            [
                self.header,
                self.diff,
                self.actor,
                self.comment,
                w.HBox([self.approve, self.reject]),
                self.status,
            ]
        )
        self.add_class("anb-approval-panel")
        self._render()

    # --------------------------------------------------------------- model
    def gate(self) -> Any:
        return self.pipeline.open_gate(self.stage, self.release["id"])

    def conditions(self) -> list[tuple[str, bool]]:
        """Every condition of promoting this release to the stage, met or not."""
        p, stage, rel = self.pipeline, self.stage, self.release
        conf = p.config.stage(stage)
        short = str(rel["id"])[:12]
        found: list[tuple[str, bool]] = []
        if conf.promote_from:
            found.append(
                (
                    f"release {short} is the healthy release of {conf.promote_from}",
                    p.healthy_release(conf.promote_from) == rel["id"],
                )
            )
        hold = p.records.stage(stage).get("hold")
        found.append((f"not on hold in {stage}", not (hold and hold.get("release") == rel["id"])))
        if conf.allowed_branches:
            found.append(
                (
                    f"from an allowed branch ({', '.join(conf.allowed_branches)})",
                    rel.get("branch") in conf.allowed_branches,
                )
            )
        gate = self.gate()
        if conf.required_reviewers:
            approvers = {a["actor"] for a in (gate or {}).get("approvals", [])}
            if conf.prevent_self_review:
                approvers.discard(rel.get("author"))
            found.append((f"a gate to {stage} is open for this release", gate is not None))
            found.append(
                (
                    f"{len(approvers)} of {conf.required_reviewers} approval(s) from "
                    "reviewers who are not the author",
                    len(approvers) >= conf.required_reviewers,
                )
            )
            if gate is not None:
                for unmet in p.gate_unmet(gate, stage, rel, self.plan.digest):
                    if "required approvals" not in unmet:
                        found.append((unmet, False))
        return found

    def static_doc(self) -> Doc | None:
        rel = self.release
        gate = self.gate()
        conditions = self.conditions()
        rows: list[list[Cell]] = [
            [("met", "ok") if met else ("unmet", "bad"), text] for text, met in conditions
        ]
        ready = all(met for _, met in conditions)
        facts = [
            ("release", str(rel["id"])[:12]),
            ("author", str(rel.get("author") or "-")),
            ("branch", str(rel.get("branch") or "-")),
            ("gate", f"{gate['id']} ({gate['status']})" if gate else "none open"),
            ("plan", str(self.plan.digest)),
        ]
        if self.decision:
            facts.append(("decision", self.decision))
        return Doc(
            "approval",
            f"Approve release {str(rel['id'])[:12]} for {self.stage}",
            summary="ready to promote" if ready else "awaiting approval",
            tone="ok" if ready else "warn",
            facts=facts,
            tables=[
                Table(["", "condition"], rows, ("condition", "conditions"), caption="conditions"),
                *plan_view(self.plan).tables,
            ],
            problems=list(self.refused),
            data={
                "stage": self.stage,
                "release": rel["id"],
                "gate": dict(gate) if gate else None,
                "conditions": [{"condition": t, "met": m} for t, m in conditions],
                "plan": self.plan.to_json(),
                "decision": self.decision or None,
            },
        )

    # ---------------------------------------------------------------- views
    def _render(self) -> None:
        doc = self.static_doc()
        assert doc is not None
        head = Doc(doc.kind, doc.title, doc.summary, doc.tone, doc.facts, doc.tables[:1])
        self.header.value = head.html()
        if self.refused:
            items = "".join(f"<li>{escape(u)}</li>" for u in self.refused)
            self.status.value = (
                f'<div class="anb-refused"><b>{escape(self.decision)}</b><ul>{items}</ul></div>'
            )
        elif self.decision:
            self.status.value = f'<div class="anb-decided"><b>{escape(self.decision)}</b></div>'

    def _decide(self, approve: bool) -> None:
        actor = self.actor.value.strip() or None
        comment = self.comment.value
        verb = "approve" if approve else "reject"
        call = self.pipeline.approve if approve else self.pipeline.reject
        self.approve.disabled = self.reject.disabled = True
        self.status.value = f"<i>{verb}: recording…</i>"

        def done(result: Any, exc: BaseException | None) -> None:
            from ..errors import AlchemyError, GateError

            if exc is None:
                who = (result.get("approvals" if approve else "rejections") or [{}])[-1]
                self.decision = f"{'approved' if approve else 'rejected'} by {who.get('actor')}"
                self.refused = []
            elif isinstance(exc, GateError):
                self.decision = f"{verb} refused"
                self.refused = list(exc.unmet) or [exc.what]
            elif isinstance(exc, AlchemyError):
                self.decision = f"{verb} failed"
                self.refused = [str(exc)]
            else:
                self.decision = f"{verb} failed"
                self.refused = [f"{type(exc).__name__}: {exc}"]
            self.approve.disabled = self.reject.disabled = False
            self._render()

        _run_async(call(self.stage, self.release["id"], actor=actor, comment=comment), done)


async def approval_panel(
    pipeline: Any,
    stage: str,
    *,
    release: str | None = None,
    actor: str | None = None,
) -> ApprovalPanel:
    """The approval panel for promoting ``release`` (default: the release healthy in the
    stage's ``promote_from``) to ``stage``; ``actor`` defaults as for the CLI.

    Example::

        from alchemy_nb.display import approval_panel
        panel = await approval_panel(pipeline, "prod", actor="bob")
        panel         # shows it; the buttons record the decision in the ledger
    """
    from ..promotion import resolve_actor
    from ._switch import quiet

    rel = pipeline._default_release(stage, release)
    with quiet():
        _, plan = await pipeline._plan_digest(stage, rel)
    return ApprovalPanel(pipeline, stage, rel, plan, actor=resolve_actor(actor))


def widget_for(obj: Any) -> _Shown | None:
    """The widget that shows ``obj`` under the ``widget`` renderer, if it has one."""
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if name == "alchemy_nb.engine._plan.Plan":
        return PlanView(obj)
    if name == "alchemy_nb.promotion._shown.Timeline":
        return TimelineView(obj)
    if name == "alchemy_nb.display._compare.StageComparison":
        return ComparisonView(obj)
    return None
