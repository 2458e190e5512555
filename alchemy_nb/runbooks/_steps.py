"""What the runbook cells call: open the app, name the actor, end with one line.

Each runbook cell stays one readable statement; the logic lives here, typed and tested::

    pipeline = open_pipeline(params.app_dir)
    outcome = await pipeline.promote(params.to, release=params.release, actor=runbook_actor())
    finish("promote", outcome)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RunbookFailed

__all__ = ["RunbookFailed", "ensure_gate", "finish", "open_pipeline", "runbook_actor"]


def runbook_actor() -> str:
    """Who runs the runbook: ``ALCHEMY_ACTOR``, else ``GITHUB_ACTOR`` (never a parameter),
    else the OS user outside CI.

    Example::

        os.environ["GITHUB_ACTOR"] = "octocat"; runbook_actor()  # "octocat"
    """
    from ..promotion import resolve_actor

    return resolve_actor()


def open_pipeline(app_dir: str | Path) -> Any:
    """The :class:`~alchemy_nb.promotion.Pipeline` of the app in ``app_dir``. Its secrets
    come from the environment only (``ALCHEMY_PASSWORD`` seals them in state).

    Example::

        pipeline = open_pipeline(".")
    """
    from ..engine import load_program
    from ..promotion import Pipeline

    folder = Path(app_dir).expanduser().resolve()
    program = folder / "alchemy_run.py"
    if not program.is_file():
        raise ConfigError(
            f"no app in {folder} (alchemy_run.py is missing)",
            where="parameter app_dir",
            fix="pass -p app_dir FOLDER, or alchemy-nb runbook --app FOLDER",
        )
    os.chdir(folder)  # the app's relative paths resolve as the CLI resolves them
    return Pipeline(load_program(program))


def finish(runbook: str, outcome: Any) -> str:
    """Publish ``outcome`` (an :class:`~alchemy_nb.promotion.Outcome` or a gate), print the
    one-line result and return it; raise :class:`RunbookFailed` if it is unhealthy.

    Example::

        finish("deploy", await pipeline.deploy("staging"))
    """
    from ._glue import publish

    if isinstance(outcome, dict):  # a gate, from approve/reject
        decision = "rejected" if outcome.get("status") == "rejected" else "approved"
        line = (
            f"{runbook}: {decision} release {str(outcome['release'])[:12]} for "
            f"{outcome['stage']} ({len(outcome.get('approvals', []))} approval(s))"
        )
        publish("gate", outcome)
        publish("summary", {"ok": True, "line": line})
        print(line)
        return line
    data = outcome.to_json()
    line = f"{runbook}: {outcome.action} of {outcome.release[:12]} to {outcome.stage}: " + (
        "healthy" if outcome.healthy else "UNHEALTHY"
    )
    if outcome.rolled_back_to:
        line += f"; rolled back automatically to {outcome.rolled_back_to[:12]}"
    publish("outcome", data)
    publish("summary", {"ok": bool(outcome.healthy), "line": line})
    print(line)
    if not outcome.healthy:
        failed = "; ".join(f"{p.worker} {p.url}: {p.detail}" for p in outcome.probes if not p.ok)
        raise RunbookFailed(
            line + (f" ({failed})" if failed else ""),
            where=f"stage {outcome.stage!r}",
            fix="see the health probes above; `alchemy-nb runbook rollback` if needed",
        )
    return line


async def ensure_gate(pipeline: Any, stage: str, release: str, actor: str) -> dict[str, Any]:
    """The open gate for ``release`` to ``stage``, requested now if none is open.

    Example::

        gate = await ensure_gate(pipeline, "prod", "3f9a0c12d4e5", actor)
    """
    rel = pipeline.records.release(release)["id"]
    gate = pipeline.open_gate(stage, rel)
    if gate is None:
        gate = await pipeline.request_gate(stage, release=rel, actor=actor)
    return dict(gate)
