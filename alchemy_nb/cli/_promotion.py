"""The promotion commands: releases, gate, approve, reject, promote, rollback, hold,
history, ledger and feed. Thin over :class:`alchemy_nb.promotion.Pipeline`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import ConfigError
from ._main import PROMOTION_COMMANDS

__all__ = ["add_commands", "run_command"]

COMMANDS = frozenset(PROMOTION_COMMANDS)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the promotion commands to the top-level parser."""
    actor = argparse.ArgumentParser(add_help=False)
    actor.add_argument(
        "--as",
        dest="actor",
        metavar="NAME",
        help="who acts (default: $ALCHEMY_ACTOR, $GITHUB_ACTOR, the OS user)",
    )

    sub.add_parser("releases", parents=[common], help="releases by stage, with health")
    g = sub.add_parser("gate", help="approval gates")
    gsub = g.add_subparsers(dest="gate_command", metavar="ACTION", required=True)
    gr = gsub.add_parser(
        "request", parents=[common, actor], help="ask for approval to promote a release to --stage"
    )
    gr.add_argument(
        "--release", metavar="ID", help="default: the healthy release of the stage's promote_from"
    )
    for verb in ("approve", "reject"):
        p = sub.add_parser(
            verb, parents=[common, actor], help=f"{verb} the open gate for a release and stage"
        )
        p.add_argument("--release", metavar="ID", required=True)
        p.add_argument("--comment", default="", metavar="TEXT")
    pr = sub.add_parser(
        "promote",
        parents=[common, actor],
        help="deploy the release healthy in promote_from to --to",
    )
    pr.add_argument("--to", required=True, metavar="STAGE")
    pr.add_argument("--release", metavar="ID")
    rb = sub.add_parser(
        "rollback",
        parents=[common, actor],
        help="deploy an earlier release; puts a hold on the current one",
    )
    rb.add_argument(
        "--to",
        dest="to_release",
        metavar="ID",
        help="default: the last healthy release before the current one",
    )
    rb.add_argument(
        "--force",
        action="store_true",
        help="roll back across schema migrations (they stay applied)",
    )
    h = sub.add_parser("hold", help="holds put on a stage by a rollback")
    hsub = h.add_subparsers(dest="hold_command", metavar="ACTION", required=True)
    hsub.add_parser(
        "release",
        parents=[common, actor],
        help="lift the stage's hold so its release may deploy again",
    )
    sub.add_parser("history", parents=[common], help="deploys, promotions and rollbacks")
    lg = sub.add_parser("ledger", help="the audit ledger")
    lsub = lg.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    lsub.add_parser("verify", parents=[common], help="check the hash chain of every event")
    fd = sub.add_parser("feed", parents=[common], help="the ledger as an RSS or Atom feed")
    fd.add_argument("--format", choices=("rss", "atom"), default="rss")


def run_command(app: Any, args: argparse.Namespace, out: Any, stage: str | None) -> int:
    """Run one promotion command; returns the exit code."""
    import asyncio

    return asyncio.run(_run(app, args, out, stage))


async def _run(app: Any, args: argparse.Namespace, out: Any, stage: str | None) -> int:
    from ..promotion import Pipeline

    pipeline = Pipeline(app)
    cmd = args.command
    who = getattr(args, "actor", None)
    if cmd == "releases":
        rows: list[dict[str, Any]] = pipeline.releases(args.stage)
        if out.json:
            out.emit_list(rows)
        else:
            for r in rows:
                health = "healthy" if r["healthy"] else "UNHEALTHY"
                print(
                    f"{r['id'][:12]}  {r['stage']:<10} {health:<9}"
                    f"  {r['action']:<9} {r['deployed_at']}  by {r['author']}"
                    f"{'  (' + r['branch'] + ')' if r.get('branch') else ''}"
                )
        return 0
    if cmd == "gate":
        gate = await pipeline.request_gate(_need_stage(args), release=args.release, actor=who)
        out.log(
            f"gate {gate['id']} requested for release {gate['release'][:12]} to "
            f"{gate['stage']}: approve with alchemy-nb approve --stage {gate['stage']} "
            f"--release {gate['release'][:12]}"
        )
        _emit(out, {"ok": True, "gate": gate})
        return 0
    if cmd in ("approve", "reject"):
        verb = pipeline.approve if cmd == "approve" else pipeline.reject
        gate = await verb(_need_stage(args), args.release, actor=who, comment=args.comment)
        out.log(
            f"{cmd}d release {gate['release'][:12]} for {gate['stage']} "
            f"({len(gate['approvals'])} approval(s))"
        )
        _emit(out, {"ok": True, "gate": gate})
        return 0
    if cmd == "promote":
        outcome = await pipeline.promote(args.to, release=args.release, actor=who)
        return _outcome(out, outcome)
    if cmd == "rollback":
        outcome = await pipeline.rollback(
            _need_stage(args), to=args.to_release, force=args.force, actor=who
        )
        return _outcome(out, outcome)
    if cmd == "hold":
        hold = await pipeline.release_hold(_need_stage(args), actor=who)
        out.log(f"lifted the hold on release {hold['release'][:12]} in {args.stage}")
        _emit(out, {"ok": True, "released": hold})
        return 0
    if cmd == "history":
        rows = pipeline.history(args.stage)
        if out.json:
            out.emit_list(rows)
        else:
            for r in rows:
                print(
                    f"{r['at']}  {r['stage']:<10} {r['action']:<9} {r['release'][:12]}  "
                    f"{'healthy' if r['healthy'] else 'UNHEALTHY':<9} by {r['actor']}"
                )
        return 0
    if cmd == "ledger":
        from ..promotion import Ledger

        verification = await Ledger(app.state, app.name).verify()
        data = verification.to_json() if hasattr(verification, "to_json") else vars(verification)
        if out.json:
            out.emit(data)
        else:
            print("ledger OK" if verification.ok else f"ledger FAILED: {verification.reason}")
        return 0 if verification.ok else 1
    if cmd == "feed":
        from ..promotion import Ledger, to_atom, to_rss

        events = await Ledger(app.state, app.name).events(stage=args.stage)
        title = f"alchemy-nb: {app.name}" + (f" / {args.stage}" if args.stage else "")
        link = app.root.as_uri()
        text = (
            to_rss(events, title=title, link=link)
            if args.format == "rss"
            else to_atom(events, title=title, link=link, feed_id=f"urn:alchemy-nb:{app.name}")
        )
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    raise ConfigError(f"unknown command {cmd!r}", fix="see alchemy-nb --help")


def _need_stage(args: argparse.Namespace) -> str:
    if not args.stage:
        raise ConfigError(f"`alchemy-nb {args.command}` needs --stage", fix="pass --stage NAME")
    return str(args.stage)


def _emit(out: Any, data: dict[str, Any]) -> None:
    if out.json:
        out.emit(data)


def _outcome(out: Any, outcome: Any) -> int:
    line = (
        f"{outcome.action} of {outcome.release[:12]} to {outcome.stage}: "
        f"{'healthy' if outcome.healthy else 'UNHEALTHY'}"
    )
    if outcome.rolled_back_to:
        line += f"; rolled back to {outcome.rolled_back_to[:12]}"
    out.log(line)
    for probe in outcome.probes:
        out.log(f"  {'ok ' if probe.ok else 'FAIL'} {probe.worker} {probe.url}: {probe.detail}")
    if out.json:
        out.emit(outcome.to_json())
    return 0 if outcome.healthy else 1
