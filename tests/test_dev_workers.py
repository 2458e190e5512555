"""Python Workers projects under ``alchemy-nb dev --port N``, checked over HTTP as a user
would: the example projects in ``examples/workers/``, a worker's own dependencies, and
the bad inputs (a dependency that does not install, an import nobody provides).

Every project is copied into ``tmp_path`` and served by a real ``alchemy-nb dev``
(through :class:`alchemy_nb.testing.DevServer`, the helper users get). Header values
are compared byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from conftest import cli

from alchemy_nb.testing import DevServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "workers"

pytestmark = pytest.mark.xdist_group("dev-workers")


def copy_example(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns(".alchemy"))
    return target


def head(response: httpx.Response) -> list[tuple[str, str]]:
    """The response's headers without the ones that change per request."""
    return [(k, v) for k, v in response.headers.items() if k not in ("date", "server")]


# --------------------------------------------------------------------------- examples


def test_fastapi_app_with_vars(tmp_path: Path) -> None:
    with DevServer(copy_example(tmp_path, "fastapi-vars")) as dev:
        root = httpx.get(f"{dev.url}/")
        assert root.content == b'{"message":"Hello, World!"}'  # read from a file beside main
        assert head(root) == [("content-type", "application/json"), ("content-length", "27")]
        env = httpx.get(f"{dev.url}/env")
        assert env.json() == {"message": "Here is an environment variable: Hello from the vars"}
        health = httpx.get(f"{dev.url}/api/health")  # a route of a sibling package
        assert health.content == b'{"ok":true}'
        plain = httpx.get(f"{dev.url}/api/plain")
        assert plain.headers["content-type"] == "text/plain; charset=utf-8"
        created = httpx.post(f"{dev.url}/items/", json={"name": "pen", "price": 2})
        assert created.json() == {"name": "pen", "price": 2.0, "tax": None}
        updated = httpx.put(f"{dev.url}/items/5?q=x", json={"name": "pen", "price": 2})
        assert updated.json() == {"item_id": 5, "name": "pen", "price": 2.0, "tax": None, "q": "x"}
        missing = httpx.get(f"{dev.url}/nope")
        assert (missing.status_code, missing.content) == (404, b'{"detail":"Not Found"}')


def test_django_app_on_d1_with_migrations(tmp_path: Path) -> None:
    project = copy_example(tmp_path, "django-d1")
    with DevServer(project) as dev:
        created = httpx.post(f"{dev.url}/notes", json={"title": "first", "tag": "a"})
        assert (created.status_code, created.content) == (201, b'{"id": 1}')
        assert head(created) == [("content-type", "application/json"), ("content-length", "9")]
        listed = httpx.get(f"{dev.url}/notes")
        assert listed.json() == {"notes": [{"id": 1, "title": "first", "tag": "a"}]}
        one = httpx.get(f"{dev.url}/notes/1")
        assert one.json() == {"id": 1, "title": "first", "body": "", "tag": "a"}
        assert httpx.get(f"{dev.url}/notes/7").status_code == 404
        about = httpx.get(f"{dev.url}/about")
        assert (about.text, about.headers["content-type"]) == ("Notes on Django", "text/plain")
        # the same database, by its database_name, as wrangler addresses it
        seen = cli(
            project, "d1", "execute", "notes-db", "--local", "--json",
            "--command", "INSERT INTO notes (title) VALUES ('second'); SELECT title FROM notes",
        )  # fmt: skip
        assert seen.returncode == 0, seen.stderr
        results = json.loads(seen.stdout)
        assert results[0]["meta"]["last_row_id"] == 2
        assert results[1]["results"] == [{"title": "first"}, {"title": "second"}]
        assert [n["title"] for n in httpx.get(f"{dev.url}/notes").json()["notes"]] == [
            "first",
            "second",
        ]
        applied = cli(project, "d1", "migrations", "apply", "notes-db", "--local", "--json")
        assert json.loads(applied.stdout) == {"ok": True, "database": "notes-db", "applied": []}


def test_d1_commands_prepare_the_database_dev_serves(tmp_path: Path) -> None:
    project = copy_example(tmp_path, "basics")
    applied = cli(project, "d1", "migrations", "apply", "basics-db", "--local", "--json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["applied"] == ["0001_users.sql"]
    seed = project / "seed.sql"
    seed.write_text("-- more users\nINSERT INTO users (id, name, score) VALUES (3, 'Linus', 7);\n")
    done = cli(project, "d1", "execute", "DB", "--local", "--file", str(seed))
    assert done.returncode == 0, done.stderr
    with DevServer(project) as dev:
        got = httpx.get(f"{dev.url}/all")
        assert got.json()["names"] == ["Ada", "Grace", "Linus"]
    unknown = cli(project, "d1", "execute", "nope", "--local", "--command", "SELECT 1")
    assert unknown.returncode == 2
    assert "no D1 database named 'nope'" in unknown.stderr
    assert "use one of: basics-db" in unknown.stderr
    broken = cli(project, "d1", "execute", "basics-db", "--command", "SELEC 1")
    assert broken.returncode == 2
    assert 'near "SELEC": syntax error; nothing was changed' in broken.stderr
    (project / "migrations" / "0002_bad.sql").write_text(
        "INSERT INTO users (id, name, score) VALUES (4, 'Edsger', 9);\n"
        "INSERT INTO nowhere VALUES (1);\n"
    )
    failed = cli(project, "d1", "migrations", "apply", "basics-db", "--local")
    assert failed.returncode == 2
    assert (
        "migration 0002_bad.sql of D1 basics-db failed: no such table: nowhere; "
        "the database stays at its previous migration"
    ) in failed.stderr
    names = cli(project, "d1", "execute", "DB", "--local", "--json", "--command",
                "SELECT name FROM users ORDER BY id")  # fmt: skip
    assert json.loads(names.stdout)[0]["results"] == [
        {"name": "Ada"},
        {"name": "Grace"},
        {"name": "Linus"},
    ]


def test_request_and_response_as_cloudflare_gives_them(tmp_path: Path) -> None:
    with DevServer(copy_example(tmp_path, "basics")) as dev:
        text = httpx.get(f"{dev.url}/text")
        assert head(text) == [
            ("content-type", "text/plain;charset=UTF-8"),
            ("content-length", "5"),
        ]
        as_json = httpx.get(f"{dev.url}/json")
        assert head(as_json) == [("content-type", "application/json"), ("content-length", "26")]
        assert as_json.content == b'{"hello": "world", "n": 1}'
        raw = httpx.get(f"{dev.url}/bytes")
        assert (raw.content, head(raw)) == (b"\x00\x01\x02\xff", [("content-length", "4")])
        buffer = httpx.get(f"{dev.url}/buffer")
        assert (buffer.content, head(buffer)) == (b"hi", [("content-length", "2")])
        row = httpx.get(f"{dev.url}/row")  # a D1 row is a JavaScript object: compact JSON
        assert row.content == b'{"id":1,"name":"Ada","score":9.5}'
        assert row.headers["content-type"] == "application/json"
        rows = httpx.get(f"{dev.url}/all").json()
        assert rows == {
            "names": ["Ada", "Grace"],
            "rows_read": 2,
            "raw": [[1, "Ada"], [2, "Grace"]],
        }
        assert httpx.get(f"{dev.url}/url?a=1").text == f"{dev.url}/url?a=1"
        assert httpx.post(f"{dev.url}/js").text == f"POST {dev.url}/js"


def test_cloudflare_only_bindings_start_and_fail_on_first_use(tmp_path: Path) -> None:
    with DevServer(copy_example(tmp_path, "basics")) as dev:
        assert any("ai: Workers AI (AI) runs only on Cloudflare" in line for line in dev.output)
        for path, binding, service in (
            ("/ai", "AI", "Workers AI"),
            ("/vectors", "VECTORS", "Vectorize"),
        ):
            failed = httpx.get(f"{dev.url}{path}")
            assert failed.status_code == 500
            assert f"{binding} is a {service} binding: it runs only on Cloudflare" in failed.text
            assert "deploy the worker to Cloudflare" in failed.text
            assert "bind a fake in its place" in failed.text
        rewrite = httpx.get(f"{dev.url}/rewrite")
        assert "HTMLRewriter (outbound HTML rewriting): it runs only on Cloudflare" in rewrite.text
        assert httpx.get(f"{dev.url}/text").text == "hello"  # nothing else is affected


def test_cron_worker_fired_locally(tmp_path: Path) -> None:
    with DevServer(copy_example(tmp_path, "cron")) as dev:
        before = httpx.get(f"{dev.url}/")  # fetch(self): declared without a request
        assert before.content == b'{"runs": 0, "last": null}'
        fired = httpx.get(f"{dev.url}/cdn-cgi/handler/scheduled", params={"cron": "*/5 * * * *"})
        assert (fired.status_code, fired.text) == (200, "Ran scheduled event")
        assert fired.headers["content-type"] == "text/plain;charset=UTF-8"
        httpx.get(f"{dev.url}/cdn-cgi/handler/scheduled?cron=0+3+*+*+*&time=1700000000")
        after = httpx.get(f"{dev.url}/").json()
        assert after == {"runs": 2, "last": {"cron": "0 3 * * *", "time": 1700000000000}}


def test_workflow_status_polled_while_its_steps_run(tmp_path: Path) -> None:
    with DevServer(copy_example(tmp_path, "workflow")) as dev:
        started = httpx.post(f"{dev.url}/start", json={"seconds": 1})
        assert started.status_code == 201
        instance = started.json()["id"]
        seen: list[bytes] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = httpx.get(f"{dev.url}/status/{instance}")
            assert status.headers["content-type"] == "application/json"
            if not seen or seen[-1] != status.content:
                seen.append(status.content)
            if b'"complete"' in status.content:
                break
            time.sleep(0.2)
        assert seen[0] in (
            b'{"status":"queued","output":null}',
            b'{"status":"running","output":null}',
        )
        assert seen[-1] == b'{"status":"complete","output":{"total":6}}'


def _newer_python() -> str | None:
    from alchemy_nb.cloudflare.local._deps import installed_pythons

    for python in installed_pythons():
        if tuple(int(p) for p in python.version.split(".")[:2]) >= (3, 12):
            return python.version
    return None


NEWER_PYTHON = _newer_python() if sys.version_info < (3, 12) else None


@pytest.mark.skipif(NEWER_PYTHON is None, reason="needs an installed CPython >= 3.12")
def test_django_orm_over_d1_with_django_cf_on_the_python_it_asks_for(tmp_path: Path) -> None:
    with DevServer(copy_example(tmp_path, "django-orm"), timeout=600) as dev:
        assert any(f"it runs on Python {NEWER_PYTHON}" in line for line in dev.output)
        first = httpx.post(f"{dev.url}/posts", json={"title": "Hello", "published": True})
        assert (first.status_code, first.content) == (201, b'{"id": 1}')
        second = httpx.post(f"{dev.url}/posts", json={"title": "Draft"})
        assert second.json() == {"id": 2}
        listed = httpx.get(f"{dev.url}/posts")
        assert listed.json() == {
            "posts": [
                {"id": 1, "title": "Hello", "published": True},
                {"id": 2, "title": "Draft", "published": False},
            ]
        }
        assert httpx.get(f"{dev.url}/posts/published").json() == {"count": 1}


# --------------------------------------------------------------------------- dependencies


def make_wheel(folder: Path, *, requires_python: str = ">=3.8") -> Path:
    """A tiny pure-Python wheel ``tinydep`` that also ships a ``workers`` and an ``asgi``
    module, as ``workers-runtime-sdk`` does when a dependency pulls it in."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tinydep-1.0-py3-none-any.whl"
    info = "tinydep-1.0.dist-info"
    files = {
        "tinydep/__init__.py": "ANSWER = 42\n",
        "workers/__init__.py": "raise ImportError('the SDK package, not the runtime')\n",
        "asgi.py": "raise ImportError('the SDK package, not the runtime')\n",
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n"
            f"Requires-Python: {requires_python}\n"
        ),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
        wheel.writestr(f"{info}/RECORD", record)
    return path


DEPS_WORKER = """\
import tinydep
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(f"{tinydep.ANSWER} {tinydep.__file__}")
"""


def deps_project(tmp_path: Path, wheel: Path) -> Path:
    project = tmp_path / "deps"
    (project / "src").mkdir(parents=True)
    (project / "wrangler.toml").write_text(
        'name = "deps"\nmain = "src/entry.py"\ncompatibility_flags = ["python_workers"]\n'
    )
    (project / "requirements.txt").write_text(f"tinydep @ {wheel.as_uri()}\n")
    (project / "src" / "entry.py").write_text(DEPS_WORKER)
    return project


def test_dependencies_install_into_a_cached_environment_of_the_worker(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    project = deps_project(tmp_path, make_wheel(tmp_path / "wheels"))
    for run in range(2):
        with DevServer(project, env={"ALCHEMY_NB_WORKER_ENVS": str(envs)}) as dev:
            got = httpx.get(dev.url)
            assert got.headers["content-type"] == "text/plain;charset=UTF-8"  # our runtime's
            answer, where = got.text.split(" ", 1)
            assert answer == "42"
            assert Path(where).is_relative_to(envs)
            installing = [line for line in dev.output if "installing the worker's dep" in line]
            assert len(installing) == (1 if run == 0 else 0)  # the second run reuses it
    assert [p.name for p in envs.iterdir() if p.is_dir()] == [Path(where).parent.parent.name]
    assert (
        "tinydep"
        not in subprocess.run(
            [sys.executable, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
        ).stdout
    )  # never installed into alchemy-nb's own environment


def wait_for_output(dev: DevServer, text: str, timeout: float) -> None:
    """Until a line ``dev`` printed holds ``text`` (failing with all it printed)."""
    deadline = time.monotonic() + timeout
    while not any(text in line for line in dev.output):
        assert time.monotonic() < deadline, "".join(dev.output)
        time.sleep(0.05)


def test_a_dependency_that_does_not_install_is_named_once_and_nothing_starts(
    tmp_path: Path,
) -> None:
    envs = tmp_path / "envs"
    project = deps_project(tmp_path, make_wheel(tmp_path / "wheels", requires_python=">=99"))
    dev = DevServer(project, env={"ALCHEMY_NB_WORKER_ENVS": str(envs)})
    try:
        wait_for_output(dev, "watching", timeout=120)
    finally:
        dev.stop()
    output = "".join(dev.output)
    assert "pip could not install the worker's dependencies" in output
    assert "tinydep" in output and "requires a different Python" in output
    assert output.count("pip could not install") == 1
    assert str(project / "requirements.txt") in output
    assert dev.urls == []
    assert not (project / ".alchemy" / "deps" / "dev" / "local" / "workers").exists() or not list(
        (project / ".alchemy" / "deps" / "dev" / "local" / "workers").glob("*.serving")
    )
    assert [p for p in envs.iterdir() if p.is_dir()] == []  # nothing half-made is kept


def test_a_worker_importing_a_module_nobody_provides(tmp_path: Path) -> None:
    project = tmp_path / "missing"
    (project / "src").mkdir(parents=True)
    (project / "wrangler.toml").write_text('name = "missing"\nmain = "src/entry.py"\n')
    (project / "src" / "entry.py").write_text(
        "from workers import WorkerEntrypoint\nimport nosuch_module_anywhere\n"
    )
    dev = DevServer(project)
    try:
        wait_for_output(dev, "watching", timeout=60)
    finally:
        dev.stop()
    output = "".join(dev.output)
    assert (
        "failed to import: ModuleNotFoundError: No module named 'nosuch_module_anywhere'" in output
    )
    assert f"{project / 'src' / 'entry.py'}, line 2" in output
    assert "add 'nosuch_module_anywhere' to the worker's dependencies" in output
    assert dev.urls == []


# --------------------------------------------------------------------------- dev itself


def test_sigterm_stops_dev_and_every_process_it_started(tmp_path: Path) -> None:
    project = copy_example(tmp_path, "cron")
    dev = DevServer(project)
    url = dev.wait_ready()
    serving = json.loads(
        (
            project
            / ".alchemy"
            / "cron-worker"
            / "dev"
            / "local"
            / "workers"
            / "cron-worker.serving"
        ).read_text()
    )
    started = [serving["pid"], serving["supervisor"]]
    assert httpx.get(url).status_code == 200
    assert dev.stop() == 0
    for pid in started:
        assert not _alive(pid), f"process {pid} outlived alchemy-nb dev"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_dev_serves_on_the_port_asked_and_refuses_other_hosts(tmp_path: Path) -> None:
    from alchemy_nb.testing import free_port

    project = copy_example(tmp_path, "cron")
    port = free_port()
    with DevServer(project, port=port) as dev:
        assert dev.url == f"http://127.0.0.1:{port}"
    refused = cli(project, "dev", "--host", "0.0.0.0")
    assert refused.returncode == 2
    assert "--host 0.0.0.0: the local target serves on 127.0.0.1 only" in refused.stderr


def test_dev_serves_on_the_port_of_the_wrangler_dev_table(tmp_path: Path) -> None:
    from alchemy_nb.testing import free_port

    project = copy_example(tmp_path, "cron")
    port = free_port()
    config = project / "wrangler.toml"
    config.write_text(config.read_text() + f'\n[dev]\nport = {port}\nip = "localhost"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "alchemy_nb", "dev"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"Ready on http://127.0.0.1:{port}\n"
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert proc.stdout is not None
        proc.stdout.close()


TWO_WORKERS = """\
import alchemy_nb
from alchemy_nb.cloudflare import Worker

app = alchemy_nb.App("two")


@app.program
def infra(stage):
    api = Worker("api", entry="api/entry.py")
    admin = Worker("admin", entry="admin/entry.py")
    return {"api": api.url, "admin": admin.url}
"""


def test_dev_port_goes_to_the_first_worker_and_ports_hold_across_redeploys(
    tmp_path: Path,
) -> None:
    from alchemy_nb.testing import free_port

    project = tmp_path / "two"
    for name in ("api", "admin"):
        (project / name).mkdir(parents=True)
        (project / name / "entry.py").write_text(
            "from workers import Response, WorkerEntrypoint\n\n"
            "class Default(WorkerEntrypoint):\n"
            f"    async def fetch(self, request):\n        return Response({name!r})\n"
        )
    (project / "alchemy_run.py").write_text(TWO_WORKERS)
    port = free_port()
    with DevServer(project, port=port) as dev:
        deadline = time.monotonic() + 60
        while len(dev.urls) < 2:
            assert time.monotonic() < deadline, "".join(dev.output)
            time.sleep(0.05)
        served = {httpx.get(url).text: url for url in dev.urls}
        assert sorted(served) == ["admin", "api"]
        assert f"http://127.0.0.1:{port}" in dev.urls
        (project / "admin" / "entry.py").write_text(
            (project / "admin" / "entry.py").read_text().replace("'admin'", "'admin v2'")
        )
        while httpx.get(served["admin"]).text != "admin v2":  # redeployed on its port
            assert time.monotonic() < deadline, "".join(dev.output)
            time.sleep(0.1)
        assert httpx.get(served["api"]).text == "api"
        assert len(dev.urls) == 2  # no worker moved: nothing new announced


# --------------------------------------------------------------------------- the fixtures users get


@pytest.fixture
def cron_copy(tmp_path: Path) -> Path:
    return copy_example(tmp_path, "cron")


def test_the_alchemy_nb_dev_fixture_yields_a_base_url(
    alchemy_nb_dev: object, cron_copy: Path
) -> None:
    url = alchemy_nb_dev(cron_copy)  # type: ignore[operator]
    assert url.startswith("http://127.0.0.1:")
    assert httpx.get(url).json() == {"runs": 0, "last": None}


def test_dev_fixture_makes_a_named_fixture(tmp_path: Path, pytester: pytest.Pytester) -> None:
    project = copy_example(tmp_path, "cron")
    pytester.makeconftest(
        f"from alchemy_nb.testing import dev_fixture\nworker = dev_fixture({str(project)!r})\n"
    )
    pytester.makepyfile(
        "import httpx\n"
        "def test_it(worker):\n"
        "    assert httpx.get(worker).json() == {'runs': 0, 'last': None}\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
