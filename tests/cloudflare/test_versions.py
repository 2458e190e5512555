"""Worker versions and deployments on the cloudflare target, against the contract fake:
a deploy uploads a version and deploys it at 100%, a rollback deploys the earlier version
again without uploading it, a gradual deployment splits traffic between two versions, and
bad splits fail with the worker's name (and Cloudflare's code when Cloudflare refused)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, run

import alchemy_nb
from alchemy_nb.cloudflare import Worker
from alchemy_nb.cloudflare.api import (
    CloudflareError,
    active_deployment,
    canary,
    client_for,
    detect_drift,
    list_deployments,
    list_versions,
    split,
)
from alchemy_nb.cloudflare.api._versions import deploy_split
from alchemy_nb.errors import ConfigError
from alchemy_nb.promotion import Ledger
from alchemy_nb.testing.cloudflare import FakeCloudflare

SCRIPT = "canary-api-prod"


def canary_app(root: Path, greeting: str) -> alchemy_nb.App:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "worker.py").write_text(
        textwrap.dedent(
            """
            from workers import Response, WorkerEntrypoint


            class Default(WorkerEntrypoint):
                async def fetch(self, request):
                    return Response(self.env.GREETING)
            """
        )
    )
    app = alchemy_nb.App("canary", root=root, target="cloudflare")

    @app.program
    def infra(stage: Any) -> dict[str, Any]:
        api = Worker("api", entry="src/worker.py", vars={"GREETING": greeting})
        return {"url": api.url}

    return app


def worker_outputs(app: alchemy_nb.App) -> dict[str, Any]:
    state = run(app.state.load("canary", "prod"))
    outputs: dict[str, Any] = state.records["api"]["outputs"]
    return outputs


def uploads(fake: FakeCloudflare) -> list[tuple[str, str]]:
    """Every upload the fake accepted: (method, path)."""
    return [
        (method, path)
        for method, path, status in fake.log
        if status == 200
        and (
            (method == "PUT" and path.endswith(f"/workers/scripts/{SCRIPT}"))
            or (method == "POST" and path.endswith(f"/workers/scripts/{SCRIPT}/versions"))
        )
    ]


def test_a_deploy_uploads_a_version_and_deploys_it(fake: FakeCloudflare, tmp_path: Path) -> None:
    run(canary_app(tmp_path, "hi").deploy("prod"))
    script = fake.scripts[SCRIPT]
    (first,) = script.versions
    assert script.active is not None and script.active.split == {first.id: 100}
    assert [m for m, _ in uploads(fake)] == ["PUT"]  # the first deploy creates the script

    app = canary_app(tmp_path, "hello")
    run(app.deploy("prod"))
    first_v, second = script.versions
    assert first_v is first and second.bindings["GREETING"]["text"] == "hello"
    assert [m for m, _ in uploads(fake)] == ["PUT", "POST"]  # then a version upload
    assert len(script.deployments) == 2 and script.active.split == {second.id: 100}
    assert script.bindings["GREETING"]["text"] == "hello"
    outputs = worker_outputs(app)
    assert outputs["version"] == second.id
    assert outputs["versions"] == [first.id, second.id]


def test_a_rollback_deploys_the_earlier_version_without_uploading(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    run(canary_app(tmp_path, "hi").deploy("prod"))
    run(canary_app(tmp_path, "hello").deploy("prod"))
    script = fake.scripts[SCRIPT]
    first, second = script.versions
    before = len(uploads(fake))

    app = canary_app(tmp_path, "hi")  # the first version's code and configuration again
    run(app.deploy("prod"))
    assert len(uploads(fake)) == before and len(script.versions) == 2
    assert len(script.deployments) == 3 and script.active is not None
    assert script.active.split == {first.id: 100}
    assert script.bindings["GREETING"]["text"] == "hi"
    outputs = worker_outputs(app)
    assert outputs["version"] == first.id and outputs["versions"] == [second.id, first.id]


def test_a_gradual_deployment_splits_traffic_between_two_versions(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    run(canary_app(tmp_path, "hi").deploy("prod"))
    app = canary_app(tmp_path, "hello")
    run(app.deploy("prod"))
    newest, older = run(list_versions(SCRIPT))
    assert (newest.number, older.number) == (2, 1)
    assert run(detect_drift(app, "prod")) == []

    deployment = run(split(SCRIPT, {older.id: 90, newest.id: 10}, message="canary 10%"))
    assert deployment.split == {older.id: 90, newest.id: 10}
    script = fake.scripts[SCRIPT]
    assert script.active is not None and script.active.split == {older.id: 90, newest.id: 10}
    assert script.active.annotations == {"workers/message": "canary 10%"}
    active = run(active_deployment(SCRIPT))
    assert active is not None and active.split == deployment.split
    assert active.serving == older.id and active.message == "canary 10%"
    assert len(run(list_deployments(SCRIPT))) == 3
    (drift,) = run(detect_drift(app, "prod"))  # most traffic is on the older version
    assert drift.id == "api" and drift.fields == (("version", newest.id, older.id),)

    finished = run(split(SCRIPT, {newest.id: 100}))
    assert script.active.split == {newest.id: 100} and finished.serving == newest.id


def test_bad_splits_name_the_worker_and_the_cause(fake: FakeCloudflare, tmp_path: Path) -> None:
    run(canary_app(tmp_path, "hi").deploy("prod"))
    run(canary_app(tmp_path, "hello").deploy("prod"))
    newest, older = run(list_versions(SCRIPT))
    deployments = len(fake.scripts[SCRIPT].deployments)

    with pytest.raises(ConfigError, match=f"percentages for '{SCRIPT}' add up to 90, not 100"):
        run(split(SCRIPT, {older.id: 80, newest.id: 10}))
    with pytest.raises(ConfigError, match="one or two versions, not 3"):
        run(split(SCRIPT, {older.id: 50, newest.id: 25, "x": 25}))
    with pytest.raises(ConfigError, match=r"must be from 0\.01 to 100"):
        run(split(SCRIPT, {older.id: 100.5, newest.id: -0.5}))

    with pytest.raises(CloudflareError) as info:  # a version Cloudflare does not know
        run(split(SCRIPT, {"0f0f0f0f-0000-4000-8000-000000000000": 100}))
    assert info.value.code == 10007 and info.value.status == 404
    assert f"deployment of Worker '{SCRIPT}' was refused" in str(info.value)
    assert "Cloudflare error 10007" in str(info.value)

    async def unchecked() -> None:  # the same bad sum, sent as is: Cloudflare refuses it
        async with client_for() as client:
            base = await client.account_path()
            await deploy_split(
                client, f"{base}/workers/scripts/{SCRIPT}", SCRIPT, {older.id: 80, newest.id: 10}
            )

    with pytest.raises(CloudflareError) as info:
        run(unchecked())
    assert info.value.code == 10021 and f"'{SCRIPT}'" in str(info.value)
    assert "add up to 90" in str(info.value)
    assert len(fake.scripts[SCRIPT].deployments) == deployments  # nothing was deployed


def test_a_version_upload_needs_the_script(fake: FakeCloudflare) -> None:
    async def go() -> None:
        async with client_for() as client:
            base = await client.account_path()
            files = [
                ("metadata", ("blob", b'{"main_module": "worker.py"}', "application/json")),
                ("worker.py", ("worker.py", b"x = 1\n", "text/x-python")),
            ]
            await client.call("POST", f"{base}/workers/scripts/nope/versions", files=files)

    with pytest.raises(CloudflareError) as info:
        run(go())
    assert info.value.code == 10007 and info.value.status == 404


CLI_PROGRAM = """
import os

import alchemy_nb
from alchemy_nb.cloudflare import Worker

app = alchemy_nb.App("canary", target="cloudflare")


@app.program
def infra(stage):
    api = Worker("api", entry="src/worker.py", vars={"GREETING": os.environ["GREETING"]})
    return {"url": api.url}
"""


def test_cli_canary_splits_finishes_and_records(fake: FakeCloudflare, tmp_path: Path) -> None:
    canary_app(tmp_path, "unused")  # writes src/worker.py
    (tmp_path / "alchemy_run.py").write_text(textwrap.dedent(CLI_PROGRAM))
    for greeting in ("hi", "hello"):
        done = cli(tmp_path, "deploy", "--stage", "prod", env={"GREETING": greeting})
        assert done.returncode == 0, done.stderr
    script = fake.scripts[SCRIPT]
    old, new = (v.id for v in script.versions)

    ten = cli(tmp_path, "canary", "--stage", "prod", "--percent", "10", "--json")
    assert ten.returncode == 0, ten.stderr
    shown = json.loads(ten.stdout)
    assert shown["script"] == SCRIPT and shown["deployment"]["split"] == {old: 90, new: 10}
    assert script.active is not None and script.active.split == {old: 90, new: 10}

    done = cli(tmp_path, "canary", "--stage", "prod", "--worker", "api", "--percent", "100")
    assert done.returncode == 0, done.stderr
    assert f"{new}\t100%" in done.stdout and script.active.split == {new: 100}
    app = alchemy_nb.load_program(tmp_path / "alchemy_run.py")
    events = [e for e in run(Ledger(app.state, "canary").events()) if e["kind"] == "canary"]
    assert [e["data"]["split"] for e in events] == [{old: 90, new: 10}, {new: 100}]

    bad = cli(tmp_path, "canary", "--stage", "prod", "--percent", "150")
    assert bad.returncode == 2 and "from 0 to 100" in bad.stderr
    unknown = cli(tmp_path, "canary", "--stage", "prod", "--worker", "web", "--percent", "5")
    assert unknown.returncode == 2 and "no deployed Worker 'web'" in unknown.stderr
    assert "api" in unknown.stderr
    assert script.active.split == {new: 100}


def test_canary_needs_a_cloudflare_stage_and_two_versions(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    local = alchemy_nb.App("canary", root=tmp_path / "local")
    with pytest.raises(ConfigError, match="deploys to the local target"):
        run(canary(local, "prod", 10))
    app = canary_app(tmp_path, "hi")
    with pytest.raises(ConfigError, match="has 0 deployed Workers"):
        run(canary(app, "prod", 10))
    run(app.deploy("prod"))
    with pytest.raises(ConfigError, match=f"Worker '{SCRIPT}' has one version"):
        run(canary(app, "prod", 10))
    with pytest.raises(ConfigError, match="from 0 to 100"):
        run(canary(app, "prod", -1))
    assert len(fake.scripts[SCRIPT].deployments) == 1


def test_a_secret_change_is_a_new_version_and_stays_out_of_outputs(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    def with_secret(value: str) -> alchemy_nb.App:
        app = canary_app(tmp_path, "hi")
        app.password = "pw"

        @app.program  # in place of canary_app's program
        def infra(stage: Any) -> dict[str, Any]:
            api = Worker("api", entry="src/worker.py", bindings={"TOKEN": alchemy_nb.Secret(value)})
            return {"url": api.url}

        return app

    run(with_secret("first-s3cret").deploy("prod"))
    run(with_secret("second-s3cret").deploy("prod"))
    script = fake.scripts[SCRIPT]
    first, second = script.versions
    assert second.bindings["TOKEN"] == {
        "type": "secret_text",
        "name": "TOKEN",
        "text": "second-s3cret",
    }
    app = with_secret("first-s3cret")
    run(app.deploy("prod"))  # the first secret again: the first version, not an upload
    assert len(script.versions) == 2 and script.active is not None
    assert script.active.split == {first.id: 100}
    outputs = json.dumps(worker_outputs(app))
    assert "s3cret" not in outputs and first.id in outputs
