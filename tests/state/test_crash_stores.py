"""Crash safety on the database stores: a deploy killed mid-run resumes and converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run

from alchemy_nb.state import open_store

pytestmark = pytest.mark.slow

N = 300

PROGRAM = """
import os
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("crash")

@app.program
def infra(stage):
    for i in range(int(os.environ["COUNT"])):
        File(f"file-{i}", path=f"out/file-{i}.txt", content=f"file {i} {os.environ['CONTENT']}\\n")
"""


def deploy(folder: Path, url: str, content: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "alchemy_nb", "deploy", "--quiet", "--state", url],
        cwd=folder,
        env={**os.environ, "CONTENT": content, "COUNT": str(N)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize(
    "kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.xdist_group("postgres"))]
)
def test_a_deploy_killed_mid_run_resumes_and_converges(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from .conftest import url_for

    url = url_for(kind, tmp_path / "db", request)
    (tmp_path / "alchemy_run.py").write_text(PROGRAM)
    store = open_store(url)
    try:
        first = deploy(tmp_path, url, "v1")
        deadline = time.monotonic() + 60
        while first.poll() is None and time.monotonic() < deadline:
            if run(store.load("crash", "dev")).replayed >= N // 3:  # in the middle of it
                first.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        first.communicate()
        assert first.returncode == -signal.SIGKILL, "the deploy finished before it was killed"
        interrupted = run(store.load("crash", "dev"))
        assert interrupted.replayed > 0  # the journal shows the unfinished run
        statuses = [r["status"] for r in interrupted.records.values()]
        assert "creating" in statuses  # intents recorded before their provider call finished

        again = deploy(tmp_path, url, "v1")
        _out, err = again.communicate(timeout=240)
        assert again.returncode == 0, err.decode()
        state = run(store.load("crash", "dev"))
        assert state.replayed == 0
        assert len(state.records) == N
        assert {r["status"] for r in state.records.values()} == {"created"}
        files = sorted((tmp_path / "out").iterdir())
        assert len(files) == N  # no duplicates, no orphans
        assert all(p.read_text() == f"file {p.stem.split('-')[1]} v1\n" for p in files)
        assert run(store.current_lock("crash", "dev")) is None
    finally:
        store.close()
