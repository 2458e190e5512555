"""The file store: journal replay, damaged records, locks held, dead and broken."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import cli, run, write_program
from things import Thing

import alchemy_nb
from alchemy_nb.errors import LockError, StateCorruptError
from alchemy_nb.state import FileStore


def deployed_app(tmp_path: Path, n: int = 3) -> alchemy_nb.App:
    app = alchemy_nb.App("st", root=tmp_path)

    @app.program
    def infra(stage):
        for i in range(n):
            Thing(f"t{i}", value=str(i))

    run(app.deploy("dev"))
    return app


def test_state_is_human_readable_json(tmp_path: Path) -> None:
    deployed_app(tmp_path)
    doc = json.loads((tmp_path / ".alchemy/st/dev/state.json").read_text())
    assert doc["format"] == "alchemy-nb/state@1"
    assert sorted(doc["resources"]) == ["t0", "t1", "t2"]
    assert doc["resources"]["t1"]["status"] == "created"
    assert doc["resources"]["t1"]["props"] == {
        "value": "1",
        "tag": "a",
        "sleep": 0.0,
        "token": None,
        "settings": {},
    }
    # the journal is folded into the snapshot at the end of a run
    assert (tmp_path / ".alchemy/st/dev/journal.jsonl").read_bytes() == b""


def test_the_snapshot_has_one_resource_to_a_line_in_id_order(tmp_path: Path) -> None:
    """A changed resource is a changed line: state diffs and reviews read well."""
    app = deployed_app(tmp_path, n=12)
    text = (tmp_path / ".alchemy/st/dev/state.json").read_text()
    lines = text.splitlines()
    records = [line for line in lines if line.startswith('"t')]
    assert [json.loads("{" + line.rstrip(",") + "}").popitem()[0] for line in records] == sorted(
        f"t{i}" for i in range(12)
    )
    before = lines

    @app.program
    def infra(stage):
        for i in range(12):
            Thing(f"t{i}", value="changed" if i == 5 else str(i))

    run(app.deploy("dev"))
    after = (tmp_path / ".alchemy/st/dev/state.json").read_text().splitlines()
    changed = [b for a, b in zip(before, after, strict=True) if a != b]
    assert len(changed) == 1 and changed[0].startswith('"t5": ')


def test_journal_replays_over_the_snapshot_and_ignores_a_torn_tail(tmp_path: Path) -> None:
    deployed_app(tmp_path)
    journal = tmp_path / ".alchemy/st/dev/journal.jsonl"
    rec = {"kind": "test::Thing", "status": "creating", "props": {"value": "9"}, "deps": []}
    journal.write_text(
        json.dumps({"t": "put", "id": "t9", "rec": rec})
        + "\n"
        + json.dumps({"t": "del", "id": "t0"})
        + "\n"
        + '{"t": "put", "id": "t5", "rec": {"kind'  # a write cut short by a crash
    )
    state = run(FileStore(tmp_path / ".alchemy").load("st", "dev"))
    assert sorted(state.records) == ["t1", "t2", "t9"]
    assert state.replayed == 2
    status = run(alchemy_nb.App("st", root=tmp_path).status("dev"))
    assert status.interrupted


def test_a_damaged_journal_line_names_file_and_line(tmp_path: Path) -> None:
    app = deployed_app(tmp_path)
    journal = tmp_path / ".alchemy/st/dev/journal.jsonl"
    journal.write_text('{"t": "del", "id": "t0"}\nnot json at all\n{"t": "del", "id": "t1"}\n')
    with pytest.raises(StateCorruptError) as info:
        run(app.plan("dev"))
    assert f"{journal}:2" in str(info.value)
    assert journal.read_text().count("\n") == 3  # nothing rewritten


def test_a_corrupted_state_file_is_a_clear_error_and_is_kept(tmp_path: Path) -> None:
    app = deployed_app(tmp_path)
    snapshot = tmp_path / ".alchemy/st/dev/state.json"
    snapshot.write_text('{"format": "alchemy-nb/state@1", "resources": {"t0": ')
    with pytest.raises(StateCorruptError) as info:
        run(app.deploy("dev"))
    assert str(snapshot) in str(info.value)
    assert "restore the file" in str(info.value)
    assert snapshot.read_text().endswith('"t0": ')
    snapshot.write_text('{"format": "alchemy-nb/state@1", "resources": {"t0": "oops"}}')
    with pytest.raises(StateCorruptError, match="damaged resource record"):
        run(app.plan("dev"))


HOLDER = """
import asyncio, sys, time
from pathlib import Path
from alchemy_nb.state import FileStore

async def main():
    store = FileStore(Path(sys.argv[1]))
    async with store.lock("st", "dev", operation="deploy", timeout=5) as info:
        print(info.id, flush=True)
        time.sleep(600)

asyncio.run(main())
"""


def hold_lock(tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / ".alchemy")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lock_id = proc.stdout.readline().strip()
    assert lock_id
    return proc, lock_id


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def test_a_second_writer_waits_then_fails_with_the_holders_details(tmp_path: Path) -> None:
    app = deployed_app(tmp_path)
    proc, lock_id = hold_lock(tmp_path)
    try:
        events = []
        started = time.monotonic()
        with pytest.raises(LockError) as info:
            run(
                app.deploy(
                    "dev", lock_timeout=0.6, reporter=lambda event, **data: events.append(event)
                )
            )
        assert time.monotonic() - started >= 0.6
        assert "lock.wait" in events
        err = info.value
        assert err.holder["pid"] == proc.pid
        assert err.holder["id"] == lock_id
        assert err.holder["operation"] == "deploy"
        assert f"alchemy-nb unlock {lock_id}" in str(err)
        assert f"pid {proc.pid}" in str(err)
        status = run(app.status("dev"))
        assert status.lock is not None and status.lock.id == lock_id
    finally:
        stop(proc)


def test_a_lock_whose_holder_died_is_taken_over_and_logged(tmp_path: Path) -> None:
    app = deployed_app(tmp_path)
    proc, lock_id = hold_lock(tmp_path)
    stop(proc)
    events: list[tuple[str, dict]] = []
    result = run(
        app.deploy(
            "dev", lock_timeout=1, reporter=lambda event, **data: events.append((event, data))
        )
    )
    assert result.ok
    takeovers = [d for e, d in events if e == "lock.takeover"]
    assert len(takeovers) == 1 and takeovers[0]["holder"].id == lock_id
    assert run(app.status("dev")).lock is None  # released after the run


def test_a_lock_from_another_host_is_broken_only_by_naming_it(tmp_path: Path) -> None:
    program = write_program(
        tmp_path,
        """
        import alchemy_nb
        from alchemy_nb.fs import File
        app = alchemy_nb.App("st")
        @app.program
        def infra(stage):
            File("f", path="out/f.txt", content="x")
    """,
    )
    lock = tmp_path / ".alchemy/st/locks/dev.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(
        json.dumps(
            {
                "id": "abc123def456",
                "app": "st",
                "stage": "dev",
                "operation": "deploy",
                "user": "ci",
                "host": "runner-elsewhere",
                "pid": 4242,
                "pid_started": "1",
                "since": time.time() - 3600,
            }
        )
    )
    proc = cli(tmp_path, "deploy", "--lock-timeout", "0.3")
    assert proc.returncode == 1
    assert "ci@runner-elsewhere (pid 4242)" in proc.stderr
    assert "alchemy-nb unlock abc123def456" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cli(tmp_path, "unlock", "nope").returncode == 1
    unlocked = cli(tmp_path, "unlock", "abc123def456", "--json")
    assert unlocked.returncode == 0, unlocked.stderr
    assert json.loads(unlocked.stdout)["unlocked"]["host"] == "runner-elsewhere"
    assert cli(tmp_path, "deploy").returncode == 0
    assert (tmp_path / "out/f.txt").read_text() == "x"
    assert program.exists()


def test_two_writers_in_one_process_are_serialized(tmp_path: Path, journal) -> None:
    app = alchemy_nb.App("st", root=tmp_path)

    @app.program
    def infra(stage):
        Thing("slow", sleep=0.2)

    async def both() -> list[alchemy_nb.RunResult]:
        return await asyncio.gather(app.deploy("dev"), app.deploy("dev"))

    first, second = run(both())
    assert sorted([first.counts["create"], second.counts["create"]]) == [0, 1]
    assert journal.ops("create") == ["slow"]


def test_stage_files_are_the_only_thing_written(tmp_path: Path) -> None:
    deployed_app(tmp_path)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == [
        ".alchemy/st/dev/journal.jsonl",
        ".alchemy/st/dev/state.json",
        ".alchemy/st/locks/dev.lock",
    ]
    assert os.path.getsize(tmp_path / ".alchemy/st/locks/dev.lock") == 0


def test_store_protocol_is_met_by_the_file_store(tmp_path: Path) -> None:
    from alchemy_nb.state import StateStore

    store: StateStore = FileStore(tmp_path)
    assert textwrap.dedent(store.location) == str(tmp_path)
    assert run(store.stages("nothing")) == []


def test_without_a_reporter_a_takeover_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = deployed_app(tmp_path)
    proc, lock_id = hold_lock(tmp_path)
    stop(proc)
    with caplog.at_level("WARNING", logger="alchemy_nb"):
        run(app.deploy("dev", lock_timeout=1))
    assert any(lock_id in r.getMessage() and "took over" in r.getMessage() for r in caplog.records)
