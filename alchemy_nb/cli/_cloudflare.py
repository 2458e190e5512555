"""The Cloudflare bits of the CLI: ``--profile``, ``--adopt``, ``plan --refresh``, the
``alchemy-nb cloudflare login | logout | profiles | whoami`` commands and
``alchemy-nb canary`` (a gradual deployment between a Worker's last two versions)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import ConfigError

__all__ = [
    "COMMANDS",
    "add_commands",
    "add_options",
    "add_refresh",
    "apply_options",
    "drift_json",
    "print_drift",
    "refresh",
    "run_canary",
    "run_command",
]

COMMANDS = {"cloudflare"}

EPILOG = """\
credentials: CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID when set (they always win),
else the profile (--profile NAME, $CLOUDFLARE_PROFILE, else 'default'), stored with 0600
permissions in $XDG_CONFIG_HOME/alchemy-nb/cloudflare.json (~/.config by default).

examples:
  echo "$TOKEN" | alchemy-nb cloudflare login --token-stdin           the 'default' profile
  alchemy-nb cloudflare login --profile work --account-id 0123abcd...  asks for the token
  alchemy-nb cloudflare whoami --profile work
  alchemy-nb deploy --stage prod --profile work --adopt
"""


def add_options(common: argparse.ArgumentParser, writer: argparse.ArgumentParser) -> None:
    """``--profile`` for every command, ``--adopt`` for writers."""
    common.add_argument(
        "--profile", metavar="NAME", help="Cloudflare credentials profile (cloudflare target)"
    )
    writer.add_argument(
        "--adopt",
        action="store_true",
        help="take over existing Cloudflare resources of the same name instead of failing",
    )


def add_refresh(plan: argparse.ArgumentParser) -> None:
    """``plan --refresh``."""
    plan.add_argument(
        "--refresh",
        action="store_true",
        help="also read the live Cloudflare resources and show how they drifted from state",
    )


def apply_options(args: argparse.Namespace) -> None:
    """Hand ``--profile`` and ``--adopt`` to the Cloudflare target (through this process's
    environment, which the provider reads)."""
    if getattr(args, "profile", None):
        os.environ["CLOUDFLARE_PROFILE"] = args.profile
    if getattr(args, "adopt", False):
        os.environ["ALCHEMY_NB_ADOPT"] = "1"


def refresh(app: Any, stage: str) -> list[Any]:
    """The drift of ``stage``'s Cloudflare resources (empty for other targets)."""
    import asyncio

    from ..cloudflare.api import detect_drift

    drift: list[Any] = asyncio.run(detect_drift(app, stage))
    return drift


def drift_json(drift: list[Any] | None) -> dict[str, Any]:
    """``{"drift": [...]}`` for ``plan --refresh --json``; nothing without ``--refresh``."""
    return {} if drift is None else {"drift": [d.to_json() for d in drift]}


def print_drift(drift: list[Any] | None, target: str) -> None:
    """The drift lines under a plan."""
    if drift is None:
        return
    if target != "cloudflare":
        print(
            f"  (--refresh reads live resources of cloudflare-target stages; this one is {target})"
        )
    elif not drift:
        print("  no drift: the live resources match state")
    for d in drift:
        print(f"  drift: {d.describe()}")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``alchemy-nb cloudflare ...``."""
    cf = sub.add_parser(
        "cloudflare",
        help="Cloudflare credentials: login, logout, profiles, whoami",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = cf.add_subparsers(dest="cf_action", metavar="ACTION")
    actions.required = True
    login = actions.add_parser(
        "login", parents=[common], help="store a token (and account) as a profile"
    )
    login.add_argument("--token-stdin", action="store_true", help="read the token from stdin")
    login.add_argument("--account-id", metavar="ID", help="the account (default: discovered)")
    actions.add_parser("logout", parents=[common], help="delete a stored profile")
    actions.add_parser("profiles", parents=[common], help="list stored profiles (no tokens)")
    actions.add_parser(
        "whoami", parents=[common], help="check the credentials: the token's account"
    )
    _add_canary(sub, common)


CANARY_EPILOG = """\
The Worker's last deploy made its new version; the version before it keeps the rest of
the traffic. --percent 100 finishes the rollout, --percent 0 sends everything back (a
rollback of the release does too, and holds it).

examples:
  alchemy-nb deploy --stage prod                       the new version, at 100%
  alchemy-nb canary --stage prod --worker api --percent 10
  alchemy-nb canary --stage prod --worker api --percent 50 --json
  alchemy-nb canary --stage prod --worker api --percent 100
"""


def _add_canary(sub: Any, common: argparse.ArgumentParser) -> None:
    canary = sub.add_parser(
        "canary",
        parents=[common],
        help="split a Worker's traffic between its last two versions (cloudflare target)",
        epilog=CANARY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    canary.add_argument(
        "--percent",
        type=float,
        required=True,
        metavar="P",
        help="share of traffic (0-100) for the version the last deploy made",
    )
    canary.add_argument(
        "--worker", metavar="ID", help="the Worker's id in the program (if the stage has several)"
    )
    canary.add_argument(
        "--message", metavar="TEXT", help="note on the deployment (at most 50 characters)"
    )


def run_canary(app: Any, stage: str, args: argparse.Namespace, out: Any) -> int:
    """Run ``alchemy-nb canary`` (:meth:`alchemy_nb.promotion.Pipeline.canary`)."""
    import asyncio

    from ..promotion import Pipeline

    script, deployment = asyncio.run(
        Pipeline(app).canary(stage, args.percent, worker=args.worker, message=args.message)
    )
    if out.json:
        out.emit({"ok": True, "stage": stage, "script": script, "deployment": deployment.to_json()})
    else:
        for version, share in deployment.split.items():
            print(f"{script}\t{version}\t{share:g}%")
        out.log(f"deployment {deployment.id} of {script} serves that split now")
    return 0


def run_command(args: argparse.Namespace, out: Any) -> int:
    """Run ``alchemy-nb cloudflare ACTION``."""
    import asyncio
    import getpass

    from ..cloudflare.api import (
        CloudflareClient,
        Credentials,
        delete_profile,
        list_profiles,
        profiles_path,
        resolve_credentials,
        save_profile,
    )

    name = args.profile or "default"
    if args.cf_action == "profiles":
        profiles = list_profiles()
        if out.json:
            out.emit({"ok": True, "path": str(profiles_path()), "profiles": profiles})
        else:
            for key, entry in profiles.items():
                print(f"{key}\taccount {entry.get('account_id', '(discovered)')}")
            if not profiles:
                out.log(f"no profiles in {profiles_path()}")
        return 0
    if args.cf_action == "logout":
        gone = delete_profile(name)
        if out.json:
            out.emit({"ok": True, "profile": name, "deleted": gone})
        else:
            out.log(f"profile {name!r} " + ("deleted" if gone else "was not stored"))
        return 0

    async def account_of(credentials: Credentials) -> str:
        where = "alchemy-nb cloudflare " + args.cf_action
        async with CloudflareClient(credentials) as client:
            await client.verify(where)
            return await client.account_id(where)

    if args.cf_action == "whoami":
        credentials = resolve_credentials(args.profile)
        account = asyncio.run(account_of(credentials))
        if out.json:
            out.emit({"ok": True, "account_id": account, "source": credentials.source})
        else:
            print(f"account {account} (credentials from the {credentials.source})")
        return 0
    # login
    if args.token_stdin:
        token = sys.stdin.readline().strip()
    elif sys.stdin.isatty():
        token = getpass.getpass("Cloudflare API token: ").strip()
    else:
        token = ""
    if not token:
        raise ConfigError(
            "no token given",
            where="alchemy-nb cloudflare login",
            fix="pipe it in with --token-stdin, or run the command in a terminal",
        )
    base_url = os.environ.get("CLOUDFLARE_API_BASE_URL")
    probe = Credentials(token=token, account_id=args.account_id, source=f"profile {name}")
    if base_url:
        probe = Credentials(token, args.account_id, base_url, probe.source)
    account = asyncio.run(account_of(probe))  # a token that does not work is not stored
    path = save_profile(name, token=token, account_id=account, base_url=base_url)
    if out.json:
        out.emit({"ok": True, "profile": name, "account_id": account, "path": str(path)})
    else:
        out.log(f"stored profile {name!r} for account {account} in {path}")
    return 0
