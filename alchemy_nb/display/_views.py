"""What each public object shows: one function per type, each returning a :class:`Doc`.

Views are looked up by the qualified names of a type's bases, so showing an object never
imports a module its program did not load. A view reads only what the object already
holds; whatever it cannot read (missing outputs, a damaged record, a failed apply) it
reports as a problem instead of raising.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._doc import Cell, Doc, Table, mask, short

__all__ = ["doc_for", "view"]

_VIEWS: dict[str, Callable[[Any], Doc]] = {}

SYMBOLS = {"create": "+", "update": "~", "replace": "±", "delete": "-", "noop": " "}
TONES = {"create": "ok", "update": "warn", "replace": "warn", "delete": "bad", "noop": "dim"}
RESOURCES = ("resource", "resources")


def view(*names: str) -> Callable[[Callable[[Any], Doc]], Callable[[Any], Doc]]:
    """Register a view for the types named ``module.QualName``."""

    def register(fn: Callable[[Any], Doc]) -> Callable[[Any], Doc]:
        for name in names:
            _VIEWS[name] = fn
        return fn

    return register


def doc_for(obj: Any) -> Doc | None:
    """The view of ``obj`` (by its type or a base), or None when it has none."""
    for cls in type(obj).__mro__:
        fn = _VIEWS.get(f"{cls.__module__}.{cls.__qualname__}")
        if fn is not None:
            return fn(obj)
    return None


def broken(obj: Any, exc: BaseException) -> Doc:
    """What an object shows when its view failed: its name and what went wrong."""
    name = type(obj).__name__
    return Doc(
        "error",
        f"{name} (shown in part)",
        tone="bad",
        problems=[f"cannot show this {name}: {type(exc).__name__}: {exc}"],
        data={"type": name, "error": str(exc)},
    )


def _counts_line(counts: Mapping[str, int], verbs: Mapping[str, str]) -> str:
    return ", ".join(f"{counts.get(k, 0)} {v}" for k, v in verbs.items())


def _action(action: str) -> Cell:
    return (f"{SYMBOLS.get(action, '?')} {action}", TONES.get(action, "info"))


def _outputs_table(outputs: Mapping[str, Any], caption: str = "outputs") -> Table:
    rows: list[list[Cell]] = [[str(k), short(v)] for k, v in sorted(outputs.items())]
    return Table(["name", "value"], rows, ("output", "outputs"), caption=caption)


def _yes_no(flag: Any, yes: str = "yes", no: str = "no") -> Cell:
    return (yes, "ok") if flag else (no, "bad")


# --------------------------------------------------------------------- engine
@view("alchemy_nb.engine._app.App")
def app_view(app: Any) -> Doc:
    facts = [("default target", str(app.target))]
    fn = app.program_function
    facts.append(("program", getattr(fn, "__name__", "(none)") if fn else "(none)"))
    problems: list[str] = []
    tables: list[Table] = []
    stages: dict[str, Any] = {}
    try:
        stages = dict(app.config.stages)
    except Exception as exc:
        problems.append(f"the stage configuration cannot be read: {exc}")
    rows: list[list[Cell]] = []
    for name, conf in sorted(stages.items()):
        reviewers = str(conf.required_reviewers) if conf.required_reviewers else "-"
        rows.append(
            [
                name,
                conf.target,
                conf.promote_from or "-",
                reviewers,
                str(len(conf.health)),
            ]
        )
    tables.append(
        Table(
            ["stage", "target", "promote from", "reviewers", "health probes"],
            rows,
            ("stage", "stages"),
            caption="stages",
            empty="(no stage configuration: every stage deploys to the default target)",
        )
    )
    return Doc(
        "app",
        f"App {app.name}",
        facts=facts,
        tables=tables,
        problems=problems,
        data={
            "name": app.name,
            "target": app.target,
            "program": facts[1][1],
            "stages": {
                name: {
                    "target": c.target,
                    "promote_from": c.promote_from,
                    "required_reviewers": c.required_reviewers,
                }
                for name, c in sorted(stages.items())
            },
        },
    )


@view("alchemy_nb.engine._app.Stage")
def stage_view(stage: Any) -> Doc:
    facts = [("phase", stage.phase.value)]
    problems = []
    try:
        settings = stage.app.settings(stage.name)
        facts.append(("target", settings.target))
        stage_vars = {k: v for k, v in settings.vars.items() if k != "ALCHEMY_RELEASE"}
    except Exception as exc:
        stage_vars = {}
        problems.append(f"the stage configuration cannot be read: {exc}")
    tables = [_outputs_table(stage_vars, "vars")] if stage_vars else []
    return Doc(
        "stage",
        f"Stage {stage.app.name}/{stage.name}",
        facts=facts,
        tables=tables,
        problems=problems,
        data={"app": stage.app.name, "stage": stage.name, "phase": stage.phase.value},
    )


@view("alchemy_nb.engine._app.StageStatus")
def status_view(status: Any) -> Doc:
    rows: list[list[Cell]] = []
    for r in status.resources:
        state = str(r.get("status"))
        tone = "ok" if state in ("created", "updated") else "warn"
        rows.append([str(r.get("id")), str(r.get("kind")), (state, tone)])
    problems = []
    if status.interrupted:
        problems.append("a run was interrupted: deploy again to finish it")
    facts = [("lock", status.lock.describe() if status.lock else "free")]
    return Doc(
        "status",
        f"Stage {status.app}/{status.stage}",
        summary=f"{len(status.resources)} resource(s) in state",
        tone="warn" if status.interrupted else "ok",
        facts=facts,
        tables=[
            Table(["id", "kind", "status"], rows, RESOURCES, empty="(nothing deployed)"),
            *([_outputs_table(status.outputs)] if status.outputs else []),
        ],
        problems=problems,
        data=status.to_json(),
    )


@view("alchemy_nb.engine._resource.Resource")
def resource_view(res: Any) -> Doc:
    from ..engine._run import _DISPLAY_HOOKS, encode

    problems = []
    try:
        props = encode(res.props, _DISPLAY_HOOKS, skip_defaults=True)
    except Exception as exc:
        props = {}
        problems.append(f"its props cannot be shown: {exc}")
    outputs: dict[str, Any] | None = None
    try:
        current = res.outputs
        if current is not None:
            outputs = encode(current, _DISPLAY_HOOKS)
    except Exception as exc:
        problems.append(f"its outputs cannot be read: {type(exc).__name__}: {exc}")
    deps = [d.id for d in res.dependencies()]
    rows: list[list[Cell]] = [[k, short(v)] for k, v in sorted(props.items())]
    tables = [Table(["prop", "value"], rows, ("prop", "props"), caption="props")]
    if outputs is not None:
        tables.append(_outputs_table(outputs))
    facts = [("kind", res.kind)]
    if deps:
        facts.append(("depends on", ", ".join(deps)))
    if outputs is None and not problems:
        facts.append(("outputs", "not deployed yet (known after apply)"))
    return Doc(
        "resource",
        f"{type(res).__name__} {res.id}",
        tone="ok" if outputs is not None else "info",
        facts=facts,
        tables=tables,
        problems=problems,
        data={"id": res.id, "kind": res.kind, "props": props, "outputs": outputs, "deps": deps},
    )


@view("alchemy_nb.engine._resource.ResourceHandle")
def handle_view(handle: Any) -> Doc:
    return Doc(
        "resource",
        f"{handle.kind} {handle.id}",
        tables=[_outputs_table(handle.outputs)],
        data={"id": handle.id, "kind": handle.kind, "outputs": handle.outputs},
    )


PLAN_VERBS = {
    "create": "to create",
    "update": "to update",
    "replace": "to replace",
    "delete": "to delete",
    "noop": "unchanged",
}


def _change_detail(change: Any) -> str:
    parts = []
    if change.reason:
        parts.append(f"({change.reason})")
    for f in change.fields:
        tag = " [forces replacement]" if f.forces_replacement else ""
        parts.append(f"{f.path}: {short(f.before, 30)} → {short(f.after, 30)}{tag}")
    return "; ".join(parts)


@view("alchemy_nb.engine._plan.Plan")
def plan_view(plan: Any) -> Doc:
    rows: list[list[Cell]] = [
        [_action(c.action.value), c.kind, c.id, _change_detail(c)] for c in plan.changes
    ]
    counts = plan.counts
    return Doc(
        "plan",
        f"Plan {plan.app}/{plan.stage} ({plan.phase.value})",
        summary=_counts_line(counts, PLAN_VERBS),
        tone="warn" if plan.has_changes else "ok",
        facts=[("digest", plan.digest)],
        tables=[
            Table(
                ["action", "kind", "id", "changes"],
                rows,
                RESOURCES,
                empty="(no resources)",
            )
        ],
        data=plan.to_json(),
    )


@view("alchemy_nb.engine._plan.Change")
def change_view(change: Any) -> Doc:
    rows: list[list[Cell]] = [
        [
            f.path,
            short(f.before),
            short(f.after),
            ("forces replacement", "warn") if f.forces_replacement else "",
        ]
        for f in change.fields
    ]
    facts = [("kind", change.kind)]
    if change.reason:
        facts.append(("reason", change.reason))
    if change.deps:
        facts.append(("depends on", ", ".join(change.deps)))
    return Doc(
        "change",
        f"{SYMBOLS.get(change.action.value, '?')} {change.action.value} {change.id}",
        tone=TONES.get(change.action.value, "info").replace("dim", "ok"),
        facts=facts,
        tables=[
            Table(
                ["field", "before", "after", ""],
                rows,
                ("field", "fields"),
                empty="(no field changes)",
            )
        ]
        if change.action.value in ("update", "replace")
        else [],
        data=change.to_json(),
    )


RESULT_VERBS = {
    "create": "created",
    "update": "updated",
    "replace": "replaced",
    "delete": "deleted",
    "noop": "unchanged",
}


@view("alchemy_nb.engine._plan.RunResult")
def result_view(result: Any) -> Doc:
    rows: list[list[Cell]] = []
    problems = []
    for r in result.resources:
        verb = RESULT_VERBS.get(r.action.value, r.action.value)
        if r.ok:
            rows.append([r.id, r.kind, (f"{SYMBOLS.get(r.action.value, '?')} {verb}", "ok")])
        else:
            rows.append([r.id, r.kind, (f"! {r.action.value} failed", "bad")])
            problems.append(f"{r.id}: {r.error}")
    rows.sort(key=lambda row: str(row[0]))
    tables = [Table(["id", "kind", "result"], rows, RESOURCES, empty="(no resources)")]
    if result.outputs_masked:
        tables.append(_outputs_table(result.outputs_masked))
    facts = []
    if result.plan_digest:
        facts.append(("plan", result.plan_digest))
    if result.recovered:
        facts.append(("recovered", "finished an interrupted run"))
    summary = result.summary().split(": ", 1)[-1]
    return Doc(
        "run",
        f"{result.phase.value} {result.app}/{result.stage}",
        summary=summary + ("" if result.ok else " (failed)"),
        tone="ok" if result.ok else "bad",
        facts=facts,
        tables=tables,
        problems=problems,
        data=result.to_json(),
    )


# ------------------------------------------------------------------ promotion
def _rel(release: Any) -> str:
    return str(release or "-")[:12]


@view("alchemy_nb.promotion._pipeline.Outcome")
def outcome_view(outcome: Any) -> Doc:
    facts = [("release", _rel(outcome.release))]
    if outcome.rolled_back_to:
        facts.append(("rolled back to", _rel(outcome.rolled_back_to)))
    rows: list[list[Cell]] = [
        [p.worker, p.url or "-", _yes_no(p.ok, "ok", "failed"), p.detail] for p in outcome.probes
    ]
    tables = [
        Table(
            ["worker", "url", "health", "detail"],
            rows,
            ("probe", "probes"),
            caption="health",
            empty="(no health probes configured)",
        )
    ]
    summary = "healthy" if outcome.healthy else "UNHEALTHY"
    if outcome.result is not None:
        summary += "; " + outcome.result.summary().split(": ", 1)[-1]
        if outcome.result.outputs_masked:
            tables.append(_outputs_table(outcome.result.outputs_masked))
    problems = [f"{p.worker}: {p.detail}" for p in outcome.probes if not p.ok]
    if outcome.rolled_back_to:
        problems.append(f"rolled back automatically to {_rel(outcome.rolled_back_to)}")
    return Doc(
        outcome.action,
        f"{outcome.action} {_rel(outcome.release)} to {outcome.stage}",
        summary=summary,
        tone="ok" if outcome.healthy else "bad",
        facts=facts,
        tables=tables,
        problems=problems,
        data=outcome.to_json(),
    )


@view("alchemy_nb.promotion._pipeline.ProbeResult")
def probe_view(probe: Any) -> Doc:
    return Doc(
        "probe",
        f"Health probe of {probe.worker}",
        summary=("ok" if probe.ok else "failed") + f": {probe.detail}",
        tone="ok" if probe.ok else "bad",
        facts=[("url", probe.url or "-")],
        problems=[] if probe.ok else [probe.detail],
        data=probe.to_json(),
    )


@view("alchemy_nb.promotion._shown.Release")
def release_view(rel: Any) -> Doc:
    facts = [
        ("id", str(rel.get("id", "?"))),
        ("author", str(rel.get("author") or "-")),
        ("branch", str(rel.get("branch") or "-")),
        ("commit", str(rel.get("commit") or "-")[:12]),
        ("program", str(rel.get("program") or "-")),
        ("created", str(rel.get("created_at") or "-")),
    ]
    files = rel.get("files")
    problems = []
    rows: list[list[Cell]] = []
    if isinstance(files, dict):
        rows = [[str(path), str(sha)[:12]] for path, sha in sorted(files.items())]
    else:
        problems.append("the release record lists no files (it is damaged)")
    return Doc(
        "release",
        f"Release {_rel(rel.get('id'))}",
        tone="bad" if problems else "info",
        facts=facts,
        tables=[Table(["file", "sha256"], rows, ("file", "files"), caption="files")],
        problems=problems,
        data=dict(rel),
    )


@view("alchemy_nb.promotion._shown.Gate")
def gate_view(gate: Any) -> Doc:
    status = str(gate.get("status", "?"))
    tone = {"open": "warn", "used": "ok", "rejected": "bad"}.get(status, "info")
    facts = [
        ("gate", str(gate.get("id", "?"))),
        ("release", _rel(gate.get("release"))),
        ("status", status),
        ("requested by", str(gate.get("requested_by") or "-")),
        ("plan", str(gate.get("plan_digest") or "-")),
    ]
    rows: list[list[Cell]] = []
    for entry in gate.get("approvals") or []:
        rows.append([("approved", "ok"), str(entry.get("actor")), str(entry.get("comment") or "")])
    for entry in gate.get("rejections") or []:
        rows.append([("rejected", "bad"), str(entry.get("actor")), str(entry.get("comment") or "")])
    unmet = list(gate.get("unmet") or [])
    return Doc(
        "gate",
        f"Gate to {gate.get('stage', '?')} for {_rel(gate.get('release'))}",
        summary=f"{status}; {len(gate.get('approvals') or [])} approval(s)",
        tone=tone,
        facts=facts,
        tables=[
            Table(
                ["decision", "by", "comment"],
                rows,
                ("decision", "decisions"),
                caption="decisions",
                empty="(no decision yet)",
            )
        ],
        problems=[f"unmet: {u}" for u in unmet],
        data=dict(gate),
    )


@view("alchemy_nb.promotion._shown.History")
def history_view(history: Any) -> Doc:
    rows: list[list[Cell]] = [
        [
            str(e.get("at", "-")),
            str(e.get("stage", "-")),
            str(e.get("action", "-")),
            _rel(e.get("release")),
            str(e.get("actor", "-")),
            _yes_no(e.get("healthy"), "healthy", "unhealthy"),
        ]
        for e in history
    ]
    return Doc(
        "history",
        "History",
        summary=f"{len(rows)} deploy(s), promotion(s) and rollback(s)",
        tables=[
            Table(
                ["at", "stage", "action", "release", "by", "health"],
                rows,
                ("entry", "entries"),
                empty="(nothing deployed yet)",
            )
        ],
        data=list(history),
    )


@view("alchemy_nb.promotion._shown.Releases")
def releases_view(releases: Any) -> Doc:
    rows: list[list[Cell]] = [
        [
            _rel(r.get("id")),
            str(r.get("stage", "-")),
            _yes_no(r.get("healthy"), "healthy", "unhealthy"),
            str(r.get("author") or "-"),
            str(r.get("action") or "-"),
        ]
        for r in releases
    ]
    return Doc(
        "releases",
        "Releases",
        summary=f"{len(rows)} release(s) by stage",
        tables=[
            Table(
                ["release", "stage", "health", "author", "last action"],
                rows,
                ("release", "releases"),
                empty="(no releases yet)",
            )
        ],
        data=list(releases),
    )


def _event_detail(event: Mapping[str, Any]) -> str:
    data = event.get("data")
    if not isinstance(data, dict):
        return "(damaged: data is not an object)"
    parts = []
    if data.get("comment"):
        parts.append(f"“{data['comment']}”")
    if "ok" in data:
        parts.append("ok" if data["ok"] else "failed")
    if "healthy" in data:
        parts.append("healthy" if data["healthy"] else "unhealthy")
    if isinstance(data.get("counts"), dict):
        counts = data["counts"]
        parts.append(", ".join(f"{v} {k}" for k, v in counts.items() if v))
    if data.get("unmet"):
        parts.append("unmet: " + "; ".join(str(u) for u in data["unmet"]))
    if data.get("error"):
        parts.append(str(data["error"]))
    if data.get("reason"):
        parts.append(str(data["reason"]))
    return short(" · ".join(p for p in parts if p), 80)


@view("alchemy_nb.promotion._shown.Timeline")
def timeline_view(events: Any) -> Doc:
    rows: list[list[Cell]] = []
    problems = []
    tone_of = {"approval": "ok", "rejection": "bad", "rollback": "warn", "hold": "warn"}
    for e in events:
        if not isinstance(e, Mapping):
            problems.append(f"an entry is not an event: {short(e)}")
            continue
        kind = str(e.get("kind", "?"))
        data: dict[str, Any] = e["data"] if isinstance(e.get("data"), dict) else {}
        tone = tone_of.get(kind, "info")
        if data.get("ok") is False or data.get("healthy") is False:
            tone = "bad"
        rows.append(
            [
                str(e.get("seq", "?")),
                str(e.get("time", "-"))[:19].replace("T", " "),
                (kind, tone),
                str(e.get("stage") or "-"),
                _rel(e.get("release")),
                str(e.get("actor", "-")),
                _event_detail(e),
            ]
        )
    return Doc(
        "ledger",
        "Ledger",
        summary=f"{len(rows)} event(s), oldest first",
        tables=[
            Table(
                ["seq", "time (UTC)", "event", "stage", "release", "by", "detail"],
                rows,
                ("event", "events"),
                empty="(no events yet)",
            )
        ],
        problems=problems,
        data=list(events),
    )


@view("alchemy_nb.promotion._ledger.Ledger")
def ledger_view(ledger: Any) -> Doc:
    return Doc(
        "ledger",
        f"Ledger of {ledger.app}",
        summary="read it with `await ledger.events()`; check it with `await ledger.verify()`",
        facts=[("store", str(ledger.store.location))],
        data={"app": ledger.app, "store": str(ledger.store.location)},
    )


@view("alchemy_nb.promotion._ledger.Verification")
def verification_view(result: Any) -> Doc:
    return Doc(
        "verify",
        "Ledger verification",
        summary=result.describe(),
        tone="ok" if result.ok else "bad",
        problems=[] if result.ok else [result.reason],
        data=result.to_json(),
    )


@view("alchemy_nb.display._compare.StageComparison")
def comparison_view(comparison: Any) -> Doc:
    rows: list[list[Cell]] = []
    problems = []
    for s in comparison.stages:
        drift: Cell = "-"
        if s.drift is not None:
            drift = (s.drift, "warn") if s.drift != "in sync" else (s.drift, "ok")
        health: Cell = "-"
        if s.healthy is not None:
            health = _yes_no(s.healthy, "healthy", "unhealthy")
        rows.append(
            [
                s.stage,
                s.target,
                _rel(s.release),
                health,
                str(s.resources),
                ", ".join(f"{k}={short(v, 40)}" for k, v in sorted(s.outputs.items())) or "-",
                drift,
            ]
        )
        problems += [f"{s.stage}: {p}" for p in s.problems]
    same = comparison.same_release()
    return Doc(
        "stages",
        f"Stages of {comparison.app}",
        summary=same,
        tables=[
            Table(
                ["stage", "target", "release", "health", "resources", "outputs", "drift"],
                rows,
                ("stage", "stages"),
                empty="(no stages)",
            )
        ],
        problems=problems,
        data=comparison.to_json(),
    )


# --------------------------------------------------------------------- errors
@view("alchemy_nb.errors.AlchemyError")
def error_view(exc: Any) -> Doc:
    facts = []
    if exc.where:
        facts.append(("where", str(exc.where)))
    if exc.fix:
        facts.append(("fix", str(exc.fix)))
    tables = []
    failures = getattr(exc, "failures", None)
    if failures:
        rows: list[list[Cell]] = [[str(k), (str(v), "bad")] for k, v in sorted(failures.items())]
        tables.append(Table(["resource", "error"], rows, RESOURCES, caption="failures"))
    return Doc(
        "error",
        f"{type(exc).__name__}: {exc.what}",
        tone="bad",
        facts=facts,
        tables=tables,
        problems=[f"unmet: {u}" for u in getattr(exc, "unmet", [])],
        data=mask(exc.to_json()),
    )
