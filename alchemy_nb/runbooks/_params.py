"""The runbooks' parameter contracts, checked in the cell after the ``parameters`` cell.

papermill injects every ``-p NAME VALUE`` as a new variable, whether the runbook declares
it or not (a typo only logs a warning), and its command line turns ``1.10`` into a float.
:func:`check_parameters` closes both holes: it gathers the notebook's parameter-like
variables, refuses names the contract does not declare and values of the wrong type, and
returns a frozen model::

    params = check_parameters(PromoteParameters, globals())
    params.to, params.release
"""

from __future__ import annotations

from collections.abc import Mapping
from types import FunctionType, ModuleType
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from ..errors import ParameterError

__all__ = [
    "ApproveParameters",
    "DeployParameters",
    "ParameterError",
    "PromoteParameters",
    "RUNBOOK_PARAMETERS",
    "RollbackParameters",
    "RunbookParameters",
    "check_parameters",
]


class RunbookParameters(BaseModel):
    """What every runbook takes: the app's folder. Secrets and the actor never are
    parameters: they come from the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app_dir: StrictStr = Field(".", description="the app's folder (holds alchemy_run.py)")


class DeployParameters(RunbookParameters):
    """``deploy``: plan and deploy the working tree to ``stage``, check its health.

    Example::

        DeployParameters(stage="staging")
    """

    stage: StrictStr = Field(min_length=1, description="the stage to deploy")


class ApproveParameters(RunbookParameters):
    """``approve``: record an approval or rejection of ``release`` for ``stage``.

    Example::

        ApproveParameters(stage="prod", release="3f9a0c12d4e5", decision="approve")
    """

    stage: StrictStr = Field(min_length=1, description="the stage the release goes to")
    release: StrictStr = Field(min_length=4, description="the release id (or a 4+ hex prefix)")
    decision: Literal["approve", "reject"] = Field("approve", description="approve or reject")
    comment: StrictStr = Field("", description="why, for the record")


class PromoteParameters(RunbookParameters):
    """``promote``: promote a release to stage ``to`` (default: the release healthy in its
    ``promote_from``), verify its health, roll back automatically on failure.

    Example::

        PromoteParameters(to="prod")
    """

    to: StrictStr = Field(min_length=1, description="the stage to promote to")
    release: StrictStr | None = Field(None, description="default: healthy in promote_from")


class RollbackParameters(RunbookParameters):
    """``rollback``: deploy an earlier release of ``stage`` (default: the last healthy one).

    Example::

        RollbackParameters(stage="prod", to="3f9a0c12d4e5")
    """

    stage: StrictStr = Field(min_length=1, description="the stage to roll back")
    to: StrictStr | None = Field(None, description="default: the last healthy release")


RUNBOOK_PARAMETERS: dict[str, type[RunbookParameters]] = {
    "approve": ApproveParameters,
    "deploy": DeployParameters,
    "promote": PromoteParameters,
    "rollback": RollbackParameters,
}
"""Each runbook's name and its parameter contract."""

M = TypeVar("M", bound=RunbookParameters)

_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}


def _candidates(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook variables that can be parameters: plain values, not modules,
    functions, classes or IPython's own names."""
    hidden: set[str] = set()
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            hidden = set(shell.user_ns_hidden)
    except ImportError:  # not in IPython: a plain dict
        pass
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_")
        and name not in _IPYTHON_NAMES
        and name not in hidden
        and not isinstance(value, ModuleType | FunctionType | type)
        and not callable(value)
    }


def check_parameters(model: type[M], namespace: Mapping[str, Any]) -> M:
    """Validate the notebook's parameters against ``model`` and return them.

    ``namespace`` is the notebook's ``globals()``. Parameters the cell declares with the
    default ``None`` are required unless the model gives them a default. Raises
    :class:`ParameterError` with one line naming every problem.

    Example::

        params = check_parameters(DeployParameters, {"stage": "staging", "app_dir": "."})
    """
    values = _candidates(namespace)
    declared = set(model.model_fields)
    problems: list[str] = []
    unknown = sorted(set(values) - declared)
    for name in unknown:
        close = [d for d in sorted(declared) if _similar(name, d)]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"unknown parameter {name!r}{hint}")
    given = {k: v for k, v in values.items() if k in declared}
    for name, field in model.model_fields.items():
        if given.get(name) is None and field.is_required():
            given.pop(name, None)
    try:
        result = model.model_validate(given)
    except ValidationError as exc:
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "parameters"
            if err["type"] == "missing":
                problems.append(f"missing required parameter {name!r} (pass -p {name} VALUE)")
            elif err["type"] in ("string_type", "str_type"):
                value = given.get(name)
                problems.append(
                    f"parameter {name!r} must be a string, not {type(value).__name__} "
                    f"{value!r} (papermill's -p turns numbers into floats: use -r)"
                )
            else:
                problems.append(f"parameter {name!r}: {err['msg']} (got {err.get('input')!r})")
    if problems:
        runbook = model.__name__.removesuffix("Parameters").lower()
        raise ParameterError(
            f"bad parameters for runbook {runbook!r}: " + "; ".join(problems),
            fix="declared parameters: " + ", ".join(sorted(declared)),
        )
    return result


def _similar(a: str, b: str) -> bool:
    from difflib import SequenceMatcher

    return SequenceMatcher(None, a.lower(), b.lower()).ratio() >= 0.75
