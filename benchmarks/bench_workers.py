"""A FastAPI app through the ASGI bridge on the local target, beside the same app on bare
uvicorn and beside Miniflare, in one run; and ``alchemy-nb dev`` to ``Ready on``.

1. throughput on ``/api/health``: the FastAPI hello app as a Python Worker
   (``asgi.fetch(app, request.js_object, self.env)``, FastAPI from the worker's own
   ``pyproject.toml``) served by ``alchemy-nb dev``; the very same app module on bare
   uvicorn (``uvicorn app:app``, uvloop + httptools as our host uses); and Miniflare's
   JavaScript worker (../shared/bench/miniflare). ``wrk -t2 -c32`` per side, the sides
   alternated per repetition, medians; targets: ours >= 50% of bare uvicorn, ours > Miniflare.
2. ``alchemy-nb dev`` to its ``Ready on`` line with the worker's dependencies cached, for a
   fresh copy of the project (no state) and again with its state; target <= 1 s.

    .venv/bin/python benchmarks/bench_workers.py                  # 3 repetitions, 10 s per wrk
    .venv/bin/python benchmarks/bench_workers.py --reps 5 --duration 5 --skip-peer

Set ALCHEMY_NB_BENCH_PEERS to the folder holding miniflare/ (see _peers.py). Results go to
benchmarks/results/workers.json. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench_local import (
    CLI,
    HOST,
    PEERS,
    VENV_BIN,
    WRK_CONNECTIONS,
    WRK_THREADS,
    BenchError,
    Miniflare,
    check_routes,
    free_port,
    http_get,
    progress,
    require_tools,
    setup_peer,
    wrk,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "workers.json"
ROUTE = "/api/health"
RPS_VS_UVICORN_TARGET = 0.5
READY_TARGET_S = 1.0
START_TIMEOUT_S = 180.0

APP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/api/health")
async def health():
    return {"status": "ok"}
"""

WORKER = """\
from workers import WorkerEntrypoint

from app import app


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        import asgi

        return await asgi.fetch(app, request.js_object, self.env)
"""

WRANGLER = """\
name = "fastapi-hello"
main = "src/worker.py"
compatibility_date = "2025-09-01"
compatibility_flags = ["python_workers"]
"""

PYPROJECT = """\
[project]
name = "fastapi-hello"
version = "0.1.0"
dependencies = ["fastapi"]
"""


def write_project(folder: Path) -> None:
    (folder / "src").mkdir(parents=True)
    (folder / "wrangler.toml").write_text(WRANGLER)
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / "src" / "app.py").write_text(APP)
    (folder / "src" / "worker.py").write_text(WORKER)


class Dev:
    """``alchemy-nb dev --port N`` in a project; ``ready_s`` from start to ``Ready on``."""

    def __init__(self, project: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(CLI), "dev", "--port", str(self.port)],
            cwd=project,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log.open("ab"),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until "Ready on ..." (or exit)
        self.ready_s = time.perf_counter() - started
        if not line.startswith("Ready on "):
            self.stop()
            raise BenchError(f"alchemy-nb dev did not get ready:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Uvicorn:
    """The same FastAPI module on bare uvicorn (its defaults pick uvloop and httptools)."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "python"), "-m", "uvicorn", "app:app", "--host", HOST,
             "--port", str(self.port), "--no-access-log", "--log-level", "warning"],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            # a session of its own, as alchemy-nb's worker processes and Miniflare have: on
            # a kernel with scheduler autogroups each session gets its own share of the CPU
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                if http_get(self.port, ROUTE)[0] == 200:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"uvicorn did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)


def check(side: str, port: int) -> None:
    status, body = http_get(port, ROUTE)
    if status != 200 or json.loads(body) != {"status": "ok"}:
        raise BenchError(f"{side}: {ROUTE} answered {status} {body[:200]!r}")


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    PEERS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="workers-", dir=PEERS) as tmp:
        yield Path(tmp)


def run(args: argparse.Namespace) -> dict[str, Any]:
    peer = not args.skip_peer
    require_tools(args.skip_peer)
    if peer:
        setup_peer()
    rps: dict[str, list[float]] = {"alchemy-nb (FastAPI, ASGI bridge)": [], "bare uvicorn": []}
    if peer:
        rps["Miniflare"] = []
    ready: dict[str, list[float]] = {"fresh copy": [], "with state": []}
    with workspace() as work, contextlib.ExitStack() as stack:
        logs = work / "logs"
        logs.mkdir()
        project = work / "project"
        write_project(project)
        progress("warming the worker's dependency environment (pip, once per FastAPI version)")
        Dev(project, logs / "dev-warm.log").stop()
        for rep in range(args.ready_reps):
            fresh = work / f"fresh-{rep}"
            write_project(fresh)
            dev = Dev(fresh, logs / "dev-ready.log")
            ready["fresh copy"].append(dev.ready_s)
            dev.stop()
            again = Dev(fresh, logs / "dev-ready.log")
            ready["with state"].append(again.ready_s)
            again.stop()
        progress(f"dev to Ready on: {ready}")
        dev = Dev(project, logs / "dev.log")
        stack.callback(dev.stop)
        check("alchemy-nb", dev.port)
        bare = Uvicorn(project / "src", logs / "uvicorn.log")
        stack.callback(bare.stop)
        check("uvicorn", bare.port)
        ports = {"alchemy-nb (FastAPI, ASGI bridge)": dev.port, "bare uvicorn": bare.port}
        if peer:
            mf = Miniflare(work / "mf-state", logs / "miniflare.log")
            mf.start()
            stack.callback(mf.stop)
            mf.wait_seeded()
            check_routes("miniflare", mf.port)
            ports["Miniflare"] = mf.port
        for rep in range(args.reps):
            sides = list(ports)
            if rep % 2:
                sides.reverse()
            for side in sides:
                wrk(ports[side], ROUTE, 2)  # warm-up
                result = wrk(ports[side], ROUTE, args.duration)
                rps[side].append(result[0])
                progress(f"rep {rep + 1}: {side}: {result[0]:,.0f} requests/s")
    return {"rps": rps, "ready_s": ready}


def render(doc: dict[str, Any]) -> str:
    rps = {side: median(v) for side, v in doc["rps"].items()}
    ours = rps["alchemy-nb (FastAPI, ASGI bridge)"] or 0.0
    lines = [
        f"FastAPI hello on {ROUTE}, wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS}, medians:",
    ]
    for side, value in rps.items():
        lines.append(f"  {side:<36} {value or 0:>10,.0f} requests/s")
    bare = rps["bare uvicorn"] or 1.0
    ratio = ours / bare
    lines.append(
        f"  alchemy-nb / bare uvicorn = {ratio:.2f} (target >= {RPS_VS_UVICORN_TARGET}): "
        f"{'met' if ratio >= RPS_VS_UVICORN_TARGET else 'NOT met'}"
    )
    if "Miniflare" in rps:
        peer = rps["Miniflare"] or 1.0
        lines.append(
            f"  alchemy-nb / Miniflare    = {ours / peer:.2f} (target > 1): "
            f"{'met' if ours > peer else 'NOT met'}"
        )
    for what, values in doc["ready_s"].items():
        value = median(values) or 0.0
        lines.append(
            f"alchemy-nb dev to Ready on, deps cached, {what}: median {value:.2f} s "
            f"(target <= {READY_TARGET_S} s): {'met' if value <= READY_TARGET_S else 'NOT met'}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="wrk repetitions per side")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--ready-reps", type=int, default=5, help="dev to Ready on samples")
    parser.add_argument("--skip-peer", action="store_true", help="without Miniflare")
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        doc = run(args)
    except BenchError as exc:
        progress(f"bench_workers: FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        progress("bench_workers: interrupted; everything it started was stopped")
        return 130
    doc["meta"] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "reps": args.reps,
        "duration": args.duration,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1) if args.json else render(doc))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)
