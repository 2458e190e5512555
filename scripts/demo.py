"""`make demo`: deploy the demo app to stage `dev` on the local target and call it.

The app (examples/demo) is a Python Worker with a D1 database, a KV namespace and an R2
bucket. Each step runs the real `alchemy-nb` command, then the worker is called over HTTP
on 127.0.0.1, and what it answered is printed. The worker keeps running afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "examples" / "demo"
CLI = [sys.executable, "-m", "alchemy_nb"]


def cli(*args: str, actor: str = "alice") -> dict:
    print(f"\n$ ALCHEMY_ACTOR={actor} alchemy-nb {' '.join(args)}")
    started = time.perf_counter()
    env = {**os.environ, "ALCHEMY_ACTOR": actor}
    proc = subprocess.run([*CLI, *args, "--json"], cwd=APP, capture_output=True, text=True, env=env)
    for line in proc.stderr.splitlines():
        print(f"  | {line}")
    if proc.returncode != 0:
        raise SystemExit(f"failed with exit code {proc.returncode}")
    result = json.loads(proc.stdout)
    took = f"  took {time.perf_counter() - started:.2f} s"
    if isinstance(result, dict) and "counts" in result:
        took += f"; counts: {result['counts']}"
    print(took)
    return result


def call(method: str, url: str, body: str | None = None) -> None:
    data = body.encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, text, ctype = resp.status, resp.read().decode(), resp.headers["content-type"]
    except urllib.error.HTTPError as err:
        status, text, ctype = err.code, err.read().decode(), err.headers["content-type"]
    print(f"  {method:<4} {url} -> {status} ({ctype}) {text.strip()}")


def main() -> None:
    print(f"alchemy-nb demo: {APP.relative_to(Path.cwd())} on the local target, stage dev")
    cli("plan", "--stage", "dev")
    result = cli("deploy", "--stage", "dev")
    url = result["outputs"]["url"]
    print(f"\nThe worker serves {url}. Calling it:")
    call("GET", f"{url}/api/health")
    call("GET", f"{url}/")
    call("PUT", f"{url}/kv/greeting", "hello from KV")
    call("GET", f"{url}/kv/greeting")
    call("GET", f"{url}/d1/users/42")
    call("PUT", f"{url}/r2/notes/today.txt", "a note stored in R2")
    call("GET", f"{url}/r2/notes/today.txt")
    cli("deploy", "--stage", "dev")  # nothing changed: no provider calls

    print("\n== Promotion: staging deploys freely; prod needs a reviewer's approval")
    staged = cli("deploy", "--stage", "staging")
    release = staged["release"][:12]
    print(f"  release {release} is healthy in staging: {staged['healthy']}")
    call("GET", f"{staged['outputs']['url']}/api/health")
    cli("gate", "request", "--stage", "prod")
    cli("approve", "--stage", "prod", "--release", release, "--comment", "looks good", actor="bob")
    promoted = cli("promote", "--to", "prod")
    print(f"  promoted {promoted['release'][:12]} to prod: healthy {promoted['healthy']}")
    call("GET", f"{promoted['outputs']['url']}/api/health")
    call("GET", f"{promoted['outputs']['url']}/")
    for entry in cli("history"):
        print(
            f"  {entry['at']}  {entry['stage']:<8} {entry['action']:<9} "
            f"{entry['release'][:12]}  by {entry['actor']}"
        )
    verified = cli("ledger", "verify")
    state = "intact" if verified["ok"] else f"BROKEN at event {verified['first_bad']}"
    print(f"  ledger {state}: {verified['count']} events, head {verified['head'][:19]}")
    rel = APP.relative_to(Path.cwd())
    print(
        f"\nStill serving dev, staging and prod. Logs: .venv/bin/alchemy-nb logs api "
        f"--stage prod --program {rel}/alchemy_run.py"
    )
    print(
        f"Stop them: .venv/bin/alchemy-nb destroy --stage STAGE --program "
        f"{rel}/alchemy_run.py (for dev, staging and prod)"
    )


if __name__ == "__main__":
    main()
