"""``alchemy-nb dev``: one stage on this machine, redeployed on every change."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from ..errors import AlchemyError

IGNORED = {".alchemy", "__pycache__", ".git", ".venv", "node_modules", ".pytest_cache"}


def run_dev(app: Any, stage: str, args: argparse.Namespace, out: Any) -> int:
    """Deploy, then watch the app's folder and redeploy on change; Ctrl-C stops it all."""
    try:
        return asyncio.run(_dev(app, stage, args, out))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0


async def _dev(app: Any, stage: str, args: argparse.Namespace, out: Any) -> int:
    from watchfiles import awatch

    folder = app.root / ".alchemy" / app.name / stage / "local"
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main is not None:  # SIGTERM stops it like Ctrl-C does
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
    tail = asyncio.create_task(_stream_logs(folder / "logs"))
    try:
        await _deploy(app, stage, args, out)
        out.log(f"watching {app.root} for changes; Ctrl-C to stop")
        async for changes in awatch(app.root, watch_filter=_relevant, debounce=200):
            names = sorted({Path(p).name for _, p in changes})
            out.log(f"changed: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
            await _deploy(app, stage, args, out)
    finally:
        tail.cancel()
        await _stop(folder)
        out.log("stopped the stage's workers (state and data are kept)")
    return 0


async def _deploy(app: Any, stage: str, args: argparse.Namespace, out: Any) -> None:
    try:
        result = await app.deploy(stage, concurrency=args.concurrency, reporter=out.reporter())
    except AlchemyError as exc:  # keep watching: the next save may fix it
        out.fail_message(str(exc))
        return
    out.log(result.summary())
    for key, value in result.outputs_masked.items():
        out.log(f"  {key} = {value}")
    for res in result.resources:
        if res.kind == "cloudflare::Worker":
            out.log(f"Ready: {res.id}")


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
    from ..cloudflare.local._control import request

    with contextlib.suppress(Exception):
        await request(folder, {"op": "shutdown"}, start=False, timeout=30)
