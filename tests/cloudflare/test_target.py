"""The cloudflare target against the contract fake: every kind, updates, migrations,
adoption, drift, and every kind of bad input.

Each test gets its own fake (a real uvicorn server on 127.0.0.1 validating every request
and response against the vendored OpenAPI description) and asserts it saw no contract
violation.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import run

import alchemy_nb
from alchemy_nb.cloudflare import (
    D1Database,
    DurableObjectNamespace,
    KVNamespace,
    R2Bucket,
    Worker,
    Workflow,
)
from alchemy_nb.cloudflare.api import detect_drift
from alchemy_nb.errors import DeployError
from alchemy_nb.testing.cloudflare import FakeCloudflare

WORKER = """
from workers import DurableObject, Response, WorkerEntrypoint, WorkflowEntrypoint


class Counter(DurableObject):
    async def fetch(self, request):
        return Response("1")


class Signup(WorkflowEntrypoint):
    async def run(self, event, step):
        return "done"


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(self.env.GREETING)
"""


def failure(info: pytest.ExceptionInfo[DeployError]) -> str:
    """Every failed resource's own message."""
    return " | ".join(str(e) for e in info.value.failures.values())


def folder(tmp_path: Path, worker: str = WORKER) -> Path:
    root = tmp_path / "app"
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "worker.py").write_text(textwrap.dedent(worker))
    (root / "migrations").mkdir(exist_ok=True)
    (root / "migrations" / "0001_users.sql").write_text(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n"
        "INSERT INTO users (name) VALUES ('ada');\n"
    )
    return root


def full_app(root: Path, **options: Any) -> alchemy_nb.App:
    app = alchemy_nb.App("shop", root=root, target="cloudflare")
    app.password = "pw"
    opts = {"kv_title": None, "classes": ["Counter"], "greeting": "hi", **options}

    @app.program
    def infra(stage: Any) -> dict[str, Any]:
        db = D1Database("db", migrations_dir="migrations")
        cache = KVNamespace("cache", title=opts["kv_title"])
        files = R2Bucket("files")
        flow = Workflow("signup", class_name="Signup")
        bindings: dict[str, Any] = {
            "DB": db,
            "CACHE": cache,
            "FILES": files,
            "FLOW": flow,
            "TOKEN": alchemy_nb.Secret("s3cret-value"),
        }
        for cls in opts["classes"]:
            bindings[cls.upper()] = DurableObjectNamespace(cls.lower(), class_name=cls)
        api = Worker(
            "api", entry="src/worker.py", bindings=bindings, vars={"GREETING": opts["greeting"]}
        )
        return {"url": api.url}

    return app


def test_every_kind_deploys_binds_and_destroys(fake: FakeCloudflare, tmp_path: Path) -> None:
    app = full_app(folder(tmp_path))
    result = run(app.deploy("prod"))
    assert result.outputs["url"] == "https://shop-api-prod.fake-account.workers.dev"
    script = fake.scripts["shop-api-prod"]
    assert script.metadata["main_module"] == "worker.py"
    assert script.modules["worker.py"][0] == "text/x-python"
    assert "python_workers" in script.metadata["compatibility_flags"]
    bindings = script.bindings
    (db,) = fake.d1.values()
    (ns,) = fake.kv.values()
    assert bindings["DB"] == {"type": "d1", "name": "DB", "database_id": db["uuid"]}
    assert bindings["CACHE"]["namespace_id"] == ns["id"] and ns["title"] == "shop-cache-prod"
    assert bindings["FILES"]["bucket_name"] == "shop-files-prod" in fake.r2
    assert bindings["TOKEN"] == {"type": "secret_text", "name": "TOKEN", "text": "s3cret-value"}
    assert bindings["GREETING"] == {"type": "plain_text", "name": "GREETING", "text": "hi"}
    assert bindings["COUNTER"]["class_name"] == "Counter"
    assert script.metadata["migrations"] == {"new_tag": "v1", "new_sqlite_classes": ["Counter"]}
    assert [(n["script"], n["class"]) for n in fake.do_namespaces] == [("shop-api-prod", "Counter")]
    assert fake.workflows["shop-signup-prod"]["class_name"] == "Signup"
    assert script.subdomain_enabled
    # migrations ran through /query and are tracked like wrangler's
    from alchemy_nb.testing.cloudflare._fake import d1_execute

    conn = fake._d1_conns[db["uuid"]]
    assert d1_execute(conn, "SELECT name FROM users", None)[0]["results"] == [{"name": "ada"}]
    tracked = d1_execute(conn, "SELECT name FROM d1_migrations", None)[0]["results"]
    assert tracked == [{"name": "0001_users.sql"}]
    assert "s3cret-value" not in str(result.outputs) and "s3cret" not in str(
        run(app.read("prod")).outputs
    )

    before = fake.requests
    run(app.deploy("prod"))  # nothing changed: no call at all
    assert fake.requests == before

    run(app.destroy("prod"))
    assert fake.scripts == {} and fake.kv == {} and fake.d1 == {} and fake.r2 == {}
    assert fake.workflows == {} and fake.do_namespaces == []


def test_updates_rename_kv_add_versions_and_migrate_classes(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    root = folder(tmp_path)
    run(full_app(root).deploy("prod"))
    (ns_id,) = fake.kv
    first = fake.scripts["shop-api-prod"].etag

    app = full_app(root, kv_title="shop-cache-renamed", classes=["Counter", "Room"])
    (root / "src" / "worker.py").write_text(
        textwrap.dedent(WORKER) + "\nclass Room(Counter):\n    pass\n"
    )
    run(app.deploy("prod"))
    assert fake.kv[ns_id]["title"] == "shop-cache-renamed"  # renamed in place, same id
    script = fake.scripts["shop-api-prod"]
    assert script.metadata["migrations"] == {
        "new_tag": "v2",
        "old_tag": "v1",
        "new_sqlite_classes": ["Room"],
    }
    assert script.migration_tag == "v2" and script.versions[0].etag == first
    outputs = run(app.read("prod")).outputs
    assert outputs["url"].endswith(".workers.dev")

    run(full_app(root, kv_title="shop-cache-renamed", classes=["Room"]).deploy("prod"))
    script = fake.scripts["shop-api-prod"]
    assert script.metadata["migrations"]["deleted_classes"] == ["Counter"]
    assert [n["class"] for n in fake.do_namespaces] == ["Room"]
    run(app.destroy("prod"))


def kv_app(root: Path, count: int = 1) -> alchemy_nb.App:
    app = alchemy_nb.App("kvs", root=root, target="cloudflare")

    @app.program
    def infra(stage: Any) -> None:
        for i in range(count):
            KVNamespace(f"ns{i}")

    return app


def test_a_name_conflict_fails_clearly_or_is_adopted(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(120):  # the existing one sits on the second page of the listing
        fake.kv[f"{i:032x}"] = {
            "id": f"{i:032x}",
            "title": f"other-{i}",
            "supports_url_encoding": True,
        }
    fake.kv["f" * 32] = {"id": "f" * 32, "title": "kvs-ns0-prod", "supports_url_encoding": True}
    app = kv_app(tmp_path)
    with pytest.raises(DeployError) as info:
        run(app.deploy("prod"))
    message = failure(info)
    assert "kvs/prod/ns0" in message and "10014" in message and "--adopt" in message
    monkeypatch.setenv("ALCHEMY_NB_ADOPT", "1")
    run(app.deploy("prod"))
    state = run(app.state.load("kvs", "prod"))
    assert state.records["ns0"]["outputs"]["namespace_id"] == "f" * 32
    assert len(fake.kv) == 121  # adopted, not duplicated


@pytest.mark.parametrize(
    ("kind", "what"),
    [(D1Database, "a D1 database named"), (R2Bucket, "an R2 bucket named")],
)
def test_a_taken_database_or_bucket_name_fails_clearly_or_is_adopted(
    fake: FakeCloudflare,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: type[Any],
    what: str,
) -> None:
    def app_in(root: Path) -> alchemy_nb.App:
        app = alchemy_nb.App("taken", root=root, target="cloudflare")

        @app.program
        def infra(stage: Any) -> None:
            kind("store")

        return app

    run(app_in(tmp_path / "first").deploy("prod"))  # another state made it first
    before = (dict(fake.d1), dict(fake.r2))
    second = app_in(tmp_path / "second")
    with pytest.raises(DeployError) as info:
        run(second.deploy("prod"))
    message = failure(info)
    assert f"{what} 'taken-store-prod' already exists" in message and "--adopt" in message
    monkeypatch.setenv("ALCHEMY_NB_ADOPT", "1")
    run(second.deploy("prod"))
    assert (fake.d1, fake.r2) == before  # adopted, not duplicated
    outputs = run(second.state.load("taken", "prod")).records["store"]["outputs"]
    assert outputs["name"] == "taken-store-prod"
    if kind is D1Database:
        assert outputs["database_id"] == next(iter(fake.d1))


def test_a_bad_token_is_one_clear_message_without_retries(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "wrong-token")
    monkeypatch.setenv("CLOUDFLARE_MAX_CONCURRENCY", "4")
    with pytest.raises(DeployError) as info:
        run(kv_app(tmp_path, count=30).deploy("prod"))
    message = failure(info)
    assert "token was rejected" in message and "10000" in message
    assert "wrong-token" not in message
    assert fake.requests <= 4  # the first answers stop the rest: no retry storm
    assert fake.kv == {}
    assert len(info.value.failures) == 30  # each named, with Cloudflare's code
    assert all(
        f"kvs/prod/{name.rsplit('/', 1)[-1]}" in str(e) and "10000" in str(e)
        for name, e in info.value.failures.items()
    )


def test_an_unknown_account_is_named(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "0" * 32)
    with pytest.raises(DeployError) as info:
        run(kv_app(tmp_path).deploy("prod"))
    assert "account '" + "0" * 32 + "' does not exist" in failure(info)
    assert "7003" in failure(info) and "CLOUDFLARE_ACCOUNT_ID" in failure(info)


def test_the_account_is_discovered_when_the_token_sees_one(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID")
    run(kv_app(tmp_path, count=3).deploy("prod"))
    assert len(fake.kv) == 3
    assert [p for m, p, _ in fake.log].count("/client/v4/accounts") == 1


def test_several_accounts_need_an_account_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeCloudflare(accounts=2) as fake:
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", fake.token)
        monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        with pytest.raises(DeployError) as info:
            run(kv_app(tmp_path).deploy("prod"))
        assert "sees 2 accounts" in failure(info) and "CLOUDFLARE_ACCOUNT_ID" in failure(info)
        assert fake.violations == []


def worker_app(root: Path) -> alchemy_nb.App:
    app = alchemy_nb.App("w", root=root, target="cloudflare")

    @app.program
    def infra(stage: Any) -> None:
        Worker("api", entry="src/worker.py", vars={"GREETING": "hi"})

    return app


def test_a_worker_that_is_not_python_names_the_resource_and_code(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    root = folder(tmp_path, worker="def broken(:\n    pass\n")
    with pytest.raises(DeployError) as info:
        run(worker_app(root).deploy("prod"))
    message = failure(info)
    assert "w/prod/api" in message and "10021" in message and "SyntaxError" in message
    assert fake.scripts == {}


def test_an_oversized_bundle_is_refused(fake: FakeCloudflare, tmp_path: Path) -> None:
    root = folder(tmp_path)
    (root / "src" / "model.bin").write_bytes(b"\0" * (11 * 1024 * 1024))
    with pytest.raises(DeployError) as info:
        run(worker_app(root).deploy("prod"))
    assert "w/prod/api" in failure(info) and "MiB limit" in failure(info)
    assert fake.scripts == {} and not any(m == "PUT" for m, _, _ in fake.log)
    (root / "src" / "model.bin").write_bytes(b"\0" * 4000)
    fake.max_script_bytes = 2000  # Cloudflare's own check, for a smaller plan limit
    with pytest.raises(DeployError) as info:
        run(worker_app(root).deploy("prod"))
    assert "10027" in failure(info) and "w/prod/api" in failure(info)
    assert fake.scripts == {}


def test_a_failed_first_deploy_leaves_nothing_half_created(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    root = folder(tmp_path)
    (root / "migrations" / "0002_bad.sql").write_text("CREATE TABLE oops (;\n")
    app = alchemy_nb.App("half", root=root, target="cloudflare")

    @app.program
    def infra(stage: Any) -> None:
        D1Database("db", migrations_dir="migrations")

    with pytest.raises(DeployError) as info:
        run(app.deploy("prod"))
    assert "0002_bad.sql" in failure(info) and "7500" in failure(info)
    assert fake.d1 == {}


def test_name_conflicts_on_a_worker_script(fake: FakeCloudflare, tmp_path: Path) -> None:
    root = folder(tmp_path)
    run(worker_app(root).deploy("prod"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "src").mkdir()
    (other / "src" / "worker.py").write_text("x = 1\n")
    with pytest.raises(DeployError) as info:
        run(worker_app(other).deploy("prod"))  # the same script name from another state
    assert "a Worker script named 'w-api-prod' already exists" in failure(info)
    assert fake.scripts["w-api-prod"].modules["worker.py"][1] != b"x = 1\n"


def test_rate_limits_and_server_errors_converge_under_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeCloudflare(rate_limit_ratio=0.2, error_ratio=0.1, retry_after=0, seed=3) as fake:
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", fake.token)
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", fake.account_id)
        monkeypatch.setenv("CLOUDFLARE_MAX_CONCURRENCY", "3")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        fake.latency = 0.01
        app = kv_app(tmp_path, count=25)
        run(app.deploy("prod"))
        assert len(fake.kv) == 25
        assert fake.faults > 0 and fake.max_in_flight <= 3
        run(app.destroy("prod"))
        assert fake.kv == {} and fake.violations == []


def test_plan_refresh_shows_drift(fake: FakeCloudflare, tmp_path: Path) -> None:
    app = full_app(folder(tmp_path))
    run(app.deploy("prod"))
    assert run(detect_drift(app, "prod")) == []
    (ns,) = fake.kv.values()
    ns["title"] = "renamed-by-hand"
    fake.r2.clear()
    fake.scripts["shop-api-prod"].subdomain_enabled = False
    drift = {d.id: d for d in run(detect_drift(app, "prod"))}
    assert drift["files"].gone
    assert drift["cache"].fields == (("title", "shop-cache-prod", "renamed-by-hand"),)
    assert ("workers_dev", True, False) in drift["api"].fields
    assert set(drift) == {"files", "cache", "api"}


def test_renaming_a_worker_or_workflow_leaves_no_orphan(
    fake: FakeCloudflare, tmp_path: Path
) -> None:
    root = folder(tmp_path)
    names = {"worker": None, "flow": None}
    app = alchemy_nb.App("ren", root=root, target="cloudflare")

    @app.program
    def infra(stage: Any) -> None:
        flow = Workflow("flow", class_name="Signup", workflow_name=names["flow"])
        Worker(
            "api",
            entry="src/worker.py",
            name=names["worker"],
            bindings={"FLOW": flow},
            vars={"GREETING": "hi"},
        )

    run(app.deploy("prod"))
    assert set(fake.scripts) == {"ren-api-prod"} and set(fake.workflows) == {"ren-flow-prod"}
    names.update(worker="ren-api-v2", flow="ren-flow-v2")
    run(app.deploy("prod"))
    assert set(fake.scripts) == {"ren-api-v2"} and set(fake.workflows) == {"ren-flow-v2"}
    assert fake.workflows["ren-flow-v2"]["script_name"] == "ren-api-v2"
    run(app.destroy("prod"))
    assert fake.scripts == {} and fake.workflows == {}


def test_creates_whose_answer_was_lost_converge_without_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeCloudflare(lost_response_ratio=0.3, seed=7) as fake:
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", fake.token)
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", fake.account_id)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        monkeypatch.delenv("ALCHEMY_NB_ADOPT", raising=False)
        app = alchemy_nb.App("lost", root=tmp_path, target="cloudflare")

        @app.program
        def infra(stage: Any) -> None:
            for i in range(10):
                KVNamespace(f"ns{i}")
                R2Bucket(f"b{i}")
                D1Database(f"db{i}")

        run(app.deploy("prod"))
        assert fake.faults > 0
        assert len(fake.kv) == len(fake.r2) == len(fake.d1) == 10
        assert sorted(ns["title"] for ns in fake.kv.values()) == sorted(
            f"lost-ns{i}-prod" for i in range(10)
        )
        fake.lost_response_ratio = 0.0
        run(app.destroy("prod"))
        assert fake.kv == {} and fake.r2 == {} and fake.d1 == {} and fake.violations == []


def test_a_refused_upload_never_echoes_a_secret(fake: FakeCloudflare) -> None:
    import json

    import httpx

    metadata = {
        "main_module": "worker.py",
        "compatibility_flags": ["python_workers"],
        "bindings": [{"type": "secret_text", "name": 5, "text": "hunter2-secret"}],
    }
    response = httpx.put(
        f"{fake.base_url}/accounts/{fake.account_id}/workers/scripts/sec-api",
        headers={"Authorization": f"Bearer {fake.token}"},
        files=[
            ("metadata", ("blob", json.dumps(metadata), "application/json")),
            ("worker.py", ("worker.py", b"x = 1\n", "text/x-python")),
        ],
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 10021
    assert "hunter2" not in response.text
    assert len(fake.violations) == 1 and "bindings" in fake.violations[0]
    fake.violations.clear()  # this test provoked it on purpose


def test_a_create_left_unfinished_is_adopted_by_the_next_run(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_MAX_ATTEMPTS", "2")
    fake.lost_response_ratio = 1.0  # every answer is lost: the namespace exists, state
    app = kv_app(tmp_path)  # only knows a create was started
    with pytest.raises(DeployError):
        run(app.deploy("prod"))
    assert run(app.state.load("kvs", "prod")).records["ns0"]["status"] == "creating"
    assert len(fake.kv) == 1
    fake.lost_response_ratio = 0.0
    run(app.deploy("prod"))  # no --adopt needed: it finishes its own create
    (ns_id,) = fake.kv
    assert run(app.state.load("kvs", "prod")).records["ns0"]["outputs"]["namespace_id"] == ns_id
