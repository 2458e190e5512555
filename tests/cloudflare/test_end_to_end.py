"""One app, end to end, on both targets: deploy, call, update, promote, roll back, destroy.

On the local target "call" is a real HTTP request to the worker on 127.0.0.1. The fake
cannot run workers, so on the cloudflare target "call" reads what the account holds: the
uploaded script and version, its bindings and its workers.dev setting. Nothing is faked
to pass: each target is checked by what it really has.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import run

import alchemy_nb
from alchemy_nb.promotion import Pipeline
from alchemy_nb.testing.cloudflare import FakeCloudflare

DEMO = Path(__file__).resolve().parent.parent.parent / "examples" / "demo"

PROGRAM = """
import alchemy_nb
from alchemy_nb.cloudflare import D1Database, KVNamespace, R2Bucket, Worker

app = alchemy_nb.App("e2e")


@app.program
def infra(stage):
    db = D1Database("db", migrations_dir="migrations")
    cache = KVNamespace("cache")
    files = R2Bucket("files")
    api = Worker(
        "api",
        entry="src/worker.py",
        bindings={"DB": db, "CACHE": cache, "FILES": files},
        vars={"GREETING": f"hello from {stage.name}", "RELEASE": "r1"},
    )
    return {"url": api.url}
"""

CONFIG = """
[stages.staging]
target = "{target}"

[stages.prod]
target = "{target}"
promote_from = "staging"

[stages.prod.vars]
GREETING = "hello from prod"
"""

VERSION_ROUTE = """
        if path == "/version":
            return Response("v2\\n")
"""


class Target:
    """How the test calls a deployed worker on one target."""

    def __init__(self, name: str, fake: FakeCloudflare | None) -> None:
        self.name = name
        self.fake = fake

    def greeting(self, url: str, stage: str) -> str:
        if self.fake is None:
            return httpx.get(url + "/", timeout=30).text.strip()
        script = self.fake.scripts[f"e2e-api-{stage}"]
        assert script.subdomain_enabled
        assert url == f"https://e2e-api-{stage}.fake-account.workers.dev"
        assert {b["type"] for b in script.bindings.values()} == {
            "plain_text",
            "d1",
            "kv_namespace",
            "r2_bucket",
        }
        return str(script.bindings["GREETING"]["text"])

    def version(self, url: str, stage: str) -> str:
        if self.fake is None:
            response = httpx.get(url + "/version", timeout=30)
            return response.text.strip() if response.status_code == 200 else "v1"
        code = self.fake.scripts[f"e2e-api-{stage}"].modules["worker.py"][1]
        return "v2" if b'"/version"' in code else "v1"

    def gone(self, url: str, stage: str) -> bool:
        if self.fake is None:
            try:
                httpx.get(url + "/", timeout=5)
            except httpx.TransportError:
                return True
            return False
        f = self.fake
        return not (f.scripts or f.kv or f.d1 or f.r2)


@pytest.fixture(params=["local", "cloudflare"])
def target(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Target]:
    monkeypatch.setenv("ALCHEMY_ACTOR", "alice")
    monkeypatch.setenv("ALCHEMY_BRANCH", "main")
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
    if request.param == "local":
        yield Target("local", None)
        return
    with FakeCloudflare() as fake:
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", fake.token)
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", fake.account_id)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        yield Target("cloudflare", fake)
        assert fake.violations == []


def test_deploy_call_update_promote_rollback_destroy(target: Target, tmp_path: Path) -> None:
    root = tmp_path / "app"
    shutil.copytree(DEMO / "src", root / "src")
    shutil.copytree(DEMO / "migrations", root / "migrations")
    (root / "alchemy_run.py").write_text(textwrap.dedent(PROGRAM))
    (root / "alchemy_nb.toml").write_text(CONFIG.format(target=target.name))
    pipeline = Pipeline(alchemy_nb.load_program(root / "alchemy_run.py"))
    try:
        first = run(pipeline.deploy("staging"))
        assert first.healthy
        url = first.result.outputs["url"]
        assert target.greeting(url, "staging") == "hello from staging"
        assert target.version(url, "staging") == "v1"

        worker = root / "src" / "worker.py"
        code = worker.read_text()
        marker = '        if path == "/":\n'
        worker.write_text(code.replace(marker, VERSION_ROUTE.lstrip("\n") + marker, 1))
        second = run(pipeline.deploy("staging"))
        assert second.release != first.release
        url = second.result.outputs["url"]
        assert target.version(url, "staging") == "v2"
        if target.fake is not None:  # each deploy is a new version, deployed at 100%
            script = target.fake.scripts["e2e-api-staging"]
            assert len(script.versions) == 2 and len(script.deployments) == 2
            assert script.active is not None
            assert script.active.split == {script.versions[1].id: 100}

        promoted = run(pipeline.promote("prod"))
        assert promoted.release == second.release and promoted.healthy
        prod_url = promoted.result.outputs["url"]
        assert target.greeting(prod_url, "prod") == "hello from prod"
        assert target.version(prod_url, "prod") == "v2"

        back = run(pipeline.rollback("staging"))
        assert back.release == first.release
        assert target.version(back.result.outputs["url"], "staging") == "v1"
        if target.fake is not None:  # the first version deployed again, nothing uploaded
            script = target.fake.scripts["e2e-api-staging"]
            assert len(script.versions) == 2 and len(script.deployments) == 3
            assert script.active is not None
            assert script.active.split == {script.versions[0].id: 100}
    finally:
        run(pipeline.app.destroy("prod"))
        run(pipeline.app.destroy("staging"))
    assert target.gone(url, "staging") and target.gone(prod_url, "prod")
