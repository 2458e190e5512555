"""Finding and installing a peer harness (Alchemy on bun, Miniflare) beside the repository.

The harnesses live in the read-only shared folder next to the repository (or under
``$ALCHEMY_NB_BENCH_PEERS``); each benchmark copies one into ``benchmarks/.peers/`` and runs
``npm ci`` there once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

PEERS_ENV = "ALCHEMY_NB_BENCH_PEERS"
DEFAULT_PEERS_SRC = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"


def install_peer(
    name: str,
    label: str,
    files: Sequence[str],
    dest: Path,
    installed: Path,
    *,
    error: type[Exception],
    progress: Callable[[str], None],
) -> Path:
    """Copy the harness ``name`` into ``dest`` and ``npm ci`` it unless ``installed`` exists
    and the package files did not change. Returns the harness's source folder."""
    given = os.environ.get(PEERS_ENV)
    src = (Path(given).expanduser() if given else DEFAULT_PEERS_SRC) / name
    missing = [f for f in files if not (src / f).is_file()]
    if missing:
        where = f"${PEERS_ENV}={given}" if given else "the shared folder beside the repository"
        raise error(
            f"the {label} peer harness is missing: {src} (from {where}) lacks "
            f"{', '.join(missing)}. Set {PEERS_ENV} to a folder holding {name}/, "
            "or pass --skip-peer"
        )
    dest.mkdir(parents=True, exist_ok=True)
    changed = False
    for f in files:
        source, target = src / f, dest / f
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)  # not copy2: the source is read-only
            changed |= f.startswith("package")
    if installed.exists() and not changed:
        return src.resolve()
    npm = shutil.which("npm")
    if npm is None:
        raise error("npm is not installed: install Node.js, or pass --skip-peer")
    progress(f"installing the peer in {dest} (npm ci, once)")
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=dest,
        stdout=sys.stderr,
        stderr=subprocess.STDOUT,
        check=False,
    )
    if proc.returncode != 0 or not installed.exists():
        raise error("npm ci failed in the peer folder; see above, or pass --skip-peer")
    return src.resolve()
