"""Generate notebooks/runbooks/*.ipynb, committed without outputs.

Run `python scripts/make_runbooks.py` after changing a runbook here.

Each runbook: a title, one cell tagged ``parameters``, a cell validating them with the
contract in :mod:`alchemy_nb.runbooks`, then the action through ``Pipeline``, a one-line
result and structured results published for ``read_results``. ``--check`` exits 1 when a
committed runbook differs from what this script generates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parent.parent / "notebooks" / "runbooks"

OPEN = """\
# Open the app
# Secrets come from environment variables only (ALCHEMY_PASSWORD and the app's own);
# the actor from ALCHEMY_ACTOR, else GITHUB_ACTOR.
from alchemy_nb.runbooks import finish, open_pipeline, runbook_actor

pipeline = open_pipeline(params.app_dir)
actor = runbook_actor()
print(f"app {pipeline.app.name!r} in {params.app_dir}, acting as {actor}")"""

RUNBOOKS: dict[str, dict[str, str]] = {
    "deploy": {
        "title": "# Deploy a stage\n\n"
        "Plans and deploys the working tree to `stage` as a release, checks its health "
        "(a failed check rolls back automatically) and publishes the release id.\n\n"
        "`alchemy-nb runbook deploy -p stage staging`",
        "parameters": """\
stage: str = None  # the stage to deploy (required)
app_dir: str = "."  # the app's folder""",
        "model": "DeployParameters",
        "steps": """\
# Plan
# What the deploy will change.
plan = await pipeline.plan(params.stage)
print(plan.render_text())
---
# Deploy
# Then check health: an unhealthy release is rolled back automatically.
outcome = await pipeline.deploy(params.stage, actor=actor)
---
# Result
# One line, and the outcome published for read_results().
finish("deploy", outcome)""",
    },
    "approve": {
        "title": "# Approve or reject a release\n\n"
        "Records an approval (or a rejection) of `release` for `stage`, requesting the "
        "gate first if none is open. In CI the actor is the environment's "
        "(`ALCHEMY_ACTOR`, else `GITHUB_ACTOR`).\n\n"
        "`alchemy-nb runbook approve -p stage prod -p release 3f9a0c12d4e5`",
        "parameters": """\
stage: str = None  # the stage the release goes to (required)
release: str = None  # the release id or a 4+ hex prefix (required)
decision: str = "approve"  # approve | reject
comment: str = ""  # why, for the record
app_dir: str = "."  # the app's folder""",
        "model": "ApproveParameters",
        "steps": """\
# Gate
# The open gate for this release and stage, requested now if none is open.
from alchemy_nb.runbooks import ensure_gate

gate = await ensure_gate(pipeline, params.stage, params.release, actor)
print(f"gate {gate['id']} for release {gate['release'][:12]} to {gate['stage']}")
---
# Decide
decide = pipeline.approve if params.decision == "approve" else pipeline.reject
gate = await decide(params.stage, gate["release"], actor=actor, comment=params.comment)
---
# Result
# One line, and the gate published for read_results().
finish("approve", gate)""",
    },
    "promote": {
        "title": "# Promote a release\n\n"
        "Checks the gate and the policies, promotes `release` (default: the release healthy "
        "in the stage's `promote_from`) to stage `to`, verifies its health and rolls back "
        "automatically if it fails.\n\n"
        "`alchemy-nb runbook promote -p to prod`",
        "parameters": """\
to: str = None  # the stage to promote to (required)
release: str = None  # default: the release healthy in promote_from
app_dir: str = "."  # the app's folder""",
        "model": "PromoteParameters",
        "steps": """\
# Promote
# Gate, policies, deploy, health; an unhealthy release is rolled back automatically.
outcome = await pipeline.promote(params.to, release=params.release, actor=actor)
---
# Result
# One line, and the outcome published for read_results().
finish("promote", outcome)""",
    },
    "rollback": {
        "title": "# Roll back a stage\n\n"
        "Deploys an earlier release of `stage` (default: the last healthy one before the "
        "current) and puts a hold on the current one.\n\n"
        "`alchemy-nb runbook rollback -p stage prod`",
        "parameters": """\
stage: str = None  # the stage to roll back (required)
to: str = None  # the release to go back to (default: the last healthy one)
app_dir: str = "."  # the app's folder""",
        "model": "RollbackParameters",
        "steps": """\
# Roll back
# Deploy the earlier release and check its health.
outcome = await pipeline.rollback(params.stage, to=params.to, actor=actor)
---
# Result
# One line, and the outcome published for read_results().
finish("rollback", outcome)""",
    },
}


def build(name: str) -> nbformat.NotebookNode:
    """The runbook ``name`` as a notebook without outputs (deterministic cell ids)."""
    spec = RUNBOOKS[name]
    validate = (
        "# Validate the parameters\n"
        "# An unknown (misspelt) name or a wrong type stops here.\n"
        f"from alchemy_nb.runbooks import {spec['model']}, check_parameters\n\n"
        f"params = check_parameters({spec['model']}, globals())\n"
        "params"
    )
    cells = [
        new_markdown_cell(spec["title"]),
        new_code_cell(spec["parameters"], metadata={"tags": ["parameters"]}),
        new_code_cell(validate),
        new_code_cell(OPEN),
        *(new_code_cell(src.strip()) for src in spec["steps"].split("\n---\n")),
    ]
    for i, cell in enumerate(cells):
        cell["id"] = f"{name}-{i}"
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    return nb


def main(argv: list[str]) -> int:
    check = "--check" in argv
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for name in RUNBOOKS:
        text = nbformat.writes(build(name)) + "\n"
        path = OUT / f"{name}.ipynb"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(OUT.parent.parent)}")
    if stale:
        print("stale runbooks (run scripts/make_runbooks.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
