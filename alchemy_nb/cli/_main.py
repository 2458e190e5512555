"""The ``alchemy-nb`` command's parser and commands: a thin shell over the library API.

Results go to stdout (one JSON object with ``--json``); progress and logs go to stderr.
Exit codes: 0 success, 1 failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import AlchemyError, ConfigError, DeployError

# Only what parsing needs is imported up front: `--version`, `--help` and usage errors
# stay quick, and a command imports what it uses when it runs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

__all__ = ["run"]

EPILOG = """\
examples:
  alchemy-nb plan --stage dev                 what a deploy would change
  alchemy-nb plan --out plan.json             save a plan; deploy applies exactly it
  alchemy-nb deploy --plan plan.json
  alchemy-nb deploy --stage prod --json       one JSON object on stdout
  alchemy-nb read                             outputs of the deployed stage
  alchemy-nb status                           resources, lock and unfinished work
  alchemy-nb unlock 3f9a0c12d4e5              break a lock by naming it
  alchemy-nb canary -s prod --percent 10      a Worker's new version gets 10% of traffic
  alchemy-nb destroy --stage dev

environment:
  STAGE, ALCHEMY_STAGE    default stage (else "dev")
  ALCHEMY_PASSWORD        password that seals secrets in state
  ALCHEMY_LOCK_TIMEOUT    seconds to wait for a stage lock (default 60)
  ALCHEMY_STATE_URL       state store (file:PATH, sqlite:///PATH, postgresql://...)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors: exit 2 with a hint
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _parents() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The options every stage command takes (``common``) and those of the commands
    that change a stage (``writer``)."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--stage", "-s", help="stage to act on (default: $STAGE, $ALCHEMY_STAGE, then 'dev')"
    )
    common.add_argument(
        "--program",
        "-p",
        default="alchemy_run.py",
        metavar="PATH",
        help="program file defining `app` (default: ./alchemy_run.py)",
    )
    common.add_argument(
        "--json", action="store_true", help="print exactly one JSON object on stdout"
    )
    from ._state import STATE_HELP

    common.add_argument("--state", metavar="URL", help=STATE_HELP)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    common.add_argument(
        "--password-file",
        metavar="PATH",
        help="read the secrets password from a file (else $ALCHEMY_PASSWORD)",
    )

    writer = _Parser(add_help=False)
    writer.add_argument(
        "--concurrency", "-c", type=int, metavar="N", help="provider calls at once (default 32)"
    )
    writer.add_argument(
        "--lock-timeout",
        type=float,
        metavar="SECONDS",
        help="how long to wait for the stage lock (default $ALCHEMY_LOCK_TIMEOUT or 60)",
    )
    writer.add_argument(
        "--plan",
        dest="plan_file",
        metavar="FILE",
        help="apply exactly this saved plan, or refuse if anything changed",
    )
    from . import _cloudflare

    _cloudflare.add_options(common, writer)  # --profile, --adopt
    return common, writer


# Each function below adds the parsers of some commands to the subparsers ``sub``.
def _add_plan(sub: Any, common: argparse.ArgumentParser, writer: argparse.ArgumentParser) -> None:
    from . import _cloudflare

    p = sub.add_parser("plan", parents=[common], help="show what a deploy would change")
    p.add_argument("--out", metavar="FILE", help="save the plan as JSON for `deploy --plan`")
    p.add_argument("--destroy", action="store_true", help="plan a destroy instead")
    _cloudflare.add_refresh(p)


def _add_deploy(sub: Any, common: argparse.ArgumentParser, writer: argparse.ArgumentParser) -> None:
    dp = sub.add_parser(
        "deploy",
        parents=[common, writer],
        help="phase up: apply changes, then delete what is no longer declared",
    )
    dp.add_argument(
        "--auto",
        action="store_true",
        help="deploy every stage whose configuration says auto_deploy = true (for CI on push)",
    )


def _add_read(sub: Any, common: argparse.ArgumentParser, writer: argparse.ArgumentParser) -> None:
    sub.add_parser("read", parents=[common], help="phase read: print outputs from state")


def _add_destroy(
    sub: Any, common: argparse.ArgumentParser, writer: argparse.ArgumentParser
) -> None:
    sub.add_parser(
        "destroy",
        parents=[common, writer],
        help="phase destroy: delete every resource of the stage",
    )


def _add_status(sub: Any, common: argparse.ArgumentParser, writer: argparse.ArgumentParser) -> None:
    sub.add_parser(
        "status", parents=[common], help="resources in state, the stage lock and unfinished work"
    )


def _add_logs(sub: Any, common: argparse.ArgumentParser, writer: argparse.ArgumentParser) -> None:
    lg = sub.add_parser("logs", parents=[common], help="a local worker's output")
    lg.add_argument("worker", metavar="WORKER", help="the worker's resource id")
    lg.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    lg.add_argument(
        "--lines",
        "-n",
        type=int,
        default=200,
        metavar="N",
        help="how many of the last lines to show first (default 200)",
    )


def _add_dev(sub: Any, common: argparse.ArgumentParser, writer: argparse.ArgumentParser) -> None:
    dv = sub.add_parser(
        "dev",
        parents=[common, writer],
        help="deploy locally, redeploy on every change, stream logs; Ctrl-C stops it",
    )
    dv.add_argument("--port", type=int, metavar="N", help="serve the worker on port N")
    dv.add_argument("--host", metavar="HOST", help="127.0.0.1 (the only address served)")


def _commands_of(module: str) -> Callable[..., None]:
    """Adds the commands the CLI module ``module`` (relative to this package) defines with
    its ``add_commands(sub, common)``; the module is imported only when they are needed."""

    def add(sub: Any, common: argparse.ArgumentParser, writer: argparse.ArgumentParser) -> None:
        import importlib

        importlib.import_module(module, __package__).add_commands(sub, common)

    return add


def _add_unlock(sub: Any, common: argparse.ArgumentParser, writer: argparse.ArgumentParser) -> None:
    u = sub.add_parser("unlock", parents=[common], help="break a stage lock by naming it")
    u.add_argument(
        "lock_id", metavar="LOCK_ID", help="the id that `status` or the lock error shows"
    )


PROMOTION_COMMANDS = (
    "releases",
    "gate",
    "approve",
    "reject",
    "promote",
    "rollback",
    "hold",
    "history",
    "ledger",
    "feed",
)
"""The commands of ``_promotion.py``, named here so that finding a command's parser does not
import it."""

# The commands each function adds, in the order `--help` lists them (a test checks that
# this table names exactly the commands of the full parser).
COMMANDS: tuple[tuple[tuple[str, ...], Callable[..., None]], ...] = (
    (("plan",), _add_plan),
    (("deploy",), _add_deploy),
    (("read",), _add_read),
    (("destroy",), _add_destroy),
    (("status",), _add_status),
    (("logs",), _add_logs),
    (("dev",), _add_dev),
    (("d1",), _commands_of("._d1")),
    (PROMOTION_COMMANDS, _commands_of("._promotion")),
    (("runbook",), _commands_of("._runbook")),
    (("new", "update"), _commands_of("._scaffold")),
    (("import", "export"), _commands_of("..wrangler._cli")),
    (("state",), _commands_of("._state")),
    (("cloudflare", "canary"), _commands_of("._cloudflare")),
    (("unlock",), _add_unlock),
)
_KNOWN = frozenset(name for names, _ in COMMANDS for name in names)
VERSION_ONLY = "--version"


def parser_for(argv: Sequence[str]) -> str | None:
    """Which commands' parsers a parse of ``argv`` needs: the command ``argv`` starts
    with when it is a known one; :data:`VERSION_ONLY` for ``--version`` (or an
    abbreviation of it), which prints and exits before any command is looked at; else
    None, for all of them (``--help``, no command, a misspelt command: the usage and the
    "invalid choice" error then name every command, as they must)."""
    if not argv:
        return None
    first = argv[0]
    if len(first) >= 3 and VERSION_ONLY.startswith(first):
        return VERSION_ONLY  # the top-level options are only --help and --version
    return first if first in _KNOWN else None


PREBUILT: dict[str | None, argparse.ArgumentParser] = {}
"""Parsers built ahead of time, by command (see :func:`parser_for`): the warm server fills
it before it forks, so its children parse without building (argparse looks up message
translations on disk for every option it adds). Parsing never changes a parser."""


def prebuild(commands: Iterable[str]) -> None:
    """Build and keep the parsers of ``commands``."""
    for command in commands:
        PREBUILT[command] = _parser(command)


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``alchemy-nb`` parser: with every command, or only ``command``'s (see
    :func:`parser_for`), so that a run builds and imports only what it uses."""
    parser = _Parser(
        prog="alchemy-nb",
        description="Infrastructure as code for Python notebooks: plan, deploy, read and "
        "destroy the stages of an app.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"alchemy-nb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    if command == VERSION_ONLY:
        return parser
    common, writer = _parents()
    for names, add in COMMANDS:
        if command is None or command in names:
            add(sub, common, writer)
    return parser


class _Startup:
    """The garbage collector while a fresh ``alchemy-nb`` process starts.

    Importing asyncio, pydantic and the engine creates some 50,000 objects that live as
    long as the process. The collector would walk them again and again: while they are
    imported, in every full collection of the run, and twice more when the interpreter
    exits (~35 ms of a deploy on a slow machine). So a process started as the command
    imports them with the collector off, then freezes them (:func:`gc.freeze`: moved to
    the permanent generation, which collections skip) and turns the collector back on,
    before any code of the user's program runs: everything the program and the run
    create is collected as usual. The cost: the few hundred cyclic garbage objects those
    imports leave are never freed (they go with the process), and the gc module's
    introspection (``gc.get_objects``, ``gc.get_referrers``) does not list the frozen
    objects. Only a process started as the command does this: ``main(argv)`` called from
    other Python code (a notebook, a test) leaves that process's collector alone, and a
    command the warm server runs is forked from a server that froze its imports once
    (see _server.py).
    """

    def __init__(self, fresh_process: bool) -> None:
        import gc

        self._gc = gc
        self._active = fresh_process and gc.isenabled()
        if self._active:
            gc.disable()

    def done(self) -> None:
        """Freeze what exists now and collect as usual from here on (once)."""
        if self._active:
            self._active = False
            self._gc.freeze()
            self._gc.enable()


def run(argv: Sequence[str] | None = None, *, fresh_process: bool = False) -> int:
    """Parse the arguments and run the command (see :func:`alchemy_nb.cli.main`).

    ``fresh_process``: this process was started to run the command (see
    :class:`_Startup`)."""
    startup = _Startup(fresh_process)
    try:
        return _run(argv, startup)
    finally:
        startup.done()


def _run(argv: Sequence[str] | None, startup: _Startup) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    which = parser_for(args_list)
    parser = PREBUILT.get(which) or _parser(which)
    args = parser.parse_args(args_list)
    out = _Output(args)
    try:
        code = _dispatch(args, out, startup)
    except KeyboardInterrupt:
        out.fail_message("interrupted; run the same command again to resume")
        return 130
    except AlchemyError as exc:
        return out.error(exc)
    except Exception as exc:  # a bug of ours: say so, never hide it
        if args.debug:
            import traceback

            traceback.print_exc()
        out.fail_message(
            f"internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback and please report it)"
        )
        if args.json:
            out.emit({"ok": False, "error": {"type": "InternalError", "message": str(exc)}})
        return 1
    return code


class _Output:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json = args.json
        self.quiet = args.quiet

    def emit(self, data: dict[str, Any]) -> None:
        import json

        sys.stdout.write(json.dumps(data, indent=None, default=str) + "\n")
        sys.stdout.flush()

    def emit_list(self, rows: list[Any]) -> None:
        import json

        sys.stdout.write(json.dumps(rows, default=str) + "\n")
        sys.stdout.flush()

    def log(self, line: str) -> None:
        if not self.quiet:
            sys.stderr.write(line + "\n")

    def fail_message(self, message: str) -> None:
        sys.stderr.write(f"error: {message}\n")

    def error(self, exc: AlchemyError) -> int:
        if self.args.debug:
            import traceback

            traceback.print_exception(exc)
        self.fail_message(str(exc))
        if self.json:
            data: dict[str, Any] = {
                "ok": False,
                "command": self.args.command,
                "error": exc.to_json(),
            }
            if isinstance(exc, DeployError) and exc.result is not None:
                data.update({k: v for k, v in exc.result.to_json().items() if k != "ok"})
            self.emit(data)
        return exc.exit_code

    def reporter(self) -> Callable[..., None]:
        symbols = {
            "create": "+ created",
            "update": "~ updated",
            "replace": "± replaced",
            "delete": "- deleted",
        }

        def report(event: str, **data: Any) -> None:
            if event == "resource.done":
                self.log(
                    f"  {symbols.get(data['action'], data['action'])} {data['kind']} {data['id']}"
                )
            elif event == "resource.failed":
                self.log(f"  ! failed {data['kind']} {data['id']}: {data['error']}")
            elif event == "resource.note":
                self.log(f"  note: {data['kind']} {data['id']}: {data['note']}")
            elif event == "lock.wait":
                self.log(f"waiting for the stage lock: {data['holder'].describe()}")
            elif event == "lock.takeover":
                self.log(f"took over a lock whose holder is gone: {data['holder'].describe()}")
            elif event == "recover":
                self.log(f"resuming an interrupted run ({data['entries']} journal entries)")

        return report


def _password(args: argparse.Namespace) -> str | None:
    if args.password_file:
        from pathlib import Path

        try:
            return Path(args.password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the password file: {exc.strerror}",
                where=args.password_file,
                fix="check the path",
            ) from None
    return None


def _lock_timeout(args: argparse.Namespace) -> float | None:
    if getattr(args, "lock_timeout", None) is not None:
        return float(args.lock_timeout)
    env = os.environ.get("ALCHEMY_LOCK_TIMEOUT")
    if env:
        try:
            return float(env)
        except ValueError:
            raise ConfigError(
                f"ALCHEMY_LOCK_TIMEOUT is not a number: {env!r}", fix="set it to seconds, e.g. 60"
            ) from None
    return None


def _require_existing_database(app: Any) -> None:
    """A command that only reads state never creates a SQLite database: a mistyped
    ``--state`` path is an error, not an empty stage."""
    from ..state._sqlite import SQLiteStore

    store = app.state
    if isinstance(store, SQLiteStore) and not store.path.exists():
        raise ConfigError(
            f"there is no state database at {store.path}",
            where="--state or $ALCHEMY_STATE_URL",
            fix="check the path (a relative one is relative to this folder); "
            "a deploy creates the database",
        )


def _dispatch(args: argparse.Namespace, out: _Output, startup: _Startup) -> int:
    import asyncio

    # The first pydantic model this import builds makes pydantic look for plugins: it
    # imports importlib.metadata (~11 ms here) and scans every installed distribution's
    # entry points (~6 ms). We pay that on purpose. PYDANTIC_DISABLE_PLUGINS would not
    # spare the import (pydantic imports its plugin loader for every model either way),
    # and a disabled lookup is not cached: setting the variable only around our own
    # imports moves the scan to the next model, fs.FileProps, built while the user's
    # program imports. Skipping it there too would build the models of the user's program
    # (ours and theirs) without their plugins in CLI runs only, and a variable left set
    # would reach the user's program and every process it starts. The only equivalent
    # shortcut is to prove that no distribution declares a pydantic plugin, itself a scan
    # of the same metadata, and then to write pydantic's private plugin cache: ~3 ms for a
    # dependency on pydantic internals, so we do not.
    from ..engine import App, Plan, default_stage
    from . import _cloudflare

    startup.done()  # before any of the user's code runs
    if getattr(args, "state", None):  # --state wins over $ALCHEMY_STATE_URL, here and in children
        from ..state import open_store

        open_store(args.state).close()  # a bad URL fails here, before anything runs
        os.environ["ALCHEMY_STATE_URL"] = args.state
    _cloudflare.apply_options(args)
    if args.command in _cloudflare.COMMANDS:
        return _cloudflare.run_command(args, out)
    if args.command == "unlock":
        return _unlock(args, out)
    if args.command == "runbook":
        from ._runbook import run_command as run_runbook_command

        return run_runbook_command(args, out)
    if args.command in ("new", "update"):
        from ._scaffold import run_command as run_scaffold_command

        return run_scaffold_command(args, out)
    if args.stage is not None and not args.stage:
        raise ConfigError("--stage is empty", fix="pass a stage name, e.g. --stage dev")
    if args.command in ("import", "export"):
        from ..wrangler._cli import run_command as run_wrangler_command

        return run_wrangler_command(args, out)
    stage = args.stage or default_stage()
    from ..wrangler import resolve_app  # alchemy_run.py, else a wrangler project

    app: App = resolve_app(args)
    if getattr(args, "state", None):
        app.state = args.state
    if args.command in ("status", "read"):
        _require_existing_database(app)
    password = _password(args)
    saved = Plan.load(args.plan_file) if getattr(args, "plan_file", None) else None
    concurrency = getattr(args, "concurrency", None)
    if concurrency is not None and concurrency < 1:
        raise ConfigError(
            f"--concurrency must be at least 1, not {concurrency}",
            fix="pass --concurrency 16 or more",
        )

    if args.command == "plan":
        from ..promotion import Ledger, Pipeline, resolve_actor

        if args.destroy:
            plan = asyncio.run(app.plan(stage, destroy=True, password=password))
        else:  # as a deploy will see it (its release's vars included)
            plan = asyncio.run(Pipeline(app, password=password).plan(stage))

        asyncio.run(
            Ledger(app.state, app.name).record(
                "plan",
                actor=resolve_actor(),
                stage=stage,
                data={"digest": plan.digest, "phase": plan.phase.value, "counts": plan.counts},
            )
        )
        if args.out:
            plan.save(args.out)
            out.log(f"plan saved to {args.out} (digest {plan.digest})")
        drift = _cloudflare.refresh(app, stage) if args.refresh else None
        if out.json:
            out.emit({"ok": True, **plan.to_json(), **_cloudflare.drift_json(drift)})
        else:
            print(plan.render_text())
            _cloudflare.print_drift(drift, app.settings(stage).target)
        return 0
    if args.command == "deploy" and args.auto:
        return _deploy_auto(app, args, out, password, concurrency)
    if args.command == "deploy":
        from ..promotion import Pipeline

        outcome = asyncio.run(
            Pipeline(app, password=password).deploy(
                stage,
                plan=saved,
                concurrency=concurrency,
                lock_timeout=_lock_timeout(args),
                reporter=out.reporter(),
            )
        )
        result = outcome.result
        assert result is not None  # a deploy always has one
        out.log(result.summary() + f" (release {outcome.release[:12]})")
        for probe in outcome.probes:
            out.log(
                f"  health {'ok' if probe.ok else 'FAILED'}: {probe.worker} {probe.url} "
                f"{probe.detail}"
            )
        if outcome.rolled_back_to:
            out.log(f"health check failed: rolled back to {outcome.rolled_back_to[:12]}")
        if out.json:
            out.emit({**result.to_json(), **outcome.to_json(), "ok": outcome.healthy})
        else:
            _print_outputs(result.outputs_masked)
        return 0 if outcome.healthy else 1
    if args.command == "destroy":
        result = asyncio.run(
            app.destroy(
                stage,
                plan=saved,
                concurrency=concurrency,
                password=password,
                lock_timeout=_lock_timeout(args),
                reporter=out.reporter(),
            )
        )
        out.log(result.summary())
        if out.json:
            out.emit(result.to_json())
        return 0
    if args.command == "read":
        result = asyncio.run(app.read(stage, password=password))
        if out.json:
            out.emit(result.to_json())
        else:
            _print_outputs(result.outputs_masked)
        return 0
    from ._promotion import COMMANDS, run_command

    if args.command in COMMANDS:
        return run_command(app, args, out, args.stage)
    if args.command == "state":
        from ._state import run_command as run_state_command

        return run_state_command(app, args, out)
    if args.command == "logs":
        return _logs(app, stage, args, out)
    if args.command == "dev":
        from ._dev import run_dev

        return run_dev(app, stage, args, out)
    if args.command == "canary":
        return _cloudflare.run_canary(app, stage, args, out)
    if args.command == "d1":
        from ._d1 import run_command as run_d1_command

        return run_d1_command(app, stage, args, out)
    if args.command == "status":
        status = asyncio.run(app.status(stage))
        if out.json:
            out.emit({"ok": True, **status.to_json()})
        else:
            _print_status(status)
        return 0
    raise ConfigError(f"unknown command {args.command!r}", fix="see alchemy-nb --help")


def _deploy_auto(
    app: Any, args: argparse.Namespace, out: _Output, password: str | None, concurrency: int | None
) -> int:
    """``deploy --auto``: every auto_deploy stage, in configuration order; a held release
    is skipped with a note (a rollback's hold stops automatic deploys)."""
    import asyncio

    from ..errors import GateError
    from ..promotion import Pipeline

    if args.stage:
        raise ConfigError(
            "--auto deploys the stages the configuration names; drop --stage",
            fix="use either --auto or --stage NAME",
        )
    stages = [name for name, conf in app.config.stages.items() if conf.auto_deploy]
    if not stages:
        raise ConfigError(
            "no stage has auto_deploy = true",
            where=app.config.source,
            fix="set auto_deploy = true on the stages CI should deploy",
        )
    pipeline = Pipeline(app, password=password)
    results: list[dict[str, Any]] = []
    code = 0
    for name in stages:
        try:
            outcome = asyncio.run(
                pipeline.deploy(
                    name,
                    concurrency=concurrency,
                    lock_timeout=_lock_timeout(args),
                    reporter=out.reporter(),
                )
            )
        except GateError as exc:
            out.log(f"{name}: skipped: {exc.what}")
            results.append({"stage": name, "skipped": exc.what})
            continue
        out.log(
            f"{name}: release {outcome.release[:12]} "
            f"{'healthy' if outcome.healthy else 'UNHEALTHY'}"
        )
        results.append(outcome.to_json())
        code = code or (0 if outcome.healthy else 1)
    if out.json:
        out.emit({"ok": code == 0, "stages": results})
    return code


def _logs(app: Any, stage: str, args: argparse.Namespace, out: _Output) -> int:
    import time

    folder = app.root / ".alchemy" / app.name / stage / "local" / "logs"
    path = folder / f"{args.worker}.log"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.log") if p.stem != "supervisor")
        raise ConfigError(
            f"no logs for worker {args.worker!r} in stage {stage!r}",
            where=str(folder),
            fix=(
                f"workers with logs: {', '.join(known)}"
                if known
                else f"deploy the stage first: alchemy-nb deploy --stage {stage}"
            ),
        )
    with open(path, "rb") as fh:
        lines = fh.read().decode(errors="replace").splitlines()[-args.lines :] if args.lines else []
        for line in lines:
            print(line)
        sys.stdout.flush()
        while args.follow:
            chunk = fh.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            else:
                time.sleep(0.2)
    return 0


def _unlock(args: argparse.Namespace, out: _Output) -> int:
    import asyncio
    from pathlib import Path

    from ..state import store_from_env

    root = Path(args.program).resolve().parent
    store = store_from_env(root / ".alchemy")
    try:
        info = asyncio.run(store.break_lock(args.lock_id))
    finally:
        store.close()
    out.log(f"broke {info.describe()}")
    if out.json:
        out.emit({"ok": True, "unlocked": info.to_json()})
    return 0


def _print_outputs(outputs: dict[str, Any]) -> None:
    if not outputs:
        return
    import json

    print("Outputs:")
    for key, value in outputs.items():
        text = value if isinstance(value, str) else json.dumps(value)
        print(f"  {key} = {text}")


def _print_status(status: Any) -> None:
    print(f"{status.app}/{status.stage}: {len(status.resources)} resource(s)")
    if status.resources:
        width = max(len(r["id"]) for r in status.resources)
        kwidth = max(len(r["kind"] or "") for r in status.resources)
        for r in status.resources:
            print(
                f"  {r['id']:<{width}}  {r['kind']:<{kwidth}}  {r['status']:<9}  "
                f"{r['updated'] or ''}"
            )
    if status.lock is not None:
        print(f"locked: {status.lock.describe()}")
    if status.interrupted:
        print("unfinished work from an interrupted run: `alchemy-nb deploy` finishes it")
    _print_outputs(status.outputs)
