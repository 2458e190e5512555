"""One contract, three stores: files, SQLite and PostgreSQL behave the same."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from things import Thing

import alchemy_nb
from alchemy_nb.errors import GateError, LockError
from alchemy_nb.promotion import Ledger, Pipeline
from alchemy_nb.state import LockInfo, StateStore, open_store

REC = {"kind": "test::Thing", "status": "created", "digest": "d1", "props": {"value": "1"}}


def put(rid: str, **changes: Any) -> dict[str, Any]:
    return {"t": "put", "id": rid, "rec": {**REC, **changes}}


def test_an_unknown_stage_is_empty(store: StateStore) -> None:
    state = run(store.load("app", "dev"))
    assert (state.records, state.meta, state.replayed) == ({}, {}, 0)
    assert run(store.stages("app")) == []
    assert run(store.current_lock("app", "dev")) is None
    assert run(store.ledger_read("app")) == []


def test_appended_entries_replay_in_order_until_a_checkpoint_folds_them(
    make_store: Callable[[], StateStore],
) -> None:
    writer, reader = make_store(), make_store()
    run(writer.append("app", "dev", [put("a"), put("b"), put("a", digest="d2")]))
    run(writer.append("app", "dev", [{"t": "del", "id": "b"}], sync=False))
    run(writer.append("app", "dev", [{"t": "meta", "key": "outputs", "value": {"x": 1}}]))
    state = run(reader.load("app", "dev"))
    assert state.records == {"a": {**REC, "digest": "d2"}}
    assert state.meta == {"outputs": {"x": 1}}
    assert state.replayed == 5  # unfinished work shows
    run(reader.checkpoint(state))
    again = run(writer.load("app", "dev"))
    assert (again.records, again.meta, again.replayed) == (state.records, state.meta, 0)
    run(writer.append("app", "dev", [{"t": "meta", "key": "outputs", "value": None}]))
    assert run(reader.load("app", "dev")).meta == {}
    assert run(reader.stages("app")) == ["dev"]


def test_stages_are_listed_per_app_and_dropped(store: StateStore) -> None:
    for stage in ("prod", "dev", "staging"):
        run(store.append("app", stage, [put("a")]))
    run(store.append("other", "qa", [put("a")]))
    assert run(store.stages("app")) == ["dev", "prod", "staging"]
    run(store.drop("app", "staging"))
    assert run(store.stages("app")) == ["dev", "prod"]
    assert run(store.load("app", "staging")).records == {}
    assert run(store.load("app", "dev")).records == {"a": REC}


def test_a_stage_lock_names_its_holder_and_a_second_writer_fails_after_waiting(
    make_store: Callable[[], StateStore],
) -> None:
    first, second = make_store(), make_store()
    waited: list[LockInfo] = []

    async def scenario() -> tuple[LockInfo, LockInfo | None, LockError]:
        async with first.lock("app", "dev", operation="deploy", timeout=5) as held:
            seen = await second.current_lock("app", "dev")
            with pytest.raises(LockError) as caught:
                async with second.lock(
                    "app", "dev", operation="destroy", timeout=0.3, on_wait=waited.append
                ):
                    pass
            # another stage of the same app is not blocked
            async with second.lock("app", "prod", operation="deploy", timeout=1):
                pass
        return held, seen, caught.value

    held, seen, error = run(scenario())
    assert seen is not None
    assert (seen.id, seen.operation, seen.pid, seen.user) == (
        held.id,
        "deploy",
        held.pid,
        held.user,
    )
    assert [w.id for w in waited] == [held.id]
    assert error.holder["id"] == held.id
    assert f"alchemy-nb unlock {held.id}" in str(error)
    assert run(second.current_lock("app", "dev")) is None

    async def again() -> None:  # free once released
        async with second.lock("app", "dev", operation="deploy", timeout=1):
            pass

    run(again())


def test_a_lock_is_broken_only_by_naming_it(make_store: Callable[[], StateStore]) -> None:
    first, second = make_store(), make_store()

    async def scenario() -> LockInfo:
        async with first.lock("app", "dev", operation="deploy", timeout=5) as held:
            with pytest.raises(LockError, match="no lock with id 'nope'"):
                await second.break_lock("nope")
            broken = await second.break_lock(held.id)
            assert broken.id == held.id
            async with second.lock("app", "dev", operation="deploy", timeout=2):
                assert (await second.current_lock("app", "dev")) is not None
            return held

    run(scenario())


HOLDER = """
import asyncio, sys, time
from alchemy_nb.state import open_store

async def main():
    store = open_store(sys.argv[1])
    async with store.lock("app", "dev", operation="deploy", timeout=10) as info:
        print(info.id, flush=True)
        time.sleep(600)

asyncio.run(main())
"""


def test_a_lock_whose_holder_was_killed_is_recovered(store_url: str, store: StateStore) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store_url], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    dead_id = proc.stdout.readline().strip()
    assert dead_id
    assert run(store.current_lock("app", "dev")) is not None
    proc.kill()
    proc.wait()
    proc.stdout.close()
    taken: list[LockInfo] = []

    async def take() -> LockInfo:
        async with store.lock(
            "app", "dev", operation="deploy", timeout=10, on_takeover=taken.append
        ) as info:
            return info

    info = run(take())
    assert info.id != dead_id
    assert [t.id for t in taken] == [dead_id]  # the takeover is reported with who died
    assert run(store.current_lock("app", "dev")) is None


def test_the_ledger_chain_holds_under_concurrent_appenders(
    make_store: Callable[[], StateStore],
) -> None:
    stores = [make_store() for _ in range(4)]

    async def scenario() -> None:
        await asyncio.gather(
            *(
                Ledger(stores[i % 4], "app").record("deploy", actor=f"u{i}", stage="dev")
                for i in range(24)
            )
        )

    run(scenario())
    events = run(stores[0].ledger_read("app"))
    assert [e["seq"] for e in events] == list(range(1, 25))
    assert run(Ledger(stores[1], "app").verify()).ok

    def broken(last: dict[str, Any] | None) -> dict[str, Any]:
        raise RuntimeError("the event cannot be built")

    with pytest.raises(RuntimeError):
        run(stores[2].ledger_append("app", broken))
    assert len(run(stores[3].ledger_read("app"))) == 24  # nothing half-written


def test_promotion_documents_and_blobs(make_store: Callable[[], StateStore]) -> None:
    one, two = make_store(), make_store()
    assert one.doc_get("app", "releases", "r1") is None
    assert one.doc_put("app", "releases", "r1", {"id": "r1", "n": 1}, create=True) == {
        "id": "r1",
        "n": 1,
    }
    # create keeps the first: releases are content-addressed and immutable
    assert two.doc_put("app", "releases", "r1", {"id": "r1", "n": 2}, create=True)["n"] == 1
    two.doc_put("app", "stages", "prod", {"history": [1]})
    one.doc_put("app", "stages", "prod", {"history": [1, 2]})
    one.doc_put("app", "stages", "dev", {"history": []})
    two.doc_put("other", "stages", "qa", {"history": []})
    assert two.doc_get("app", "stages", "prod") == {"history": [1, 2]}
    assert two.doc_keys("app", "stages") == ["dev", "prod"]
    assert one.doc_keys("app", "gates") == []
    one.blob_put("app", "ab" * 32, b"\x00binary\xff")
    two.blob_put("app", "ab" * 32, b"\x00binary\xff")
    assert two.blob_get("app", "ab" * 32) == b"\x00binary\xff"
    assert one.blob_get("app", "cd" * 32) is None


def test_one_promotion_per_stage_at_a_time(make_store: Callable[[], StateStore]) -> None:
    one, two = make_store(), make_store()
    order: list[str] = []

    async def holder(store: StateStore, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        async with store.promotion_lock("app", "prod", timeout=10):
            order.append(f"{name}+")
            await asyncio.sleep(0.3)
            order.append(f"{name}-")

    async def scenario() -> None:
        await asyncio.gather(holder(one, "a", 0), holder(two, "b", 0.05))
        async with one.promotion_lock("app", "prod", timeout=5):
            with pytest.raises(LockError):  # a timeout is a clear error
                async with two.promotion_lock("app", "prod", timeout=0.2):
                    pass
            async with two.promotion_lock("app", "staging", timeout=1):
                pass

    run(scenario())
    assert order == ["a+", "a-", "b+", "b-"]


def test_an_app_deploys_no_ops_and_destroys_through_the_store(
    store_url: str, tmp_path: Path, journal: Any
) -> None:
    app = alchemy_nb.App("st", root=tmp_path / "app", state=store_url)

    @app.program
    def infra(stage: alchemy_nb.Stage) -> dict[str, Any]:
        things = [Thing(f"t{i}", value=f"{stage.name}-{i}") for i in range(5)]
        return {"last": things[-1].value}

    result = run(app.deploy("dev"))
    assert result.counts["create"] == 5
    assert result.outputs == {"last": "dev-4"}
    again = run(app.deploy("dev"))
    assert again.counts.get("create", 0) == 0
    assert len(journal.ops("create")) == 5  # the no-op made no provider call
    other = alchemy_nb.App("st", root=tmp_path / "app", state=open_store(store_url))
    other.program(infra)
    assert run(other.read("dev")).outputs == {"last": "dev-4"}
    status = run(other.status("dev"))
    assert [r["id"] for r in status.resources] == [f"t{i}" for i in range(5)]
    run(app.destroy("dev"))
    assert run(other.state.stages("st")) == []
    app.state.close()
    other.state.close()


PROGRAM = """
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("shop")

@app.program
def infra(stage):
    File("page", path=f"out/{stage.name}.txt", content="v1")
"""


def test_releases_and_gates_live_in_the_store(store_url: str, tmp_path: Path) -> None:
    (tmp_path / "alchemy_run.py").write_text(PROGRAM)
    (tmp_path / "alchemy_nb.toml").write_text(
        '[stages.staging]\n[stages.prod]\npromote_from = "staging"\nrequired_reviewers = 1\n'
    )
    app = alchemy_nb.load_program(tmp_path / "alchemy_run.py")
    app.state = store_url
    pipeline = Pipeline(app)
    staged = run(pipeline.deploy("staging", actor="alice"))
    assert staged.healthy
    store = app.state
    assert store.doc_keys("shop", "releases") == [staged.release]
    assert store.doc_get("shop", "stages", "staging")["current"] == staged.release
    gate = run(pipeline.request_gate("prod", actor="alice"))
    assert store.doc_get("shop", "gates", gate["id"])["status"] == "open"
    with pytest.raises(GateError, match="0 of 1 required approvals"):
        run(pipeline.promote("prod", actor="alice"))
    run(pipeline.approve("prod", staged.release, actor="bob"))
    # another machine (a CI runner) has only the store: the release's files come from it
    shutil.rmtree(tmp_path / ".alchemy/shop/promotion/trees")
    (tmp_path / "alchemy_run.py").write_text(PROGRAM.replace("v1", "v2-not-released"))
    promoted = run(pipeline.promote("prod", actor="alice"))
    assert promoted.release == staged.release
    assert (tmp_path / "out/prod.txt").read_text() == "v1"
    kinds = [e["kind"] for e in run(store.ledger_read("shop"))]
    assert kinds == ["deploy", "gate.request", "promotion", "approval", "promotion"]
    assert run(Ledger(store, "shop").verify()).ok
    if not store_url.startswith("file:"):  # nothing of it is left in files
        assert not (tmp_path / ".alchemy/shop/promotion/releases").exists()
        assert not (tmp_path / ".alchemy/shop/ledger.jsonl").exists()
    store.close()
