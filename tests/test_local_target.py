"""The local target for real: worker processes on 127.0.0.1, D1, KV, R2, redeploys, crashes.

One app is deployed per module and shared by the tests that only read it; tests that
change it restore it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import DevSession, run

import alchemy_nb
from alchemy_nb.cloudflare import D1Database, KVNamespace, R2Bucket, Worker
from alchemy_nb.errors import DeployError

pytestmark = pytest.mark.xdist_group("local-target")

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def make_app(folder: Path) -> alchemy_nb.App:
    app = alchemy_nb.App("lt", root=folder)

    @app.program
    def infra(stage):
        db = D1Database("db", migrations_dir="migrations")
        cache = KVNamespace("cache")
        files = R2Bucket("files")
        api = Worker(
            "api",
            entry="src/worker.py",
            bindings={
                "DB": db,
                "CACHE": cache,
                "FILES": files,
                "TOKEN": alchemy_nb.Secret("s3cret-token"),
            },
            vars={"GREETING": f"hello from {stage.name}", "RELEASE": "r1"},
        )
        return {"url": api.url}

    return app


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[alchemy_nb.App, str]]:
    folder = tmp_path_factory.mktemp("lt")
    shutil.copytree(DEMO / "src", folder / "src")
    shutil.copytree(DEMO / "migrations", folder / "migrations")
    app = make_app(folder)
    app.password = "pw"
    result = run(app.deploy("dev"))
    yield app, result.outputs["url"]
    run(app.destroy("dev"))


def get(url: str, **kw: object) -> httpx.Response:
    return httpx.get(url, timeout=10, **kw)  # type: ignore[arg-type]


def serving(app: alchemy_nb.App, worker: str = "api") -> dict:
    path = app.root / ".alchemy" / app.name / "dev" / "local" / "workers" / f"{worker}.serving"
    return json.loads(path.read_text())


def test_every_binding_over_http(deployed) -> None:
    _, url = deployed
    assert url.startswith("http://127.0.0.1:")
    health = get(f"{url}/api/health")
    assert health.status_code == 200
    assert health.headers["content-type"] == "application/json"
    body = health.json()
    assert body["status"] == "ok" and body["release"] == "r1" and body["timestamp"]
    root = get(f"{url}/")
    assert root.text == "hello from dev\n"
    assert root.headers["content-type"] == "text/plain;charset=UTF-8"
    assert httpx.put(f"{url}/kv/k1", content="v1").status_code == 201
    assert get(f"{url}/kv/k1").text == "v1"
    assert get(f"{url}/kv/missing").status_code == 404
    user = get(f"{url}/d1/users/42")
    assert user.json() == {"id": 42, "name": "Arthur Dent", "email": "arthur@example.com"}
    stored = httpx.put(f"{url}/r2/a/b.txt", content="in r2")
    assert stored.status_code == 201 and stored.json()["size"] == 5
    fetched = get(f"{url}/r2/a/b.txt")
    assert fetched.text == "in r2" and fetched.headers["etag"]


def test_listens_on_loopback_only(deployed) -> None:
    app, url = deployed
    port = int(url.rsplit(":", 1)[1])
    info = serving(app)
    assert info["port"] == port
    with open(f"/proc/{info['pid']}/net/tcp") as fh:  # the worker's sockets, as the kernel has them
        listening = [line.split() for line in fh.readlines()[1:] if line.split()[3] == "0A"]
    ours = [f for f in listening if int(f[1].split(":")[1], 16) == port]
    assert ours and all(f[1].split(":")[0] == "0100007F" for f in ours)


def test_secrets_stay_out_of_state_and_logs(deployed) -> None:
    app, _ = deployed
    state = (app.root / ".alchemy" / "lt" / "dev" / "state.json").read_text()
    assert "s3cret-token" not in state
    log_dir = app.root / ".alchemy" / "lt" / "dev" / "local" / "logs"
    logs = "".join(p.read_text() for p in log_dir.glob("*.log"))
    assert "s3cret-token" not in logs
    configs = list((app.root / ".alchemy" / "lt" / "dev" / "local" / "workers").glob("*.json"))
    assert configs and all(os.stat(p).st_mode & 0o077 == 0 for p in configs)


def test_a_killed_worker_process_comes_back(deployed) -> None:
    app, url = deployed
    before = serving(app)
    os.kill(before["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if get(f"{url}/api/health").status_code == 200 and serving(app)["pid"] != before["pid"]:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        raise AssertionError("the worker did not come back")
    assert serving(app)["port"] == before["port"]


def test_an_unchanged_deploy_makes_no_calls_and_keeps_the_process(deployed) -> None:
    app, _ = deployed
    before = serving(app)["pid"]
    result = run(app.deploy("dev"))
    assert result.counts["noop"] == 4
    assert serving(app)["pid"] == before


def test_redeploy_with_changed_code_keeps_data_and_drops_no_request(deployed) -> None:
    app, url = deployed
    assert httpx.put(f"{url}/kv/kept", content="still here").status_code == 201
    worker = app.root / "src" / "worker.py"
    original = worker.read_text()
    failures: list[str] = []
    ok = [0]
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.get(f"{url}/api/health")
                    if r.status_code != 200:
                        failures.append(str(r.status_code))
                    else:
                        ok[0] += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        worker.write_text(original.replace('"status": "ok"', '"status": "ok-v2"'))
        result = run(app.deploy("dev"))
        assert result.counts["update"] == 1
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        worker.write_text(original)
    assert failures == []
    assert ok[0] > 20
    assert get(f"{url}/api/health").json()["status"] == "ok-v2"
    assert get(f"{url}/kv/kept").text == "still here"
    assert result.outputs["url"] == url  # the same port
    run(app.deploy("dev"))
    assert get(f"{url}/api/health").json()["status"] == "ok"


def test_a_broken_new_version_fails_and_the_old_keeps_serving(deployed) -> None:
    app, url = deployed
    worker = app.root / "src" / "worker.py"
    original = worker.read_text()
    worker.write_text(original + "\nimport module_that_does_not_exist\n")
    try:
        with pytest.raises(DeployError) as info:
            run(app.deploy("dev"))
        assert "module_that_does_not_exist" in str(info.value)
        assert get(f"{url}/api/health").status_code == 200
    finally:
        worker.write_text(original)
    assert run(app.deploy("dev")).ok


def test_a_handler_that_raises_is_a_500_and_the_process_stays(deployed) -> None:
    app, url = deployed
    pid = serving(app)["pid"]
    assert get(f"{url}/d1/users/not-a-number").status_code == 500
    assert get(f"{url}/api/health").status_code == 200
    assert serving(app)["pid"] == pid
    log = (app.root / ".alchemy/lt/dev/local/logs/api.log").read_text()
    assert "ValueError" in log


def test_the_worker_comes_back_after_its_supervisor_is_gone(deployed) -> None:
    app, url = deployed
    folder = app.root / ".alchemy/lt/dev/local"
    info = json.loads((folder / "supervisor.json").read_text())
    os.kill(info["pid"], signal.SIGTERM)  # as after a reboot: nothing serves
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (folder / "supervisor.json").exists():
        time.sleep(0.05)
    plan = run(app.plan("dev"))
    (change,) = [c for c in plan.changes if c.id == "api"]
    assert change.action == "update" and "not running" in change.reason
    run(app.deploy("dev"))
    assert get(f"{url}/api/health").status_code == 200  # the same port again


def test_migrations_apply_in_order_once_and_a_failure_rolls_back(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0002_more.sql").write_text("INSERT INTO t VALUES (2);\n")
    (tmp_path / "migrations" / "0001_init.sql").write_text(
        "CREATE TABLE t (x INTEGER);\nINSERT INTO t VALUES (1);\n"
    )
    app = alchemy_nb.App("mig", root=tmp_path)

    @app.program
    def infra(stage):
        D1Database("db", migrations_dir="migrations")

    run(app.deploy("dev"))
    import sqlite3
    from contextlib import closing

    db = tmp_path / ".alchemy/mig/dev/local/d1/db.sqlite"

    def rows() -> list[tuple]:
        with closing(sqlite3.connect(db)) as conn:
            return conn.execute("SELECT x FROM t ORDER BY rowid").fetchall()

    def applied() -> list[str]:
        with closing(sqlite3.connect(db)) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM d1_migrations ORDER BY id")]

    assert rows() == [(1,), (2,)]
    assert applied() == ["0001_init.sql", "0002_more.sql"]
    assert run(app.deploy("dev")).counts["noop"] == 1  # applied once
    (tmp_path / "migrations" / "0003_bad.sql").write_text(
        "INSERT INTO t VALUES (3);\nINSERT INTO nowhere VALUES (4);\n"
    )
    with pytest.raises(DeployError) as info:
        run(app.deploy("dev"))
    assert "0003_bad.sql" in str(info.value) and "no such table: nowhere" in str(info.value)
    assert rows() == [(1,), (2,)]  # the failing migration left nothing behind
    assert applied() == ["0001_init.sql", "0002_more.sql"]
    (tmp_path / "migrations" / "0003_bad.sql").write_text("INSERT INTO t VALUES (3);\n")
    run(app.deploy("dev"))
    assert rows() == [(1,), (2,), (3,)]
    run(app.destroy("dev"))
    assert not db.exists()


def test_destroy_closes_the_port_and_deletes_the_data(tmp_path: Path) -> None:
    shutil.copytree(DEMO / "src", tmp_path / "src")
    shutil.copytree(DEMO / "migrations", tmp_path / "migrations")
    app = make_app(tmp_path)
    app.password = "pw"
    url = run(app.deploy("dev")).outputs["url"]
    httpx.put(f"{url}/r2/x", content="data")
    port = int(url.rsplit(":", 1)[1])
    run(app.destroy("dev"))
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass
    local = tmp_path / ".alchemy/lt/dev/local"
    left = (
        [
            p
            for p in local.rglob("*")
            if p.is_file() and p.suffix in (".sqlite", "") and "logs" not in p.parts
        ]
        if local.exists()
        else []
    )
    assert left == []


def test_a_taken_port_means_another_port_recorded(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "worker.py").write_text(
        textwrap.dedent("""
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("hi")
    """)
    )
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    app = alchemy_nb.App("port", root=tmp_path)

    @app.program
    def infra(stage):
        w = Worker("w", entry="src/worker.py", port=taken)
        return {"url": w.url}

    events: list[tuple[str, dict]] = []
    try:
        result = run(app.deploy("dev", reporter=lambda e, **d: events.append((e, d))))
        url = result.outputs["url"]
        assert not url.endswith(f":{taken}")
        assert get(url).text == "hi"
        assert any("taken" in d.get("note", "") for e, d in events if e == "resource.note")
        state = json.loads((tmp_path / ".alchemy/port/dev/state.json").read_text())
        assert state["resources"]["w"]["outputs"]["url"] == url
    finally:
        blocker.close()
        run(app.destroy("dev"))


def test_dev_serves_redeploys_on_change_and_stops_on_ctrl_c(tmp_path: Path) -> None:

    (tmp_path / "src").mkdir()
    worker = tmp_path / "src" / "worker.py"
    worker.write_text(
        textwrap.dedent("""
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                print("handling", request.url)
                return Response("v1")
    """)
    )
    (tmp_path / "alchemy_run.py").write_text(
        textwrap.dedent("""
        import alchemy_nb
        from alchemy_nb.cloudflare import Worker

        app = alchemy_nb.App("devapp")

        @app.program
        def infra(stage):
            return {"url": Worker("w", entry="src/worker.py").url}
    """)
    )
    with DevSession(tmp_path) as dev:
        url = dev.wait_for_url()
        assert get(url).text == "v1"
        dev.wait_for(lambda: any("[w] handling" in line for line in dev.lines), "the worker's logs")
        worker.write_text(worker.read_text().replace('"v1"', '"v2"'))
        dev.wait_for(lambda: get(url).text == "v2", "the redeploy")
        pid = serving_pid(tmp_path)
        assert dev.stop() == 0, "".join(dev.lines)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()  # Ctrl-C stopped the worker too
    with pytest.raises(httpx.ConnectError):
        get(url)


def serving_pid(folder: Path) -> int:
    path = folder / ".alchemy/devapp/dev/local/workers/w.serving"
    return int(json.loads(path.read_text())["pid"])


def test_logs_command_shows_a_workers_output(deployed) -> None:
    import subprocess
    import sys

    app, url = deployed
    assert get(f"{url}/d1/users/not-a-number").status_code == 500  # leaves a traceback
    (app.root / "alchemy_run.py").write_text(
        textwrap.dedent("""
        import alchemy_nb
        app = alchemy_nb.App("lt")
        @app.program
        def infra(stage):
            pass
    """)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "alchemy_nb", "logs", "api", "-n", "50"],
        cwd=app.root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ValueError" in proc.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "alchemy_nb", "logs", "nope"],
        cwd=app.root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 2
    assert "workers with logs: api" in missing.stderr


def test_a_saved_plan_of_a_worker_app_deploys_as_planned(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "worker.py").write_text(
        textwrap.dedent("""
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(self.env.ALCHEMY_RELEASE)
    """)
    )
    (tmp_path / "alchemy_run.py").write_text(
        textwrap.dedent("""
        import alchemy_nb
        from alchemy_nb.cloudflare import Worker

        app = alchemy_nb.App("planned")

        @app.program
        def infra(stage):
            return {"url": Worker("w", entry="src/worker.py").url}
    """)
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "alchemy_nb", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        assert cli("plan", "--out", "plan.json").returncode == 0
        deployed = cli("deploy", "--plan", "plan.json", "--json")
        assert deployed.returncode == 0, deployed.stderr
        data = json.loads(deployed.stdout)
        assert get(data["outputs"]["url"]).text == data["release"][:12]
    finally:
        cli("destroy")
