"""Generate notebooks/explore.ipynb, the guided tour, and execute it to store its outputs.

Run `python scripts/make_explore.py` after changing the tour here (it takes a minute: it
deploys the example app on the local target, three stages, then destroys them). The
stored outputs are what `tests/test_display_notebook.py` checks with nbval. `--check`
exits 1 when the committed notebook's cells differ from what this script generates.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "notebooks" / "explore.ipynb"

# (kind, source, tags): "md" or "code"
CELLS: list[tuple[str, str, list[str]]] = [
    (
        "md",
        """\
# Exploring a deployment

A guided tour of alchemy-nb on the **local target**: everything below runs on this
machine, offline, with no account. You will deploy the example app (a Python Worker
with a D1 database, a KV namespace and an R2 bucket), look at its resources and outputs,
call the worker, plan a change and read the diff, compare stages, approve and promote a
release, and read the ledger.

Every object shows as a table here, as plain text in a CI log, and as JSON for scripts
(`application/vnd.alchemy-nb+json`). Secrets never show.""",
        [],
    ),
    (
        "code",
        """\
# A scratch copy of the example app (examples/demo), so the tour starts fresh each time.
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import alchemy_nb
from alchemy_nb import display
from alchemy_nb.promotion import Ledger, Pipeline

source = Path(os.environ.get("ALCHEMY_NB_DEMO_APP", "../examples/demo")).resolve()
workdir = Path(os.environ.get("ALCHEMY_NB_EXPLORE_DIR") or tempfile.mkdtemp(prefix="explore-"))
shutil.copytree(source, workdir / "demo", ignore=shutil.ignore_patterns(".alchemy", "__pycache__"))

# alice writes and deploys the code; bob reviews it. (In CI these come from GITHUB_ACTOR,
# GITHUB_REF_NAME and GITHUB_SHA; the tour pins them so that it reads the same every run.)
os.environ.update(ALCHEMY_ACTOR="alice", ALCHEMY_BRANCH="main")
os.environ.pop("GITHUB_SHA", None)

app = alchemy_nb.load_program(workdir / "demo" / "alchemy_run.py")
pipeline = Pipeline(app)
app""",
        [],
    ),
    (
        "md",
        """\
## Plan, then deploy `dev`

A plan says exactly what a deploy would do and changes nothing. The deploy shows its
progress in place and ends with one summary line; the release (a content digest of the
code) is health-checked after the deploy.""",
        [],
    ),
    ("code", 'plan = await pipeline.plan("dev")\nplan', []),
    ("code", 'dev = await pipeline.deploy("dev")\ndev', []),
    (
        "md",
        """\
## Resources and outputs

What state knows about the stage: each resource, its status, and the program's outputs.""",
        [],
    ),
    ("code", 'await app.status("dev")', []),
    (
        "md",
        "## Call the worker\n\nIt serves on 127.0.0.1; its bindings are real local stores.",
        [],
    ),
    (
        "code",
        """\
url = dev.result.outputs["url"]


def call(method, path, body=None):
    data = body.encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        print(f"{method} {path} -> {response.status} {response.read().decode().strip()}")


call("GET", "/")
call("PUT", "/kv/greeting", "hello from KV")
call("GET", "/kv/greeting")
call("GET", "/d1/users/42")
call("PUT", "/r2/notes/today.txt", "a note stored in R2")
call("GET", "/r2/notes/today.txt")""",
        [],
    ),
    (
        "md",
        """\
## Plan a change and read the diff

Change the greeting in the program, then plan: the worker is updated in place (its
`ALCHEMY_RELEASE` changes too, because the code is a new release); the rest is unchanged.""",
        [],
    ),
    (
        "code",
        """\
program = workdir / "demo" / "alchemy_run.py"
program.write_text(program.read_text().replace('"hello from', '"hi from'))
app = alchemy_nb.load_program(program)
pipeline = Pipeline(app)

plan = await pipeline.plan("dev")
plan""",
        [],
    ),
    (
        "code",
        """\
# One resource's change, field by field
next(change for change in plan.changes if change.id == "api")""",
        [],
    ),
    (
        "code",
        """\
# Apply exactly that plan (it is refused if the program or the state changed since)
dev = await pipeline.deploy("dev", plan=plan)
call("GET", "/")""",
        [],
    ),
    (
        "md",
        "## Staging, and the stages side by side",
        [],
    ),
    ("code", 'staged = await pipeline.deploy("staging")\nstaged', []),
    ("code", "await display.compare_stages(pipeline)", []),
    (
        "md",
        """\
## Approve and promote to `prod`

`prod` takes the release that is healthy in `staging`, once a reviewer who is not its
author approved it. Request the gate, then decide in the panel: it shows the release,
its plan against `prod` and every condition, and records the decision through the same
call as `alchemy-nb approve`. It refuses what the rules refuse: try approving as `alice`.""",
        [],
    ),
    ("code", 'gate = await pipeline.request_gate("prod")\ngate', []),
    (
        "code",
        """\
panel = await display.approval_panel(pipeline, "prod", actor="bob")
panel""",
        [],
    ),
    (
        "code",
        """\
# Without a live notebook (papermill, CI) bob approves in code: the call the button makes.
gate = pipeline.open_gate("prod", staged.release)
if not any(approval["actor"] == "bob" for approval in gate["approvals"]):
    gate = await pipeline.approve("prod", staged.release, actor="bob", comment="looks good")
gate""",
        [],
    ),
    ("code", 'promoted = await pipeline.promote("prod")\npromoted', []),
    ("code", "await display.compare_stages(pipeline)", []),
    (
        "md",
        """\
## The history and the ledger

Every plan, deploy, gate, approval and promotion is an event in a hash-chained ledger;
verification names the first event that was tampered with.""",
        [],
    ),
    ("code", 'pipeline.history("dev")', []),
    (
        "code",
        """\
ledger = Ledger(app.state, app.name)
events = await ledger.events()
events""",
        [],
    ),
    ("code", "await ledger.verify()", []),
    (
        "md",
        """\
## Widgets and renderers

`display.enable("widget")` shows plans, comparisons and the ledger as widgets (the
default, `"auto"`, does so only in a live notebook); `"text"` is what a CI log gets.
A widget filters the ledger by event or stage:""",
        [],
    ),
    (
        "code",
        """\
timeline = display.TimelineView(events)
timeline.kind.value = "approval"
timeline""",
        [],
    ),
    (
        "md",
        "## Clean up\n\nDestroy the three stages: their workers stop and their data goes.",
        [],
    ),
    (
        "code",
        """\
with display.quiet():  # no progress display, only the results
    for stage in ("prod", "staging", "dev"):
        print((await app.destroy(stage)).summary())""",
        [],
    ),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source, tags) in enumerate(CELLS):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell["id"] = f"tour-{i:02d}"
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


def execute(nb: nbformat.NotebookNode) -> None:
    from nbclient import NotebookClient

    scratch = Path(tempfile.mkdtemp(prefix="explore-gen-"))
    os.environ["ALCHEMY_NB_EXPLORE_DIR"] = str(scratch)
    os.environ["ALCHEMY_NB_DEMO_APP"] = str(ROOT / "examples" / "demo")
    try:
        NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(OUT.parent)}},
        ).execute()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    nb.metadata.pop("widgets", None)  # widget state: large, random ids
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                raise SystemExit(f"cell {cell['id']} failed: {output['ename']}: {output['evalue']}")


def _sources(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c["cell_type"], c["source"]) for c in nb.cells]


def main() -> int:
    nb = build()
    if "--check" in sys.argv:
        committed = nbformat.read(OUT, as_version=4)
        if _sources(committed) != _sources(nb):
            print(f"{OUT} is out of date: run python scripts/make_explore.py", file=sys.stderr)
            return 1
        return 0
    execute(nb)
    nbformat.write(nb, OUT)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
