"""Crash safety: SIGKILL a deploy of many files anywhere; the next run converges.

Also: two deploys of one stage at once are serialized and never corrupt state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_program

N = 1200

PROGRAM = """
import os
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("crash")

@app.program
def infra(stage):
    version = os.environ["CONTENT"]
    count = int(os.environ.get("COUNT", "1200"))
    for i in range(count):
        File(f"file-{i}", path=f"out/{stage.name}/file-{i}.txt",
             content=f"file {i} content {version}\\n")
"""

pytestmark = pytest.mark.slow


def start(
    folder: Path, command: str, content: str, stage: str = "dev", count: int = N
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONTENT": content, "COUNT": str(count)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alchemy_nb",
            command,
            "--stage",
            stage,
            "--quiet",
            "--lock-timeout",
            "120",
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    _out, err = proc.communicate(timeout=240)
    return proc.returncode, err.decode()


def journal_lines(folder: Path, stage: str = "dev") -> int:
    try:
        return (folder / f".alchemy/crash/{stage}/journal.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_at(
    proc: subprocess.Popen[bytes], folder: Path, *, lines: int | None, delay: float | None
) -> bool:
    """SIGKILL once the journal holds ``lines`` entries, or after ``delay`` seconds.

    Returns whether the process was still running when it was killed."""
    deadline = time.monotonic() + 60
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() < deadline:
        if lines is not None and journal_lines(folder) >= lines:
            break
        if delay is not None and time.monotonic() - started >= delay:
            break
        time.sleep(0.0005)
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()
    return running


def assert_converged(folder: Path, content: str, stage: str = "dev", count: int = N) -> None:
    out = folder / "out" / stage
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == count, f"{len(files)} files on disk"  # no orphans, none missing
    for i in range(count):
        assert (out / f"file-{i}.txt").read_text() == f"file {i} content {content}\n"
    doc = json.loads((folder / f".alchemy/crash/{stage}/state.json").read_text())
    records = doc["resources"]
    assert sorted(records) == sorted(f"file-{i}" for i in range(count))  # each, once
    for i in range(count):
        rec = records[f"file-{i}"]
        assert rec["status"] in ("created", "updated")
        assert rec["props"]["content"] == f"file {i} content {content}\n"
        assert rec["digest"].startswith("sha256:")
        assert "replaced" not in rec
        assert "next" not in rec
    assert journal_lines(folder, stage) == 0
    lock = folder / ".alchemy/crash/locks" / f"{stage}.lock"
    assert lock.read_bytes() == b""


# Where to kill: by journal progress (intents, results, the checkpoint) and by time.
CREATE_POINTS = [
    {"lines": None, "delay": 0.05},  # before or while the program loads
    {"lines": 1, "delay": None},  # first intents on disk
    {"lines": N // 2, "delay": None},
    {"lines": N + N // 3, "delay": None},  # mid-results
    {"lines": 2 * N - 5, "delay": None},  # around the checkpoint
    # by time, mid-run: a whole cold deploy of N files takes ~0.4 s on a small machine, so
    # this lands in the provider calls there, earlier (still running) on a slower one
    {"lines": None, "delay": 0.2},
]


@pytest.mark.parametrize("point", CREATE_POINTS, ids=lambda p: f"lines={p['lines']}-t={p['delay']}")
def test_killed_first_deploy_converges_on_rerun(tmp_path: Path, point: dict) -> None:
    write_program(tmp_path, PROGRAM)
    assert kill_at(start(tmp_path, "deploy", "v1"), tmp_path, **point)
    # and once more while it recovers, to be sure a recovery can itself be interrupted
    kill_at(start(tmp_path, "deploy", "v1"), tmp_path, lines=None, delay=0.3)
    code, err = finish(start(tmp_path, "deploy", "v1"))
    assert code == 0, err
    assert_converged(tmp_path, "v1")
    rerun = subprocess.run(
        [sys.executable, "-m", "alchemy_nb", "deploy", "--json"],
        cwd=tmp_path,
        env={**os.environ, "CONTENT": "v1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(rerun.stdout)["counts"]["noop"] == N  # nothing left to do


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_killed_update_and_destroy_converge(tmp_path: Path, fraction: float) -> None:
    write_program(tmp_path, PROGRAM)
    code, err = finish(start(tmp_path, "deploy", "v1"))
    assert code == 0, err
    assert kill_at(
        start(tmp_path, "deploy", "v2"), tmp_path, lines=int(2 * N * fraction), delay=None
    )
    code, err = finish(start(tmp_path, "deploy", "v2"))
    assert code == 0, err
    assert_converged(tmp_path, "v2")

    assert kill_at(
        start(tmp_path, "destroy", "v2"), tmp_path, lines=int(2 * N * fraction), delay=None
    )
    code, err = finish(start(tmp_path, "destroy", "v2"))
    assert code == 0, err
    assert sorted((tmp_path / "out/dev").iterdir()) == []
    assert not (tmp_path / ".alchemy/crash/dev").exists()


def test_two_deploys_of_one_stage_are_serialized(tmp_path: Path) -> None:
    write_program(tmp_path, PROGRAM)
    first = start(tmp_path, "deploy", "a", count=600)
    second = start(tmp_path, "deploy", "b", count=600)
    (code1, err1), (code2, err2) = finish(first), finish(second)
    assert (code1, code2) == (0, 0), err1 + err2
    doc = json.loads((tmp_path / ".alchemy/crash/dev/state.json").read_text())
    winner = doc["resources"]["file-0"]["props"]["content"].split()[-1]
    assert winner in ("a", "b")
    assert_converged(tmp_path, winner, count=600)  # one writer's result, whole


def test_deploys_of_different_stages_run_side_by_side(tmp_path: Path) -> None:
    write_program(tmp_path, PROGRAM)
    procs = [start(tmp_path, "deploy", f"s{i}", stage=f"s{i}", count=300) for i in range(3)]
    for proc in procs:
        code, err = finish(proc)
        assert code == 0, err
    for i in range(3):
        assert_converged(tmp_path, f"s{i}", stage=f"s{i}", count=300)
