"""`make demo`: the example app through plan -> deploy -> no-op deploy -> read -> destroy.

Each step runs the real `alchemy-nb` command, as a user would type it, and shows what
it printed and what changed on disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "examples" / "hello"
CLI = [sys.executable, "-m", "alchemy_nb"]


def step(title: str, *args: str) -> dict:
    print(f"\n== {title}: alchemy-nb {' '.join(args)}")
    proc = subprocess.run([*CLI, *args, "--json"], cwd=APP, capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        print(f"   | {line}")
    if proc.returncode != 0:
        print(proc.stdout)
        raise SystemExit(f"step failed with exit code {proc.returncode}")
    result = json.loads(proc.stdout)
    if "counts" in result:
        print(f"   counts: {result['counts']}")
    if result.get("outputs"):
        print(f"   outputs: {result['outputs']}")
    return result


def main() -> None:
    print(f"alchemy-nb demo: the `hello` app in {APP.relative_to(Path.cwd())}")
    plan = step("plan what a deploy would do", "plan", "--stage", "dev")
    for change in plan["changes"]:
        print(f"   {change['action']:>7} {change['kind']} {change['id']}")
    step("deploy", "deploy", "--stage", "dev")
    print(
        "   on disk:",
        ", ".join(sorted(str(p.relative_to(APP)) for p in (APP / "out" / "dev").iterdir())),
    )
    again = step("deploy again: nothing changed, so no provider calls", "deploy", "--stage", "dev")
    assert again["counts"]["noop"] == len(plan["changes"]), again
    step("read outputs from state", "read", "--stage", "dev")
    step("status", "status", "--stage", "dev")
    step("destroy", "destroy", "--stage", "dev")
    left = list((APP / "out" / "dev").glob("*")) if (APP / "out" / "dev").exists() else []
    print(f"\n== done: {len(left)} file(s) left in out/dev, state for stage dev removed.")


if __name__ == "__main__":
    main()
