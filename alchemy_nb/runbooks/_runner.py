"""Run a runbook with papermill and turn what happened into an exit code and one line.

Exit codes (also in ``alchemy-nb runbook --help``):

=====  ==========================================================================
0      the action succeeded
1      the action failed: a cell raised (a refused gate, an unhealthy release, ...)
2      bad input: unknown runbook, missing/unknown/wrong-type parameter, unknown
       release or stage, no app in the folder
3      a cell ran longer than the cell timeout
4      the kernel did not start (start timeout, no kernel)
138    the kernel died (usually out of memory), as papermill's own command says
=====  ==========================================================================

Whatever happened, the executed notebook is saved under ``out_dir`` as
``<stage>-<runbook>-<UTC time>.ipynb``, scrubbed of secrets, and its sha256 recorded in
the app's ledger in an event of the action's kind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._glue import read_results, secret_values
from ._params import RUNBOOK_PARAMETERS

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_DEAD_KERNEL",
    "EXIT_FAILED",
    "EXIT_KERNEL_START",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "RunbookResult",
    "run_runbook",
    "runbook_path",
    "scrub_notebook",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TIMEOUT = 3
EXIT_KERNEL_START = 4
EXIT_DEAD_KERNEL = 138

# exceptions raised in a cell that mean bad input rather than a failed action
_BAD_INPUT_ERRORS = {"ParameterError", "ConfigError"}
# the ledger kind of each runbook's action
_KINDS = {"deploy": "deploy", "promote": "promotion", "rollback": "rollback"}
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
MASK = "********"


@dataclass
class RunbookResult:
    """What a runbook run did: the exit code, one line for people, the saved notebook,
    its digest and the results it published.

    Example::

        result = run_runbook("promote", {"to": "prod"}, app_dir="apps/web")
        result.exit_code, result.message, result.results["outcome"]["release"]
    """

    runbook: str
    exit_code: int
    message: str
    notebook: Path | None = None
    digest: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    failed_cell: int | None = None

    @property
    def ok(self) -> bool:
        """True when the action succeeded."""
        return self.exit_code == EXIT_OK

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description, as ``alchemy-nb runbook --json`` prints it."""
        return {
            "ok": self.ok,
            "runbook": self.runbook,
            "exit_code": self.exit_code,
            "message": self.message,
            "notebook": str(self.notebook) if self.notebook else None,
            "notebook_digest": self.digest,
            "failed_cell": self.failed_cell,
            "results": self.results,
        }


def runbook_path(name: str) -> Path | None:
    """The runbook notebook called ``name``: shipped in the wheel, or in the source tree."""
    here = Path(__file__).resolve().parent
    for folder in (here / "notebooks", here.parent.parent / "notebooks" / "runbooks"):
        path = folder / f"{name}.ipynb"
        if path.is_file():
            return path
    return None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "_"


def _one_line(text: str) -> str:
    lines = [line.strip().lstrip("- ").strip() for line in text.splitlines() if line.strip()]
    return "; ".join(line.rstrip(".") for line in lines)


def _cell_name(cell: Mapping[str, Any]) -> str:
    """A cell's first comment line (what the cell does), else its first line."""
    source = cell.get("source", "")
    lines = (source if isinstance(source, str) else "".join(source)).splitlines()
    for line in lines:
        if line.startswith("# ") and not line.startswith("# Parameters"):
            return line[2:].strip().rstrip(".:")
    return lines[0].strip() if lines else "empty cell"


def scrub_notebook(nb: dict[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """``nb`` with every secret masked: values of environment variables named like
    TOKEN/SECRET/PASSWORD/KEY, and parameters named so, in sources, outputs and metadata
    (papermill's ``metadata.papermill.parameters`` included).

    Example::

        clean = scrub_notebook(json.loads(path.read_text()), {"stage": "prod"})
    """
    secrets = secret_values()
    secrets += [
        str(v)
        for k, v in parameters.items()
        if _SECRET_NAME.search(k) and v is not None and len(str(v)) >= 1
    ]
    secrets += [json.dumps(s)[1:-1] for s in secrets]  # as they appear escaped in JSON
    secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def clean(value: Any, key: str = "") -> Any:
        if _SECRET_NAME.search(key) and isinstance(value, str | int | float) and value != "":
            return MASK
        if isinstance(value, str):
            for secret in secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: clean(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    out: dict[str, Any] = clean(nb)
    papermill = out.get("metadata", {}).get("papermill", {})
    for section in ("parameters", "default_parameters"):
        values = papermill.get(section)
        if isinstance(values, dict):
            papermill[section] = {
                k: (MASK if _SECRET_NAME.search(k) else v) for k, v in values.items()
            }
    papermill.pop("environment_variables", None)
    return out


def _banner(message: str) -> dict[str, Any]:
    return {
        "cell_type": "markdown",
        "id": "alchemy-nb-runbook-error",
        "metadata": {"tags": ["alchemy-nb-error"]},
        "source": f'<span style="color:red; font-size:1.3em">**Runbook failed:** {message}</span>',
    }


def _record_notebook(path: Path, name: str, message: str, parameters: Mapping[str, Any]) -> None:
    """A notebook recording a run that never started (an unknown runbook)."""
    nb = {
        "cells": [
            {
                "cell_type": "markdown",
                "id": "alchemy-nb-not-run",
                "metadata": {"tags": ["alchemy-nb-error"]},
                "source": f"# Runbook {name!r} was not run\n\n{message}",
            }
        ],
        "metadata": {"papermill": {"parameters": dict(parameters), "exception": True}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1, default=str) + "\n", encoding="utf-8")


def run_runbook(
    name: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    app_dir: str | Path = ".",
    out_dir: str | Path | None = None,
    start_timeout: float = 60,
    cell_timeout: float = 900,
    kernel_root: Path | None = None,
) -> RunbookResult:
    """Run the runbook ``name`` with ``parameters`` on the app in ``app_dir``.

    The kernel is this interpreter's (see :func:`ensure_kernelspec`); ``start_timeout``
    bounds the kernel start and ``cell_timeout`` each cell. Values are passed as they are:
    strings stay strings (papermill's command line would turn ``1.10`` into a float). The
    executed notebook goes to ``out_dir`` (default ``<app_dir>/.alchemy/runbooks``).

    Example::

        result = run_runbook("deploy", {"stage": "staging"}, app_dir="examples/demo")
        if not result.ok:
            raise SystemExit(result.exit_code)
    """
    params = dict(parameters or {})
    app = Path(app_dir).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve() if out_dir else app / ".alchemy" / "runbooks"
    out.mkdir(parents=True, exist_ok=True)
    stage = str(params.get("stage") or params.get("to") or "no-stage")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = out / f"{_safe(stage)}-{_safe(name)}-{stamp}.ipynb"

    source = runbook_path(name) if name in RUNBOOK_PARAMETERS else None
    if source is None:
        known = ", ".join(sorted(RUNBOOK_PARAMETERS))
        message = f"unknown runbook {name!r} (runbooks: {known})"
        _record_notebook(path, name, message, params)
        return _finish(name, EXIT_BAD_INPUT, message, path, params, app, None)

    import papermill as pm
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from ._kernel import ensure_kernelspec

    # papermill and nbclient (through papermill's logger) log "Kernel died..." and
    # "Timeout waiting..." themselves: our one line says it, naming the cell
    logging.getLogger("papermill").setLevel(logging.CRITICAL)
    kernel = ensure_kernelspec(kernel_root)
    code, message, failed = EXIT_OK, "", None
    try:
        pm.execute_notebook(
            str(source),
            str(path),
            parameters={**params, "app_dir": str(app)},
            kernel_name=kernel.name,
            start_timeout=start_timeout,
            execution_timeout=cell_timeout,
            cwd=str(app),
            progress_bar=False,
            log_output=False,
            shutdown_kernel="immediate",  # a timed-out cell may never yield to a shutdown request
            **kernel.engine_kwargs(path.with_suffix(".kernel.log")),
        )
    except pm.PapermillExecutionError as exc:
        code = EXIT_BAD_INPUT if exc.ename in _BAD_INPUT_ERRORS else EXIT_FAILED
        failed = exc.exec_count
        message = f"{exc.ename}: {_one_line(exc.evalue)}"
    except CellTimeoutError:
        code, message = (
            EXIT_TIMEOUT,
            f"a cell ran longer than the cell timeout ({cell_timeout:g} s)",
        )
    except DeadKernelError:
        code, message = EXIT_DEAD_KERNEL, "the kernel died (out of memory, or killed)"
    except (NoSuchKernel, RuntimeError, TimeoutError) as exc:
        code = EXIT_KERNEL_START
        message = f"the kernel did not start within {start_timeout:g} s: {_one_line(str(exc))}"
    return _finish(name, code, message, path, params, app, failed)


def _failing_cell(nb: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The code cell that failed, or was running when the run stopped."""
    code_cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for cell in code_cells:
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return code_cells.index(cell), cell
    started = [
        c for c in code_cells if c.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    if started:
        return code_cells.index(started[-1]), started[-1]
    return None


def _finish(
    name: str,
    code: int,
    message: str,
    path: Path,
    params: Mapping[str, Any],
    app: Path,
    failed: int | None,
) -> RunbookResult:
    nb: dict[str, Any] | None = None
    if path.exists():
        nb = json.loads(path.read_text(encoding="utf-8"))
    if nb is not None and code not in (EXIT_OK,) and name in RUNBOOK_PARAMETERS:
        found = _failing_cell(nb)
        if found is not None:
            index, cell = found
            failed = cell.get("execution_count") or failed
            where = f'cell {failed if failed is not None else index} "{_cell_name(cell)}"'
            message = f"runbook {name} failed in {where}: {message}"
            if code in (EXIT_TIMEOUT, EXIT_DEAD_KERNEL):  # papermill adds no banner for these
                nb["cells"].insert(0, _banner(message))
        else:
            message = f"runbook {name} failed: {message}"
            nb.setdefault("cells", []).insert(0, _banner(message))
    elif code != EXIT_OK:
        message = f"runbook {name!r} not run: {message}" if nb is None else message
    digest: str | None = None
    if nb is not None:
        nb = scrub_notebook(nb, params)
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")
        digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    kernel_log = path.with_suffix(".kernel.log")
    if kernel_log.exists():  # the kernel's stderr: scrubbed like the notebook
        raw = kernel_log.read_text(encoding="utf-8", errors="replace")
        kernel_log.write_text(scrub_text(raw, params), encoding="utf-8")
    results = read_results(path) if nb is not None else {}
    if code == EXIT_OK:
        summary = results.get("summary") or {}
        message = str(summary.get("line") or f"runbook {name} done")
    message = scrub_text(message, params)
    result = RunbookResult(
        name, code, message, path if nb is not None else None, digest, results, failed
    )
    _record(result, params, app)
    return result


def scrub_text(text: str, parameters: Mapping[str, Any]) -> str:
    """``text`` with secret values masked, as :func:`scrub_notebook` masks them."""
    return str(scrub_notebook({"text": text}, parameters)["text"])


def _record(result: RunbookResult, params: Mapping[str, Any], app: Path) -> None:
    """The ledger event of the action the runbook performed, with the notebook's digest."""
    if result.runbook == "approve":
        kind = "rejection" if params.get("decision") == "reject" else "approval"
    else:
        kind = _KINDS.get(result.runbook, "")
    program = app / "alchemy_run.py"
    if not kind or result.digest is None or not program.is_file():
        return
    import asyncio

    from ..engine import load_program
    from ..errors import AlchemyError
    from ..promotion import Ledger, resolve_actor

    outcome = result.results.get("outcome") or result.results.get("gate") or {}
    release = outcome.get("release") if isinstance(outcome, dict) else None
    stage = params.get("stage") or params.get("to")
    data = {
        "runbook": result.runbook,
        "notebook_digest": result.digest,
        "notebook": result.notebook.name if result.notebook else None,
        "ok": result.ok,
        "exit_code": result.exit_code,
    }
    try:
        app_obj = load_program(program)
        asyncio.run(
            Ledger(app_obj.state, app_obj.name).record(
                kind,  # type: ignore[arg-type]
                actor=resolve_actor(),
                stage=str(stage) if isinstance(stage, str) and stage else None,
                release=str(release) if release else None,
                data=data,
            )
        )
    except AlchemyError as exc:  # the run's own result stands; say the record is missing
        result.message += f" (not recorded in the ledger: {_one_line(str(exc))})"
