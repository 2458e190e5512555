"""alchemy_nb.display without a browser: a bundle for every public type, deterministic
text, secrets masked on every surface, truncation, the renderer switch, progress, the
widgets' click paths, and objects in a broken state that still display."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from things import JOURNAL, Thing

import alchemy_nb
from alchemy_nb import display
from alchemy_nb.display import MIME, _switch
from alchemy_nb.errors import ConfigError, DeployError, GateError, StateError
from alchemy_nb.promotion import Ledger, Pipeline

CANARY = "canary-secret-5d1e0b"
PASSWORD = "canary-password-8a2f"
WIDGET = "application/vnd.jupyter.widget-view+json"

PROGRAM = """
from pathlib import Path
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("shown")

@app.program
def infra(stage):
    content = (Path(__file__).parent / "content.txt").read_text()
    f = File("f", path=f"out/{stage.name}.txt", content=content)
    return {"path": f.path}
"""

CONFIG = """
[stages.staging]
[stages.prod]
promote_from = "staging"
required_reviewers = 1
"""


@pytest.fixture(autouse=True)
def _renderer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("ALCHEMY_NB_DISPLAY", "ALCHEMY_NB_PROGRESS", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALCHEMY_ACTOR", "alice")
    monkeypatch.setenv("ALCHEMY_BRANCH", "main")
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    saved = dict(_switch._state)
    yield
    _switch._state.update(saved)
    display.options.max_rows = 20


def things_app(root: Path, *, count: int = 2, secret: str = CANARY) -> alchemy_nb.App:
    app = alchemy_nb.App("things", root=root, password=PASSWORD)
    declared: list[Any] = []

    @app.program
    def infra(stage: alchemy_nb.Stage) -> dict[str, Any]:
        declared.clear()
        first = Thing("t0", value="v0", token=alchemy_nb.Secret(secret))
        declared.append(first)
        for i in range(1, count):
            declared.append(Thing(f"t{i}", value=first.value, settings={"k": f"v{i}"}))
        return {"name": first.name, "token": alchemy_nb.Secret(secret)}

    app.declared = declared  # type: ignore[attr-defined]
    return app


def pipeline_in(folder: Path, content: str = "v1") -> Pipeline:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alchemy_run.py").write_text(textwrap.dedent(PROGRAM))
    (folder / "content.txt").write_text(content)
    (folder / "alchemy_nb.toml").write_text(textwrap.dedent(CONFIG))
    return Pipeline(alchemy_nb.load_program(folder / "alchemy_run.py"))


def check_surfaces(obj: Any, kind: str) -> dict[str, Any]:
    """The bundle, with what every surface must hold."""
    bundle = obj._repr_mimebundle_()
    assert set(bundle) >= {"text/plain", "text/html", MIME}, (kind, sorted(bundle))
    text, html = bundle["text/plain"], bundle["text/html"]
    assert bundle[MIME]["type"] == kind
    json.dumps(bundle[MIME])  # JSON-ready
    assert "\x1b" not in text, "no ANSI codes"
    assert not re.search(r"0x[0-9a-f]{6,}", text + html), "no memory addresses"
    assert not re.search(r"\d+(\.\d+)? ?(ms|s)\b", text), "no timings"
    assert "<script" not in html.lower() and " id=" not in html
    assert html.startswith(f'<div class="anb anb-{kind}">') and "<style scoped>" in html
    from IPython.core.formatters import DisplayFormatter

    shown, _ = DisplayFormatter().format(obj)
    assert shown["text/plain"] == text, "IPython shows our text, not a dict's repr"
    return bundle


def test_every_public_object_has_a_bundle(tmp_path: Path) -> None:
    app = things_app(tmp_path / "things")
    check_surfaces(app, "app")
    check_surfaces(app.stage("dev"), "stage")
    plan = run(app.plan("dev"))
    check_surfaces(plan, "plan")
    check_surfaces(plan.changes[0], "change")
    result = run(app.deploy("dev"))
    check_surfaces(result, "run")
    for resource in app.declared:  # type: ignore[attr-defined]
        check_surfaces(resource, "resource")
    check_surfaces(run(app.status("dev")), "status")
    from alchemy_nb.engine import ResourceHandle

    check_surfaces(ResourceHandle("t0", "test::Thing", {"value": "v0"}), "resource")
    check_surfaces(run(app.destroy("dev")), "run")

    p = pipeline_in(tmp_path / "promo")
    staged = run(p.deploy("staging"))
    check_surfaces(staged, "deploy")
    from alchemy_nb.promotion import ProbeResult

    probe = ProbeResult("api", "http://127.0.0.1:8787/api/health", False, "got 500, expected 200")
    assert "! got 500, expected 200" in check_surfaces(probe, "probe")["text/plain"]
    check_surfaces(p.release(staged.release), "release")
    gate = run(p.request_gate("prod"))
    check_surfaces(gate, "gate")
    check_surfaces(p.history(), "history")
    check_surfaces(p.releases(), "releases")
    ledger = Ledger(p.app.state, p.app.name)
    check_surfaces(ledger, "ledger")
    check_surfaces(run(ledger.events()), "ledger")
    check_surfaces(run(ledger.verify()), "verify")
    check_surfaces(run(display.compare_stages(p)), "stages")
    run(p.approve("prod", staged.release, actor="bob"))
    check_surfaces(run(p.promote("prod")), "promotion")
    with pytest.raises(GateError) as refused:
        run(p.approve("prod", staged.release, actor="alice"))
    bundle = check_surfaces(refused.value, "error")
    assert "unmet:" in bundle["text/plain"]


def test_text_is_the_same_for_the_same_app_anywhere(tmp_path: Path) -> None:
    """No paths, addresses, ids or times: two copies of one app read the same."""
    texts = []
    for name in ("one", "two"):
        app = things_app(tmp_path / name)
        plan = run(app.plan("dev"))
        result = run(app.deploy("dev"))
        texts.append(
            [
                {k: v for k, v in o._repr_mimebundle_().items() if k != MIME}
                for o in (app, plan, result, run(app.status("dev")), *app.declared)  # type: ignore[attr-defined]
            ]
        )
    assert texts[0] == texts[1]
    plan_text = texts[0][1]["text/plain"]
    assert plan_text.splitlines()[0] == (
        "Plan things/dev (up): 2 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged"
    )
    assert "+ create  test::Thing  t0" in plan_text


def test_secrets_are_masked_on_every_surface(tmp_path: Path) -> None:
    app = things_app(tmp_path / "s")
    shown = [run(app.plan("dev")), run(app.deploy("dev"))]
    shown += app.declared  # type: ignore[attr-defined]
    shown.append(run(app.status("dev")))
    changed = things_app(tmp_path / "s", secret=CANARY + "-rotated")
    plan = run(changed.plan("dev"))
    assert any(f.path == "token" for c in plan.changes for f in c.fields)
    shown += [plan, *plan.changes]
    JOURNAL.fail_on.add("update:t0")
    with pytest.raises(DeployError) as failed:
        run(changed.deploy("dev"))
    shown.append(failed.value)
    for obj in shown:
        for value in obj._repr_mimebundle_().values():
            assert CANARY not in json.dumps(value), type(obj).__name__
    assert "••••••" in shown[1]._repr_mimebundle_()["text/plain"]  # the output is there, masked


def test_long_tables_are_cut_like_pandas(tmp_path: Path) -> None:
    app = things_app(tmp_path / "many", count=50)
    plan = run(app.plan("dev"))
    bundle = plan._repr_mimebundle_()
    text = bundle["text/plain"]
    assert "50 resources (20 shown)" in text
    ids = re.findall(r"test::Thing  (t\d+)$", text, re.M)
    assert ids == [f"t{i}" for i in (*range(10), *range(40, 50))]
    assert "…" in text
    assert "50 resources (20 shown)" in bundle["text/html"]
    assert len(bundle[MIME]["data"]["changes"]) == 50  # machines get everything
    display.options.max_rows = 100
    assert len(re.findall(r"test::Thing", plan._repr_mimebundle_()["text/plain"])) == 50


def test_the_renderer_switch(tmp_path: Path) -> None:
    app = things_app(tmp_path / "r")
    plan = run(app.plan("dev"))
    assert display.renderer() == "auto"
    assert display.active() == "html"  # no live frontend here
    assert WIDGET not in plan._repr_mimebundle_()
    display.enable("text")
    assert set(plan._repr_mimebundle_()) == {"text/plain", MIME}
    display.enable("widget")
    bundle = plan._repr_mimebundle_()
    assert WIDGET in bundle and "text/html" in bundle  # the widget carries the fallback
    display.enable("html")
    assert WIDGET not in plan._repr_mimebundle_()
    with pytest.raises(ConfigError, match="unknown renderer 'fancy'"):
        display.enable("fancy")  # type: ignore[arg-type]
    _switch._state["renderer"] = None
    import os

    os.environ["ALCHEMY_NB_DISPLAY"] = "text"
    try:
        assert display.renderer() == "text"
    finally:
        del os.environ["ALCHEMY_NB_DISPLAY"]


def test_auto_is_never_live_outside_a_jupyter_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "/tmp/x.ipynb")
    assert not display.live_frontend()  # no kernel in this process
    monkeypatch.setenv("CI", "true")
    assert not display.live_frontend()


def test_approval_panel_refuses_what_the_rules_refuse_and_records_the_rest(
    tmp_path: Path,
) -> None:
    p = pipeline_in(tmp_path / "promo")
    staged = run(p.deploy("staging"))
    run(p.request_gate("prod"))
    panel = run(display.approval_panel(p, "prod", actor="alice"))
    assert panel.actor.value == "alice"
    assert "awaiting approval" in repr(panel)
    assert ("0 of 1 approval(s) from reviewers who are not the author", False) in (
        panel.conditions()
    )
    ledger = Ledger(p.app.state, p.app.name)

    panel.approve.click()  # the release's author
    assert panel.decision == "approve refused"
    assert any("prevent_self_review" in r for r in panel.refused)
    assert "prevent_self_review" in panel.status.value
    assert run(ledger.events(kind="approval")) == []

    panel.actor.value = "bob"
    panel.comment.value = "ship it"
    panel.approve.click()
    assert panel.decision == "approved by bob" and panel.refused == []
    approvals = run(ledger.events(kind="approval"))
    assert [(e["actor"], e["data"]["comment"]) for e in approvals] == [("bob", "ship it")]
    assert all(met for _, met in panel.conditions())
    bundle = panel._repr_mimebundle_()
    assert "ready to promote" in bundle["text/plain"] and WIDGET in bundle
    assert "approved by bob" in bundle["text/html"]

    panel.approve.click()  # twice by the same person
    assert any("already approved" in r for r in panel.refused)
    assert len(run(ledger.events(kind="approval"))) == 1

    panel.actor.value = "carol"
    panel.reject.click()
    assert panel.decision == "rejected by carol"
    assert p.open_gate("prod", staged.release) is None  # a rejection closes the gate
    with pytest.raises(GateError):
        run(p.promote("prod"))


def test_plan_timeline_and_comparison_widgets(tmp_path: Path) -> None:
    app = things_app(tmp_path / "w", count=3)
    run(app.deploy("dev"))
    JOURNAL.calls.clear()
    same = display.PlanView(run(things_app(tmp_path / "w", count=3).plan("dev")))
    assert "(no changes)" in same.table.value and "<td>t1</td>" not in same.table.value
    same.show_unchanged.value = True
    assert "<td>t1</td>" in same.table.value
    changed = things_app(tmp_path / "w", count=3, secret=CANARY + "2")
    view = display.PlanView(run(changed.plan("dev")))
    assert [o[1] for o in view.resource.options] == ["", "t0", "t1", "t2"]
    view.resource.value = "t0"
    assert "token" in view.detail.value and CANARY not in view.detail.value
    assert repr(view).startswith("Plan things/dev (up)")

    p = pipeline_in(tmp_path / "promo")
    run(p.deploy("staging"))
    run(p.request_gate("prod"))
    timeline = display.TimelineView(run(Ledger(p.app.state, p.app.name).events()))
    assert "gate.request" in timeline.table.value
    timeline.kind.value = "deploy"
    assert "gate.request" not in timeline.table.value and "deploy" in timeline.table.value
    assert "1 event(s)" in repr(timeline)  # the static fallback shows what the view shows

    comparison = display.ComparisonView(run(display.compare_stages(p)), pipeline=p)
    assert comparison.comparison.row("prod").release is None
    (p.app.root / "content.txt").write_text("v1")  # nothing changes: still in sync
    run(p.deploy("prod"))
    comparison.refresh.click()
    assert comparison.comparison.row("prod").release is not None
    assert comparison.comparison.row("staging").drift == "in sync"


def test_progress_on_a_terminal_and_quiet(tmp_path: Path) -> None:
    app = things_app(tmp_path / "p", count=3)
    stream = io.StringIO()
    run(
        app.deploy(
            "dev", reporter=display.Progress("up", "things", "dev", stream=stream, mode="terminal")
        )
    )
    out = stream.getvalue()
    assert "\r\x1b[2Kup things/dev [........................] 0/3" in out
    assert out.endswith("up things/dev: 3 created, 0 updated, 0 replaced, 0 deleted, 0 unchanged\n")

    quiet = io.StringIO()
    progress = display.Progress("destroy", "things", "dev", stream=quiet, quiet=True)
    run(app.destroy("dev", reporter=progress))
    assert quiet.getvalue() == ""
    assert progress.summary is not None and "3 deleted" in progress.summary


def test_progress_frames_end_with_the_final_state(tmp_path: Path) -> None:
    app = things_app(tmp_path / "f", count=2)
    progress = display.Progress("up", "things", "dev", stream=io.StringIO())
    from alchemy_nb.display._progress import ProgressFrame

    frames: list[str] = []
    original = progress._on

    def record(event: str, data: dict[str, Any]) -> None:
        original(event, data)
        frames.append(ProgressFrame(progress)._repr_mimebundle_()["text/plain"])

    progress._on = record  # type: ignore[method-assign]
    run(app.deploy("dev", reporter=progress))
    assert frames[0] == "progress · up things/dev: 0/2 done"
    assert frames[-1] == (
        "progress · up things/dev: 2 created, 0 updated, 0 replaced, 0 deleted, 0 unchanged"
    )
    html = ProgressFrame(progress)._repr_mimebundle_()["text/html"]
    assert '<progress value="2" max="2">' in html and html.endswith("<!-- /anb-progress -->")


def test_runs_show_no_progress_outside_a_kernel_or_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = things_app(tmp_path / "q")
    run(app.plan("dev"))
    run(app.deploy("dev"))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_failed_apply_shows_what_failed(tmp_path: Path) -> None:
    app = things_app(tmp_path / "x", count=2)
    JOURNAL.fail_on.add("create:t1")
    with pytest.raises(DeployError) as failed:
        run(app.deploy("dev"))
    result = failed.value.result
    text = result._repr_mimebundle_()["text/plain"]
    assert "(failed)" in text and "! create failed" in text
    assert "t1: " in text and "failed on purpose" in text
    error = failed.value._repr_mimebundle_()
    assert "failures" in error["text/plain"] and error[MIME]["type"] == "error"


def test_broken_objects_still_display(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alchemy_nb.promotion._shown import Release, Timeline

    damaged = Release({"id": "abc123", "author": "alice"})  # no files
    text = damaged._repr_mimebundle_()["text/plain"]
    assert "! the release record lists no files (it is damaged)" in text

    events = Timeline([{"seq": 1, "kind": "deploy", "data": "oops"}, "not an event"])  # type: ignore[list-item]
    text = events._repr_mimebundle_()["text/plain"]
    assert "(damaged: data is not an object)" in text and "an entry is not an event" in text

    app = things_app(tmp_path / "b")
    run(app.deploy("dev"))
    resource = app.declared[0]  # type: ignore[attr-defined]

    def lost() -> Any:
        raise StateError("the record of t0 is damaged", where="state.json line 3")

    resource.load_outputs(lost)
    text = resource._repr_mimebundle_()["text/plain"]
    assert "! its outputs cannot be read: StateError: the record of t0 is damaged" in text

    (tmp_path / "b" / "alchemy_nb.toml").write_text("[stages.dev]\nnot_a_key = 1\n")
    app._config = None
    text = app._repr_mimebundle_()["text/plain"]
    assert "! the stage configuration cannot be read" in text and "not_a_key" in text

    from alchemy_nb.display import _views

    def broken_view(obj: Any) -> Any:
        raise KeyError("missing")

    (tmp_path / "b" / "alchemy_nb.toml").unlink()
    app._config = None
    plan = run(app.plan("dev"))
    monkeypatch.setitem(_views._VIEWS, "alchemy_nb.engine._plan.Plan", broken_view)
    bundle = plan._repr_mimebundle_()
    assert bundle["text/plain"].startswith("Plan (shown in part)")
    assert "cannot show this Plan: KeyError" in bundle["text/plain"]


def test_import_alchemy_nb_does_not_load_the_display() -> None:
    code = (
        "import sys, alchemy_nb; assert 'alchemy_nb.display' not in sys.modules; "
        "alchemy_nb.errors.ConfigError('x')._repr_mimebundle_(); "
        "assert 'alchemy_nb.display' in sys.modules; "
        "assert 'ipywidgets' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_which_progress_a_run_gets_and_how_to_quiet_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from alchemy_nb._repr import progress_reporter
    from alchemy_nb.display._progress import Progress

    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # as if in a kernel
    monkeypatch.setattr(_switch, "in_kernel", lambda: True)
    reporter = progress_reporter("up", "a", "dev")
    assert isinstance(reporter, Progress) and reporter.mode == "notebook"
    with display.quiet():
        assert progress_reporter("up", "a", "dev") is None
    display.enable(progress=False)
    assert progress_reporter("up", "a", "dev") is None
    display.enable(progress=True)
    monkeypatch.setenv("ALCHEMY_NB_PROGRESS", "0")
    assert progress_reporter("up", "a", "dev") is None


def test_a_widget_over_damaged_records_still_displays(tmp_path: Path) -> None:
    p = pipeline_in(tmp_path / "promo")
    run(p.deploy("staging"))
    run(p.request_gate("prod"))
    panel = run(display.approval_panel(p, "prod", actor="bob"))
    stage_file = tmp_path / "promo" / ".alchemy" / p.app.name / "promotion" / "stages" / "prod.json"
    stage_file.parent.mkdir(parents=True, exist_ok=True)
    stage_file.write_text("{not json")
    bundle = panel._repr_mimebundle_()
    assert "ApprovalPanel (shown in part)" in bundle["text/plain"]
    assert "not valid JSON" in bundle["text/plain"] and WIDGET in bundle
