"""``alchemy-nb runbook NAME``: run a promotion runbook with papermill (all a CI job calls).

Thin over :func:`alchemy_nb.runbooks.run_runbook`.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["COMMANDS", "add_commands", "run_command"]

COMMANDS = {"runbook"}

EPILOG = """\
runbooks (notebooks/runbooks) and their parameters:
  deploy    -p stage NAME
  approve   -p stage NAME -p release ID [-p decision approve|reject] [-p comment TEXT]
  promote   -p to NAME [-p release ID]        (default: the release healthy in promote_from)
  rollback  -p stage NAME [-p to ID]          (default: the last healthy release)
values are passed as strings, never coerced; secrets come only from the environment and
the actor from $ALCHEMY_ACTOR, else $GITHUB_ACTOR.

exit codes:
  0    the action succeeded
  1    the action failed: a cell raised (refused gate, no approval, unhealthy release)
  2    bad input: unknown runbook, missing/unknown/wrong-type parameter, unknown release
  3    a cell ran longer than --cell-timeout
  4    the kernel did not start within --start-timeout
  138  the kernel died (usually out of memory)
the executed notebook is saved in every case, as <stage>-<runbook>-<UTC time>.ipynb,
scrubbed of secrets; its sha256 is recorded in the app's ledger.

examples:
  alchemy-nb runbook deploy -p stage staging --out artifacts
  ALCHEMY_ACTOR=bob alchemy-nb runbook approve -p stage prod -p release 3f9a0c12d4e5
  alchemy-nb runbook promote -p to prod --json
"""


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``runbook`` to the top-level parser (``common``'s ``-p`` is ``--program``
    there, so this command takes its own options)."""
    rb = sub.add_parser(
        "runbook",
        help="run a promotion runbook (deploy, approve, promote, rollback) with papermill",
        description="Run a promotion runbook notebook with papermill on this interpreter's "
        "kernel; save the executed notebook and record its digest in the ledger.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rb.add_argument("name", metavar="NAME", help="deploy, approve, promote or rollback")
    rb.add_argument(
        "-p",
        "--parameter",
        dest="parameters",
        action="append",
        nargs=2,
        default=[],
        metavar=("KEY", "VALUE"),
        help="a runbook parameter (repeatable); the value stays a string",
    )
    rb.add_argument("--app", default=".", metavar="DIR", help="the app's folder (default: .)")
    rb.add_argument(
        "--out",
        metavar="DIR",
        help="where executed notebooks go (default: DIR/.alchemy/runbooks)",
    )
    rb.add_argument(
        "--start-timeout",
        type=float,
        default=60,
        metavar="SECONDS",
        help="kernel start timeout (default 60)",
    )
    rb.add_argument(
        "--cell-timeout",
        type=float,
        default=900,
        metavar="SECONDS",
        help="per-cell timeout (default 900)",
    )
    rb.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    rb.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    rb.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")


def run_command(args: argparse.Namespace, out: Any) -> int:
    """Run ``alchemy-nb runbook``; returns the exit code."""
    from ..errors import ConfigError

    params: dict[str, str] = {}
    for key, value in args.parameters:
        if key in params:
            raise ConfigError(f"parameter {key!r} is given twice", fix="pass it once")
        params[key] = value
    try:
        from ..runbooks import run_runbook
    except ImportError as exc:
        raise ConfigError(
            f"runbooks need the notebooks extra ({exc.name} is missing)",
            fix="pip install 'alchemy-nb[notebooks]'",
        ) from None
    for timeout in ("start_timeout", "cell_timeout"):
        if getattr(args, timeout) <= 0:
            flag = "--" + timeout.replace("_", "-")
            raise ConfigError(f"{flag} must be positive", fix=f"pass {flag} 60")
    result = run_runbook(
        args.name,
        params,
        app_dir=args.app,
        out_dir=args.out,
        start_timeout=args.start_timeout,
        cell_timeout=args.cell_timeout,
    )
    if result.ok:
        out.log(result.message)
    else:
        out.fail_message(result.message)
    if result.notebook is not None:
        out.log(f"notebook: {result.notebook} ({result.digest})")
    if out.json:
        out.emit(result.to_json())
    return result.exit_code
