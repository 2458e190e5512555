"""`make demo`: deploy the demo app to stage `dev` on the local target and call it.

The app (examples/demo) is a Python Worker with a D1 database, a KV namespace and an R2
bucket. Each step runs the real `alchemy-nb` command, then the worker is called over HTTP
on 127.0.0.1, and what it answered is printed. The worker keeps running afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "examples" / "demo"
CLI = [sys.executable, "-m", "alchemy_nb"]


def cli(*args: str) -> dict:
    print(f"\n$ alchemy-nb {' '.join(args)}")
    started = time.perf_counter()
    proc = subprocess.run([*CLI, *args, "--json"], cwd=APP, capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        print(f"  | {line}")
    if proc.returncode != 0:
        raise SystemExit(f"failed with exit code {proc.returncode}")
    result = json.loads(proc.stdout)
    print(f"  took {time.perf_counter() - started:.2f} s; counts: {result.get('counts')}")
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
    print(
        f"\nStill serving {url}. Logs: .venv/bin/alchemy-nb logs api --program "
        f"{APP.relative_to(Path.cwd())}/alchemy_run.py"
    )
    print(
        f"Stop and delete it: .venv/bin/alchemy-nb destroy --program "
        f"{APP.relative_to(Path.cwd())}/alchemy_run.py"
    )


if __name__ == "__main__":
    main()
