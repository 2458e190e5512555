"""Rich displays for notebooks, HTML exports and CI logs; opt-in widgets; progress.

Every public alchemy-nb object (an app, a stage, a resource, a plan and its changes, a
run's result, a promotion outcome, a release, a gate, the history, the ledger and its
timeline, a stage comparison, an error) renders as a mime bundle: deterministic
``text/plain``, static ``text/html`` (scoped CSS, no JavaScript) and the vendor JSON
``application/vnd.alchemy-nb+json``. Secrets are masked on every surface.

Example::

    import alchemy_nb.display as display

    display.enable("auto")        # widgets only with a live frontend (the default)
    display.enable("text")        # plain text only, e.g. for a CI log
    panel = await display.approval_panel(pipeline, "prod", actor="bob")
    await display.compare_stages(pipeline)

Widgets need ipywidgets (``pip install 'alchemy-nb[notebooks]'``); they are imported
only when one is asked for. Names are loaded on first use.
"""

from __future__ import annotations

from .._lazy import lazy_exports

TYPE_CHECKING = False

__all__ = [
    "ApprovalPanel",
    "ComparisonView",
    "MIME",
    "PlanView",
    "Progress",
    "RENDERERS",
    "StageComparison",
    "StageRow",
    "TimelineView",
    "active",
    "approval_panel",
    "bundle",
    "compare_stages",
    "enable",
    "live_frontend",
    "options",
    "quiet",
    "renderer",
]

if TYPE_CHECKING:
    from ._bundle import bundle
    from ._compare import StageComparison, StageRow, compare_stages
    from ._doc import MIME, options
    from ._progress import Progress
    from ._switch import RENDERERS, active, enable, live_frontend, quiet, renderer
    from ._widgets import ApprovalPanel, ComparisonView, PlanView, TimelineView, approval_panel

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "._bundle": ["bundle"],
        "._compare": ["StageComparison", "StageRow", "compare_stages"],
        "._doc": ["MIME", "options"],
        "._progress": ["Progress"],
        "._switch": ["RENDERERS", "active", "enable", "live_frontend", "quiet", "renderer"],
        "._widgets": [
            "ApprovalPanel",
            "ComparisonView",
            "PlanView",
            "TimelineView",
            "approval_panel",
        ],
    },
)
