"""The engine: apps, stages, phases, resources, plans and the apply graph.

The engine never imports a provider, a display or a CLI module.
"""

from ._app import App, Stage, StageStatus, default_stage
from ._plan import Action, Change, FieldChange, Phase, Plan, ResourceStatus, RunResult
from ._program import load_program
from ._resource import (
    Diff,
    Input,
    Outputs,
    Props,
    Provider,
    Ref,
    Resource,
    ResourceContext,
    ResourceHandle,
    kind_registry,
)

__all__ = [
    "Action",
    "App",
    "Change",
    "Diff",
    "FieldChange",
    "Input",
    "Outputs",
    "Phase",
    "Plan",
    "Props",
    "Provider",
    "Ref",
    "Resource",
    "ResourceContext",
    "ResourceHandle",
    "ResourceStatus",
    "RunResult",
    "Stage",
    "StageStatus",
    "default_stage",
    "kind_registry",
    "load_program",
]
