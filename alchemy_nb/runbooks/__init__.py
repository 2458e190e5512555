"""Promotion runbooks: papermill notebooks that deploy, approve, promote and roll back.

The notebooks live in ``notebooks/runbooks/``; this package holds what they and their
runner share: the parameter contracts, the glue that publishes structured results, the
helpers the cells call, and :func:`run_runbook` (``alchemy-nb runbook NAME``)::

    from alchemy_nb.runbooks import run_runbook, read_results

    result = run_runbook("promote", {"to": "prod"}, app_dir="examples/demo")
    result.exit_code, result.message
    read_results(result.notebook)["outcome"]["healthy"]

Needs the ``notebooks`` extra: ``pip install 'alchemy-nb[notebooks]'``.
"""

from __future__ import annotations

from ._glue import RESULT_MIMETYPE, publish, read_results, secret_values
from ._kernel import PrivateKernel, ensure_kernelspec
from ._params import (
    RUNBOOK_PARAMETERS,
    ApproveParameters,
    DeployParameters,
    ParameterError,
    PromoteParameters,
    RollbackParameters,
    RunbookParameters,
    check_parameters,
)
from ._runner import (
    EXIT_BAD_INPUT,
    EXIT_DEAD_KERNEL,
    EXIT_FAILED,
    EXIT_KERNEL_START,
    EXIT_OK,
    EXIT_TIMEOUT,
    RunbookResult,
    run_runbook,
    runbook_path,
    scrub_notebook,
)
from ._steps import RunbookFailed, ensure_gate, finish, open_pipeline, runbook_actor

__all__ = [
    "ApproveParameters",
    "DeployParameters",
    "EXIT_BAD_INPUT",
    "EXIT_DEAD_KERNEL",
    "EXIT_FAILED",
    "EXIT_KERNEL_START",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "ParameterError",
    "PrivateKernel",
    "PromoteParameters",
    "RESULT_MIMETYPE",
    "RUNBOOK_PARAMETERS",
    "RollbackParameters",
    "RunbookFailed",
    "RunbookParameters",
    "RunbookResult",
    "check_parameters",
    "ensure_gate",
    "ensure_kernelspec",
    "finish",
    "open_pipeline",
    "publish",
    "read_results",
    "run_runbook",
    "runbook_actor",
    "runbook_path",
    "scrub_notebook",
    "secret_values",
]
