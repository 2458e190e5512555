"""alchemy-nb's cloudflare target against the contract fake: N independent resources.

The fake (``python -m alchemy_nb.testing.cloudflare``) runs in its own process with 50 ms
of latency on every call, validating every request and response against the vendored
OpenAPI description. One deploy of N resources (KV namespaces, R2 buckets and D1
databases in turn) is timed in-process, then destroyed; then the same with 10% of the
calls answered 429 (``Retry-After: 1``). A warm-up deploy of three
resources (one per kind) comes first, untimed. Printed: wall time against the 1.5 s target,
failed resources, the most requests the fake saw in flight against the client's cap, the
faults injected and any contract violation. There is no peer for a contract fake, so the
target is absolute.

    .venv/bin/python benchmarks/bench_cloudflare.py            # what `make bench` runs
    .venv/bin/python benchmarks/bench_cloudflare.py -n 200 --latency 0.05 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

TARGET_S = 1.5


def start_fake(latency: float) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alchemy_nb.testing.cloudflare",
            "--port",
            "0",
            "--json",
            "--latency",
            str(latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, info


def control(info: dict[str, Any], path: str, body: dict[str, Any] | None = None) -> Any:
    root = info["base_url"].rsplit("/client/v4", 1)[0]
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(root + path, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


PROGRAM = """
import alchemy_nb
from alchemy_nb.cloudflare import D1Database, KVNamespace, R2Bucket

app = alchemy_nb.App("bench{n}", target="cloudflare", concurrency=64)


@app.program
def infra(stage):
    for i in range({n}):
        kind = (KVNamespace, R2Bucket, D1Database)[i % 3]
        kind(f"r{{i}}")
"""


def make_app(root: Path, n: int) -> Any:
    import alchemy_nb

    (root / "alchemy_run.py").write_text(PROGRAM.format(n=n))
    return alchemy_nb.load_program(root / "alchemy_run.py")


def one(app: Any, stage: str, info: dict[str, Any]) -> tuple[float, int, dict[str, Any]]:
    """Deploy (timed) and the fake's counters for the deploy alone; then destroy."""
    from alchemy_nb.errors import DeployError

    start = time.perf_counter()
    failed = 0
    try:
        asyncio.run(app.deploy(stage))
    except DeployError as exc:
        failed = len(exc.failures)
    elapsed = time.perf_counter() - start
    stats = control(info, "/__fake__/stats")
    control(info, "/__fake__/faults", {"rate_limit_ratio": 0.0})
    asyncio.run(app.destroy(stage))
    return elapsed, failed, stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="resources (default 200)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per call")
    parser.add_argument("--cap", type=int, default=16, help="the client's concurrency cap")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    proc, info = start_fake(args.latency)
    rows = []
    try:
        os.environ.update(
            CLOUDFLARE_API_BASE_URL=info["base_url"],
            CLOUDFLARE_API_TOKEN=info["token"],
            CLOUDFLARE_ACCOUNT_ID=info["account_id"],
            CLOUDFLARE_MAX_CONCURRENCY=str(args.cap),
            XDG_CONFIG_HOME=tempfile.mkdtemp(prefix="anb-bench-config-"),
        )
        with tempfile.TemporaryDirectory(prefix="anb-bench-cf-") as tmp:
            # warm-up, outside the timing: imports, the first connections, and the
            # fake's first validation of each operation (openapi-core builds lazily)
            (Path(tmp) / "warm").mkdir()
            warm = make_app(Path(tmp) / "warm", 3)
            one(warm, "warmup", info)
            app = make_app(Path(tmp), args.n)
            asyncio.run(app.plan("warmup"))
            for label, ratio in (("no faults", 0.0), ("10% 429s", 0.1)):
                control(info, "/__fake__/faults", {"rate_limit_ratio": ratio, "reset_stats": True})
                seconds, failed, stats = one(app, "s" + str(len(rows)), info)
                rows.append(
                    {
                        "case": label,
                        "resources": args.n,
                        "seconds": round(seconds, 3),
                        "target_s": TARGET_S,
                        "ratio_to_target": round(seconds / TARGET_S, 2),
                        "failed": failed,
                        "max_in_flight": stats["max_in_flight"],
                        "cap": args.cap,
                        "faults": stats["faults"],
                        "requests": stats["requests"],
                        "violations": len(stats["violations"]),
                    }
                )
    finally:
        proc.terminate()
        proc.wait(10)
    if args.json:
        print(json.dumps({"latency_s": args.latency, "rows": rows}))
        return 0
    print(f"cloudflare target vs the contract fake ({args.latency * 1000:.0f} ms per call)")
    print(
        f"{'case':<10} {'N':>4} {'seconds':>8} {'/1.5s':>6} {'failed':>6} "
        f"{'in flight/cap':>14} {'429s':>5} {'requests':>8} {'violations':>10}"
    )
    for r in rows:
        print(
            f"{r['case']:<10} {r['resources']:>4} {r['seconds']:>8.3f} "
            f"{r['ratio_to_target']:>6.2f} {r['failed']:>6} "
            f"{str(r['max_in_flight']) + '/' + str(r['cap']):>14} {r['faults']:>5} "
            f"{r['requests']:>8} {r['violations']:>10}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
