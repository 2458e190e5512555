"""``alchemy-nb new NAME`` and ``alchemy-nb update``: thin over :mod:`alchemy_nb.scaffold`."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["COMMANDS", "add_commands", "run_command"]

COMMANDS = {"new", "update"}

NEW_EPILOG = """\
questions (--data KEY=VALUE; unanswered ones are asked, or take defaults with --defaults):
  description          one line that says what the app does
  use_d1 use_kv use_r2 use_durable_object use_workflow use_queue
                       the resources (true/false; default D1, KV and R2)
  stages               release stages in order, e.g.
                       '[{name: staging, target: local}, {name: prod, target: local}]'
  prod_reviewers       approvals the last stage needs (default 1)
  python_version       3.11, 3.12 or 3.13
  alchemy_nb_source    'alchemy-nb' (the index) or the path of a checkout

examples:
  alchemy-nb new my-app --defaults
  alchemy-nb new my-app --defaults --data use_queue=true --data prod_reviewers=2
  alchemy-nb new shop --dest apps/shop      asks the questions
"""

UPDATE_EPILOG = """\
The app must be a clean git work tree (commit your work first). Conflicts between your
edits and the template's are left as inline markers to resolve by hand.

examples:
  alchemy-nb update                        the app in this folder, to this alchemy-nb's template
  alchemy-nb update --dest apps/shop --data use_queue=true
"""


def _shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        "-d",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="answer a template question (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``new`` and ``update`` to the top-level parser (they act on a folder, not a
    stage, so they take their own options rather than ``common``)."""
    n = sub.add_parser(
        "new",
        help="create an app from the alchemy-nb template (copier copy, offline)",
        description="Create an app from the bundled copier template; it records the template "
        "version so `alchemy-nb update` can bring later versions in.",
        epilog=NEW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    n.add_argument("name", metavar="NAME", help="the app's name, a slug such as my-app")
    n.add_argument("--dest", metavar="DIR", help="where to create it (default: ./NAME)")
    n.add_argument(
        "--defaults", action="store_true", help="take the default of every unanswered question"
    )
    n.add_argument("--no-git", action="store_true", help="do not make the app a git repository")
    _shared(n)
    u = sub.add_parser(
        "update",
        help="bring a newer template version into an app (copier update), keeping your edits",
        description="Apply a newer version of the app template to an existing app.",
        epilog=UPDATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    u.add_argument("--dest", default=".", metavar="DIR", help="the app's folder (default: .)")
    u.add_argument(
        "--vcs-ref", metavar="REF", help="the template version to update to (default: newest)"
    )
    u.add_argument(
        "--conflict",
        choices=["inline", "rej"],
        default="inline",
        help="how to leave conflicts: inline markers (default) or .rej files",
    )
    _shared(u)


def _data(pairs: list[str]) -> dict[str, str]:
    from ..errors import ConfigError

    data: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--data {pair!r} is not KEY=VALUE", fix="e.g. --data use_kv=false")
        if key in data:
            raise ConfigError(f"--data {key} is given twice", fix="pass it once")
        data[key] = value
    return data


def run_command(args: argparse.Namespace, out: Any) -> int:
    """Run ``alchemy-nb new`` or ``alchemy-nb update``; returns the exit code."""
    from ..scaffold import new, update

    data = _data(args.data)
    if args.command == "new":
        made = new(
            args.name,
            dest=args.dest,
            data=data,
            defaults=args.defaults,
            git_init=not args.no_git,
        )
        out.log(f"created {made.path} from the app template {made.version}")
        out.log(f"next: cd {made.path} && make demo")
    else:
        made = update(args.dest, data=data, vcs_ref=args.vcs_ref, conflict=args.conflict)
        out.log(f"updated {made.path} to the app template {made.version}")
        out.log("review the changes (git diff) and resolve any conflict markers, then commit")
    if out.json:
        out.emit({"ok": True, "command": args.command, **made.to_json()})
    return 0
