"""Durable Objects, Workflows and Queues of the local runtime, on real SQLite files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from alchemy_nb.cloudflare.local.runtime._durable_objects import Namespace
from alchemy_nb.cloudflare.local.runtime._queues import QueueBinding, QueueConsumer
from alchemy_nb.cloudflare.local.runtime._workflows import WorkflowBinding, WorkflowEngine


class Counter:
    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env

    async def increment(self) -> int:
        value = await self.ctx.storage.get("n") or 0
        await asyncio.sleep(0.001)  # a read-await-write race, unless calls are serialized
        await self.ctx.storage.put("n", value + 1)
        return value + 1

    async def fetch(self, request: Any) -> str:
        return f"fetched {request}"


def namespace(folder: Path) -> Namespace:
    return Namespace("COUNTER", Counter, folder, lambda: None, lambda req, init: req)


def test_durable_objects_serialize_calls_and_persist(tmp_path: Path) -> None:
    async def main() -> None:
        ns = namespace(tmp_path)
        a = ns.idFromName("a")
        assert str(a) == str(ns.idFromName("a")) and len(str(a)) == 64
        assert str(a) != str(ns.idFromName("b"))
        stub = ns.get(a)
        results = await asyncio.gather(*(stub.increment() for _ in range(50)))
        assert sorted(results) == list(range(1, 51))
        assert await ns.get(ns.idFromName("b")).increment() == 1  # its own storage
        assert await stub.fetch("req") == "fetched req"
        with pytest.raises(TypeError, match="does not implement the method"):
            await stub.nope()
        ns.close()
        again = namespace(tmp_path)  # a new process: the storage is still there
        assert await again.get(again.idFromName("a")).increment() == 51
        again.close()

    asyncio.run(main())


def test_durable_object_storage_api(tmp_path: Path) -> None:
    async def main() -> None:
        ns = namespace(tmp_path)
        inst = ns._instance(ns.idFromName("x"))
        storage = inst.state.storage
        await storage.put({"a/1": 1, "a/2": {"x": [1, 2]}, "b": "text"})
        assert await storage.get("a/2") == {"x": [1, 2]}
        assert await storage.get(["a/1", "b", "missing"]) == {"a/1": 1, "b": "text"}
        assert list(await storage.list(prefix="a/")) == ["a/1", "a/2"]
        assert list(await storage.list({"reverse": True, "limit": 1})) == ["b"]
        assert await storage.delete("b") is True
        assert await storage.delete(["a/1", "zzz"]) == 1

        async def failing(txn: Any) -> None:
            await txn.put("t", 1)
            raise RuntimeError("roll back")

        with pytest.raises(RuntimeError):
            await storage.transaction(failing)
        assert await storage.get("t") is None
        storage.sql.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        storage.sql.exec("INSERT INTO items (name) VALUES (?), (?)", "x", "y")
        assert [r["name"] for r in storage.sql.exec("SELECT name FROM items ORDER BY id")] == [
            "x",
            "y",
        ]
        assert storage.sql.exec("SELECT count(*) AS n FROM items").one() == {"n": 2}
        ns.close()

    asyncio.run(main())


RUNS: list[str] = []


class Flow:
    def __init__(self, ctx: Any, env: Any) -> None:
        pass

    async def run(self, event: Any, step: Any) -> Any:
        @step.do("first")
        async def first() -> int:
            RUNS.append("first")
            return event.payload["n"] * 2

        doubled = await first()
        second = await step.do("second", lambda: RUNS.append("second") or doubled + 1)
        await step.sleep("pause", 50)  # milliseconds
        if event.payload.get("block"):
            await asyncio.Event().wait()  # stands for a crash: never finishes
        return {"result": second}


def test_workflow_steps_are_memoized_across_a_restart(tmp_path: Path) -> None:
    RUNS.clear()
    path = tmp_path / "flow.sqlite"

    async def first_life() -> str:
        engine = WorkflowEngine("flow", Flow, path, lambda: None)
        binding = WorkflowBinding("flow", path, engine)
        inst = await binding.create(params={"n": 20, "block": True})
        for _ in range(200):
            if (await inst.status())["status"] == "waiting" or RUNS == ["first", "second"]:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        status = await inst.status()
        assert status.status == "running"  # still in the blocked part
        engine.close()  # the process dies
        return inst.id

    iid = asyncio.run(first_life())
    assert RUNS == ["first", "second"]

    async def second_life() -> Any:
        engine = WorkflowEngine("flow", Flow, path, lambda: None)
        # let the instance finish this time: drop the block flag the way a fixed deploy would
        engine.store.conn.execute(
            "UPDATE instances SET params = ? WHERE id = ?", ('{"n": 20}', iid)
        )
        engine.resume_unfinished()
        binding = WorkflowBinding("flow", path, engine)
        inst = await binding.get(iid)
        for _ in range(300):
            status = await inst.status()
            if status["status"] in ("complete", "errored"):
                break
            await asyncio.sleep(0.01)
        engine.close()
        return status

    status = asyncio.run(second_life())
    assert status["status"] == "complete", status
    assert status["output"] == {"result": 41}
    assert RUNS == ["first", "second"]  # completed steps did not run again


class Flaky:
    attempts = 0

    def __init__(self, ctx: Any, env: Any) -> None:
        pass

    async def run(self, event: Any, step: Any) -> Any:
        async def flaky() -> str:
            Flaky.attempts += 1
            if Flaky.attempts < 3:
                raise RuntimeError("not yet")
            return "done"

        return await step.do("flaky", {"retries": {"limit": 5, "delay": 1}}, flaky)


def test_workflow_steps_retry_then_error_is_recorded(tmp_path: Path) -> None:
    async def main() -> None:
        engine = WorkflowEngine("flaky", Flaky, tmp_path / "f.sqlite", lambda: None)
        binding = WorkflowBinding("flaky", tmp_path / "f.sqlite", engine)
        inst = await binding.create()
        await engine.tasks[inst.id]
        assert (await inst.status())["output"] == "done"
        assert Flaky.attempts == 3
        with pytest.raises(ValueError, match="already_exists"):
            await binding.create(id=inst.id)
        with pytest.raises(ValueError, match="not_found"):
            await binding.get("nope")
        engine.close()

    asyncio.run(main())


def test_queue_delivery_ack_retry_and_drop(tmp_path: Path) -> None:
    seen: list[tuple[Any, int]] = []

    async def handler(batch: Any) -> None:
        for m in batch.messages:
            seen.append((m.body, m.attempts))
            if m.body == "retry-me-once" and m.attempts == 1:
                m.retry()
            elif m.body == "always-fails":
                raise RuntimeError("boom")
            else:
                m.ack()

    async def main() -> None:
        producer = QueueBinding(tmp_path / "q.sqlite")
        consumer = QueueConsumer("q", tmp_path / "q.sqlite", handler)
        consumer.start()
        await producer.send({"job": 1})
        await producer.sendBatch([{"body": "retry-me-once"}, {"body": "hi", "contentType": "text"}])
        await producer.send("always-fails")
        for _ in range(400):
            bodies = [b for b, _ in seen]
            if (
                bodies.count("always-fails") >= 4
                and "hi" in bodies
                and bodies.count("retry-me-once") == 2
            ):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        consumer.close()
        producer.close()

    asyncio.run(main())
    assert ({"job": 1}, 1) in seen and ("hi", 1) in seen
    assert [a for b, a in seen if b == "retry-me-once"] == [1, 2]
    assert [a for b, a in seen if b == "always-fails"] == [1, 2, 3, 4]  # then dropped
