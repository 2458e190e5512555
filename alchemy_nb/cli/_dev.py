"""``alchemy-nb dev``: one stage on this machine, redeployed on every change.

A drop-in for ``wrangler dev`` / ``pywrangler dev`` in a wrangler project (or with a
program): ``--port N`` (else ``[dev] port`` of the wrangler configuration) serves the
(first) worker on that port, and once a worker serves
one line ``Ready on http://127.0.0.1:N`` goes to stdout (with `` (worker id)`` after it
when the app has several workers). Ctrl-C or SIGTERM stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import AlchemyError, ConfigError, DeployError

IGNORED = {".alchemy", "__pycache__", ".git", ".venv", "node_modules", ".pytest_cache"}
LOOPBACK = {"127.0.0.1", "localhost"}
STOP_TIMEOUT = 2.5  # seconds to wait for the stage's processes to exit


def run_dev(app: Any, stage: str, args: argparse.Namespace, out: Any) -> int:
    """Deploy, then watch the app's folder and redeploy on change; Ctrl-C stops it all."""
    host = getattr(args, "host", None)
    if host is not None and host not in LOOPBACK:
        raise ConfigError(
            f"--host {host}: the local target serves on 127.0.0.1 only",
            fix="leave --host out, or pass --host 127.0.0.1",
        )
    port = getattr(args, "port", None)
    if port is None:
        port = _configured_port(app)
    if port is not None:
        if not 0 < port < 65536:
            raise ConfigError(f"--port {port} is not a port", fix="pass a port from 1 to 65535")
        os.environ["ALCHEMY_NB_DEV_PORT"] = str(port)  # read by the Worker provider
    try:
        return asyncio.run(_dev(app, stage, args, out))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0


def _configured_port(app: Any) -> int | None:
    """``port`` of the wrangler configuration's ``[dev]`` table, as ``wrangler dev`` reads it."""
    from ..wrangler._config import find_wrangler, load_wrangler

    found = find_wrangler(app.root)
    if found is None:
        return None
    return load_wrangler(found, warn=False).dev.port


async def _dev(app: Any, stage: str, args: argparse.Namespace, out: Any) -> int:
    from ..cloudflare.local._control import request

    folder = app.root / ".alchemy" / app.name / stage / "local"
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main is not None:  # SIGTERM stops it like Ctrl-C does
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
    tail = asyncio.create_task(_stream_logs(folder / "logs"))
    # the stage's supervisor starts while the deploy computes its plan
    early = asyncio.create_task(request(folder, {"op": "ping"}))
    # watching starts before the first deploy, so no edit made after it is missed
    changes: asyncio.Queue[set[Any]] = asyncio.Queue()
    watcher = asyncio.create_task(_watch(app.root, changes))
    announced: set[str] = set()
    try:
        await _deploy(app, stage, args, out, announced)
        with contextlib.suppress(Exception):
            await early
        out.log(f"watching {app.root} for changes; Ctrl-C to stop")
        while True:
            batch = asyncio.ensure_future(changes.get())
            await asyncio.wait({batch, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not batch.done():
                batch.cancel()
                watcher.result()  # the watcher failed: say why
                return 1
            names = sorted({Path(p).name for _, p in batch.result()})
            out.log(f"changed: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
            await _deploy(app, stage, args, out, announced)
    finally:
        tail.cancel()
        watcher.cancel()
        await _stop(folder)
        out.log("stopped the stage's workers (state and data are kept)")


async def _deploy(
    app: Any, stage: str, args: argparse.Namespace, out: Any, announced: set[str]
) -> None:
    try:
        result = await app.deploy(stage, concurrency=args.concurrency, reporter=out.reporter())
    except DeployError as exc:  # each failure was reported above: say it once
        names = ", ".join(sorted(exc.failures)) or "some resources"
        out.fail_message(
            f"the deploy of stage {stage!r} failed ({names}, see above); "
            "fix it and save: dev deploys again"
        )
        return
    except AlchemyError as exc:  # keep watching: the next save may fix it
        out.fail_message(str(exc))
        return
    out.log(result.summary())
    for key, value in result.outputs_masked.items():
        out.log(f"  {key} = {value}")
    _announce(app.root / ".alchemy" / app.name / stage / "local", announced)


def _announce(folder: Path, announced: set[str]) -> None:
    """``Ready on URL`` on stdout, once per worker and port."""
    from ..cloudflare.local._control import serving

    names = sorted(p.stem for p in (folder / "workers").glob("*.serving"))
    for name in names:
        now = serving(folder, name)
        if now is None:
            continue
        url = f"http://127.0.0.1:{now['port']}"
        if f"{name} {url}" in announced:
            continue
        announced.add(f"{name} {url}")
        suffix = f" ({name})" if len(names) > 1 else ""
        sys.stdout.write(f"Ready on {url}{suffix}\n")
        sys.stdout.flush()


async def _watch(root: Path, changes: asyncio.Queue[set[Any]]) -> None:
    from watchfiles import awatch

    async for batch in awatch(root, watch_filter=_relevant, debounce=200):
        changes.put_nowait(batch)


def _relevant(change: Any, path: str) -> bool:
    parts = set(Path(path).parts)
    return not (parts & IGNORED) and not path.endswith((".log", ".sqlite", "-wal", "-shm"))


async def _stream_logs(folder: Path) -> None:
    """Print every worker's new log lines, prefixed with its name."""
    offsets: dict[Path, int] = {}
    first = True
    while True:
        for path in sorted(folder.glob("*.log")) if folder.exists() else []:
            size = path.stat().st_size
            start = offsets.get(path, size if first else 0)
            if size > start:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    data = fh.read(size - start)
                for line in data.decode(errors="replace").splitlines():
                    sys.stderr.write(f"[{path.stem}] {line}\n")
            offsets[path] = size
        first = False
        await asyncio.sleep(0.2)


async def _stop(folder: Path) -> None:
    """Stop the stage's supervisor and wait (briefly) until it and its workers are gone."""
    from .._process import process_start_marker
    from ..cloudflare.local._control import request

    # Who to wait for, read before the shutdown: the supervisor removes its files before its
    # last worker and it itself have exited.
    processes = _stage_processes(folder)
    with contextlib.suppress(Exception):
        await request(folder, {"op": "shutdown"}, start=False, timeout=STOP_TIMEOUT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and any(
        process_start_marker(pid) == started for pid, started in processes
    ):
        await asyncio.sleep(0.02)


def _stage_processes(folder: Path) -> list[tuple[int, str]]:
    """(pid, start marker) of the stage's supervisor and of every worker it serves."""
    from .._process import process_start_marker

    found: list[tuple[int, str]] = []
    files = [folder / "supervisor.json", *sorted((folder / "workers").glob("*.serving"))]
    for path in files:
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key in ("pid", "supervisor"):
            pid = info.get(key)
            if isinstance(pid, int) and pid > 0:
                started = process_start_marker(pid)
                if started and (pid, started) not in found:
                    found.append((pid, started))
    return found
