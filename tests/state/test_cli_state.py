"""``alchemy-nb state migrate`` / ``state export`` and ``--state`` on the commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, run, write_program

from alchemy_nb.promotion import Ledger
from alchemy_nb.state import open_store

from .conftest import url_for

PROGRAM = """
import os
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("shop")

@app.program
def infra(stage):
    File("page", path=f"out/{stage.name}.txt", content=os.environ.get("CONTENT", "v1"))
"""

TARGETS = ["sqlite", pytest.param("postgres", marks=pytest.mark.xdist_group("postgres"))]


def ok(done: object) -> dict:
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    return json.loads(done.stdout)  # type: ignore[attr-defined]


@pytest.mark.parametrize("target", TARGETS)
def test_migrate_copies_every_stage_and_the_ledger_then_deploys_carry_on_there(
    target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    write_program(tmp_path, PROGRAM)
    for stage in ("dev", "prod"):
        ok(cli(tmp_path, "deploy", "--stage", stage, "--json"))
    url = url_for(target, tmp_path / "db", request)
    report = ok(cli(tmp_path, "state", "migrate", "--to", url, "--json"))
    assert report["stages"] == ["dev", "prod"]
    assert (report["resources"], report["releases"], report["ledger_copied"]) == (2, 1, 2)
    assert report["source_chain"].startswith("ledger OK: 2 events")
    assert report["target_chain"] == report["source_chain"]
    # the copy is the state: a deploy against it changes nothing, then records there
    again = ok(cli(tmp_path, "deploy", "--stage", "prod", "--state", url, "--json"))
    assert again["counts"]["noop"] == 1
    store = open_store(url)
    try:
        events = run(store.ledger_read("shop"))
        assert [e["stage"] for e in events] == ["dev", "prod", "prod"]
        assert run(Ledger(store, "shop").verify()).ok
        assert store.doc_get("shop", "stages", "prod")["current"] == again["release"]
    finally:
        store.close()
    # the file store was left as it was
    assert len((tmp_path / ".alchemy/shop/ledger.jsonl").read_text().splitlines()) == 2
    same = cli(tmp_path, "state", "migrate", "--state", url, "--to", url)
    assert same.returncode == 2
    assert "the source and target stores are the same" in same.stderr
    # back into the files, which hold an older prod: refused, then forced; the files'
    # ledger is a prefix of the target's, so one event is new
    back = ["state", "migrate", "--state", url, "--to", "file:.alchemy", "--json"]
    refused = cli(tmp_path, *back)
    assert refused.returncode == 2
    assert "already holds different state: stages record 'prod'" in refused.stderr
    back = ok(cli(tmp_path, *back, "--force"))
    assert (back["ledger_copied"], back["ledger_total"]) == (1, 3)
    assert len((tmp_path / ".alchemy/shop/ledger.jsonl").read_text().splitlines()) == 3


def test_migrate_one_stage_refuses_different_state_unless_forced(tmp_path: Path) -> None:
    write_program(tmp_path, PROGRAM)
    ok(cli(tmp_path, "deploy", "--stage", "dev", "--json"))
    ok(cli(tmp_path, "deploy", "--stage", "prod", "--json"))
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    report = ok(cli(tmp_path, "state", "migrate", "--stage", "dev", "--to", url, "--json"))
    assert report["stages"] == ["dev"]
    store = open_store(url)
    assert run(store.stages("shop")) == ["dev"]
    store.close()
    # the target's dev changes; migrating dev again would overwrite it
    ok(
        cli(
            tmp_path,
            "deploy",
            "--stage",
            "dev",
            "--state",
            url,
            "--json",
            env={"CONTENT": "v2"},
        )
    )
    refused = cli(tmp_path, "state", "migrate", "--stage", "dev", "--to", url, "--json")
    assert refused.returncode != 0
    assert "already has a different ledger" in refused.stderr
    missing = cli(tmp_path, "state", "migrate", "--stage", "qa", "--to", url)
    assert missing.returncode == 2
    assert "stage 'qa' of app 'shop' has no state" in missing.stderr


def test_migrate_refuses_a_source_whose_ledger_was_tampered_with(tmp_path: Path) -> None:
    write_program(tmp_path, PROGRAM)
    ok(cli(tmp_path, "deploy", "--stage", "dev", "--json"))
    ok(cli(tmp_path, "deploy", "--stage", "dev", "--json", env={"CONTENT": "v2"}))
    ledger = tmp_path / ".alchemy/shop/ledger.jsonl"
    lines = ledger.read_text().splitlines()
    first = json.loads(lines[0])
    first["actor"] = "mallory"
    ledger.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    target = tmp_path / "t.db"
    done = cli(tmp_path, "state", "migrate", "--to", f"sqlite:///{target}", "--json")
    assert done.returncode == 1
    assert "the source ledger does not verify" in done.stderr
    assert json.loads(done.stdout)["error"]["type"] == "LedgerError"
    assert not target.exists()  # nothing written


def test_export_writes_readable_json_of_one_stage_or_all(tmp_path: Path) -> None:
    write_program(tmp_path, PROGRAM)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    for stage in ("dev", "prod"):
        ok(cli(tmp_path, "deploy", "--stage", stage, "--json", env={"ALCHEMY_STATE_URL": url}))
    assert not (tmp_path / ".alchemy/shop/ledger.jsonl").exists()  # the variable chose SQLite
    done = cli(tmp_path, "state", "export", "--state", url)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["format"] == "alchemy-nb/export@1"
    assert sorted(doc["stages"]) == ["dev", "prod"]
    page = doc["stages"]["prod"]["resources"]["page"]
    assert (page["kind"], page["status"]) == ("fs::File", "created")
    assert doc["ledger"]["verified"] is True
    assert len(doc["ledger"]["events"]) == 2
    assert len(doc["promotion"]["releases"]) == 1
    out = tmp_path / "prod.json"
    meta = ok(
        cli(
            tmp_path, "state", "export", "--stage", "prod", "-o", str(out), "--json", "--state", url
        )
    )
    assert meta == {"ok": True, "path": str(out), "stages": ["prod"]}
    one = json.loads(out.read_text())
    assert list(one["stages"]) == ["prod"]
    assert [e["stage"] for e in one["ledger"]["events"]] == ["prod"]
    assert out.read_text().startswith("{\n")  # indented, for people
    missing = cli(tmp_path, "state", "export", "--stage", "qa", "--state", url)
    assert missing.returncode == 2
    assert "stage 'qa' of app 'shop' has no state" in missing.stderr


def test_unlock_breaks_a_lock_in_the_chosen_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_store(url)

    async def hold() -> str:
        async with store.lock("shop", "dev", operation="deploy", timeout=1) as info:
            done = cli(tmp_path, "unlock", info.id, "--state", url, "--json")
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["unlocked"]["id"] == info.id
            assert await store.current_lock("shop", "dev") is None
            return info.id

    run(hold())
    store.close()
