"""Durable Objects, Workflows and Queues in real worker processes on the local target."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import run

import alchemy_nb
from alchemy_nb.cloudflare import (
    DurableObjectNamespace,
    KVNamespace,
    Queue,
    Worker,
    Workflow,
)

pytestmark = pytest.mark.xdist_group("local-target")

WORKER = """
import os
from urllib.parse import urlparse

from workers import DurableObject, Response, WorkerEntrypoint, WorkflowEntrypoint

MARKS = os.environ.get("ALCHEMY_TEST_MARKS", "")


class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)

    async def increment(self):
        value = await self.ctx.storage.get("n") or 0
        await self.ctx.storage.put("n", value + 1)
        return value + 1

    async def fetch(self, request):
        return Response(str(await self.ctx.storage.get("n") or 0))


class Signup(WorkflowEntrypoint):
    async def run(self, event, step):
        marks = event.payload["marks"]

        @step.do("first")
        async def first():
            with open(os.path.join(marks, "first"), "a") as fh:
                fh.write("ran\\n")
            return event.payload["n"] * 2

        doubled = await first()

        @step.do("second")
        async def second():
            crash = os.path.join(marks, "crashed")
            if not os.path.exists(crash):
                open(crash, "w").close()
                os._exit(1)  # the process dies in the middle of the workflow
            return doubled + 1

        return {"value": await second()}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        parts = path.strip("/").split("/")
        if parts[0] == "counter":
            stub = self.env.COUNTER.get(self.env.COUNTER.idFromName(parts[1]))
            if request.method == "POST":
                return Response(str(await stub.increment()))
            return await stub.fetch(request)
        if parts[0] == "flow" and request.method == "POST":
            body = await request.json()
            instance = await self.env.FLOW.create(params=body)
            return Response.json({"id": instance.id})
        if parts[0] == "flow":
            instance = await self.env.FLOW.get(parts[1])
            return Response.json(await instance.status())
        if parts[0] == "jobs":
            await self.env.JOBS.send({"key": parts[1], "value": await request.text()})
            return Response("queued", status=202)
        if parts[0] == "kv":
            value = await self.env.KV.get(parts[1])
            return Response(value or "", status=200 if value is not None else 404)
        return Response("no route", status=404)

    async def queue(self, batch):
        for message in batch.messages:
            await self.env.KV.put(message.body["key"], message.body["value"])
            message.ack()
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("stateful")
    (folder / "src").mkdir()
    (folder / "src" / "worker.py").write_text(textwrap.dedent(WORKER))
    marks = folder / "marks"
    marks.mkdir()
    app = alchemy_nb.App("stateful", root=folder)

    @app.program
    def infra(stage):
        counters = DurableObjectNamespace("counters", class_name="Counter")
        flow = Workflow("signup", class_name="Signup")
        jobs = Queue("jobs")
        kv = KVNamespace("kv")
        w = Worker(
            "w",
            entry="src/worker.py",
            bindings={"COUNTER": counters, "FLOW": flow, "JOBS": jobs, "KV": kv},
            queue_consumers=[jobs],
        )
        return {"url": w.url}

    url = run(app.deploy("dev")).outputs["url"]
    yield url, marks
    run(app.destroy("dev"))


def test_durable_object_calls_are_serialized(served) -> None:
    url, _ = served
    with ThreadPoolExecutor(16) as pool:
        results = list(
            pool.map(lambda _: httpx.post(f"{url}/counter/a", timeout=20).text, range(60))
        )
    assert sorted(int(r) for r in results) == list(range(1, 61))
    assert httpx.get(f"{url}/counter/a").text == "60"
    assert httpx.get(f"{url}/counter/b").text == "0"


def test_workflow_resumes_after_the_process_dies(served) -> None:
    url, marks = served
    created = httpx.post(f"{url}/flow", json={"n": 20, "marks": str(marks)}, timeout=20)
    iid = created.json()["id"]
    deadline = time.monotonic() + 30
    status: dict = {}
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{url}/flow/{iid}", timeout=5).json()
        except httpx.HTTPError:
            status = {}  # the process is coming back
        if status.get("status") in ("complete", "errored"):
            break
        time.sleep(0.1)
    assert status.get("status") == "complete", status
    assert status["output"] == {"value": 41}
    assert (marks / "crashed").exists()  # it really died once
    assert (marks / "first").read_text() == "ran\n"  # the finished step did not run again


def test_queue_messages_reach_the_consumer(served) -> None:
    url, _ = served
    assert httpx.post(f"{url}/jobs/greeting", content="hello via queue").status_code == 202
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = httpx.get(f"{url}/kv/greeting")
        if got.status_code == 200:
            assert got.text == "hello via queue"
            return
        time.sleep(0.05)
    raise AssertionError("the consumer never stored the message")
