"""Queues on the cloudflare target, against the contract fake: a queue, a producer bound
to it and a consumer registered for it; dropping the consumer, destroying, a name taken
(with and without ``--adopt``), drift, and the fake's own Queues contract."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import run

import alchemy_nb
from alchemy_nb.cloudflare import Queue, Worker
from alchemy_nb.cloudflare.api import detect_drift
from alchemy_nb.errors import DeployError
from alchemy_nb.testing.cloudflare import FakeCloudflare

PRODUCER = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        await self.env.JOBS.send({"job": 1})
        return Response("queued")
"""

CONSUMER = """
from workers import WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def queue(self, batch):
        for message in batch.messages:
            message.ack()
"""


def folder(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    for name, code in (("producer", PRODUCER), ("consumer", CONSUMER)):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "worker.py").write_text(textwrap.dedent(code))
    return root


def queue_app(root: Path, *, consume: bool = True) -> alchemy_nb.App:
    app = alchemy_nb.App("mq", root=root, target="cloudflare")

    @app.program
    def infra(stage: Any) -> None:
        jobs = Queue("jobs")
        Worker("producer", entry="producer/worker.py", bindings={"JOBS": jobs})
        Worker(
            "consumer",
            entry="consumer/worker.py",
            queue_consumers=[jobs] if consume else [],
        )

    return app


def the_queue(fake: FakeCloudflare) -> dict[str, Any]:
    (queue,) = fake.queues.values()
    return queue


def test_a_queue_its_producer_and_consumer_deploy_update_and_destroy(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    root = folder(tmp_path)
    app = queue_app(root)
    run(app.deploy("prod"))
    queue = the_queue(fake)
    assert queue["queue_name"] == "mq-jobs-prod"
    producer = fake.scripts["mq-producer-prod"]
    assert producer.bindings["JOBS"] == {
        "type": "queue",
        "name": "JOBS",
        "queue_name": "mq-jobs-prod",
    }
    (consumer,) = fake.consumers[queue["queue_id"]]
    assert consumer["script_name"] == "mq-consumer-prod"
    state = run(app.state.load("mq", "prod"))
    assert state.records["jobs"]["outputs"]["queue_id"] == queue["queue_id"]
    recorded = state.records["consumer"]["outputs"]["consumers"]
    assert recorded == {queue["queue_id"]: consumer["consumer_id"]}
    assert run(detect_drift(app, "prod")) == []

    before = fake.requests
    run(app.deploy("prod"))  # nothing changed: no call at all
    assert fake.requests == before

    run(queue_app(root, consume=False).deploy("prod"))  # the consumer is dropped
    assert fake.consumers[queue["queue_id"]] == []
    assert "mq-consumer-prod" in fake.scripts and the_queue(fake) is queue
    state = run(app.state.load("mq", "prod"))
    assert state.records["consumer"]["outputs"]["consumers"] == {}

    run(app.deploy("prod"))  # and registered again
    (again,) = fake.consumers[queue["queue_id"]]
    assert again["script_name"] == "mq-consumer-prod"

    run(app.destroy("prod"))
    assert fake.queues == {} and fake.consumers == {} and fake.scripts == {}
    deletes = [path for method, path, _ in fake.log if method == "DELETE"]
    consumer_delete = next(i for i, p in enumerate(deletes) if "/consumers/" in p)
    script_delete = next(i for i, p in enumerate(deletes) if p.endswith("/mq-consumer-prod"))
    assert consumer_delete < script_delete  # the consumer goes before its worker


def test_a_queue_name_taken_fails_clearly_or_is_adopted(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.queues["a" * 32] = {
        "queue_id": "a" * 32,
        "queue_name": "mq-jobs-prod",
        "created_on": "2026-01-01T00:00:00Z",
        "modified_on": "2026-01-01T00:00:00Z",
    }
    fake.consumers["a" * 32] = []
    app = queue_app(folder(tmp_path))
    with pytest.raises(DeployError) as info:
        run(app.deploy("prod"))
    message = " | ".join(str(e) for e in info.value.failures.values())
    assert "mq/prod/jobs" in message and "cloudflare::Queue" in message
    assert "11009" in message and "--adopt" in message
    assert list(fake.queues) == ["a" * 32]  # nothing created, no consumer registered
    assert fake.consumers["a" * 32] == []

    monkeypatch.setenv("ALCHEMY_NB_ADOPT", "1")
    run(app.deploy("prod"))
    assert list(fake.queues) == ["a" * 32]  # adopted, not duplicated
    (consumer,) = fake.consumers["a" * 32]
    assert consumer["script_name"] == "mq-consumer-prod"
    state = run(app.state.load("mq", "prod"))
    assert state.records["jobs"]["outputs"]["queue_id"] == "a" * 32


def test_plan_refresh_shows_a_queue_or_a_consumer_gone(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    app = queue_app(folder(tmp_path))
    run(app.deploy("prod"))
    (queue_id,) = fake.queues
    (consumer,) = fake.consumers[queue_id]
    fake.consumers[queue_id].clear()  # the consumer removed by hand
    drift = {d.id: d for d in run(detect_drift(app, "prod"))}
    assert set(drift) == {"consumer"}
    expected = ({queue_id: consumer["consumer_id"]}, {})
    assert drift["consumer"].fields == (("consumers", *expected),)
    fake.queues.clear()
    fake.consumers.clear()
    drift = {d.id: d for d in run(detect_drift(app, "prod"))}
    assert set(drift) == {"jobs", "consumer"} and drift["jobs"].gone


def test_the_fake_answers_queue_errors_with_cloudflare_codes(fake: FakeCloudflare) -> None:
    headers = {"Authorization": f"Bearer {fake.token}"}
    base = f"{fake.base_url}/accounts/{fake.account_id}/queues"
    with httpx.Client(headers=headers) as http:
        created = http.post(base, json={"queue_name": "q1"}).json()["result"]
        assert set(created) >= {"queue_id", "queue_name", "created_on", "modified_on"}
        taken = http.post(base, json={"queue_name": "q1"})
        assert taken.json()["errors"][0]["code"] == 11009
        missing = http.get(f"{base}/{'0' * 32}")
        assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == 10104
        no_worker = http.post(
            f"{base}/{created['queue_id']}/consumers",
            json={"script_name": "nobody", "type": "worker"},
        )
        assert no_worker.status_code == 404
        listed = http.get(base).json()
        assert [q["queue_name"] for q in listed["result"]] == ["q1"]
        assert listed["result"][0]["consumers"] == []
        assert http.delete(f"{base}/{created['queue_id']}").status_code == 200
        assert http.get(f"{base}/{created['queue_id']}").status_code == 404


def test_a_consumer_of_something_else_than_a_queue_is_refused(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    from alchemy_nb.cloudflare import KVNamespace

    root = folder(tmp_path)
    app = alchemy_nb.App("mq", root=root, target="cloudflare")

    @app.program
    def infra(stage: Any) -> None:
        Worker("consumer", entry="consumer/worker.py", queue_consumers=[KVNamespace("cache")])

    with pytest.raises(DeployError) as info:
        run(app.deploy("prod"))
    message = " | ".join(str(e) for e in info.value.failures.values())
    assert "queue_consumers" in message and "cloudflare::KVNamespace" in message
    assert "mq/prod/consumer" in message
    assert fake.scripts == {}  # nothing uploaded
