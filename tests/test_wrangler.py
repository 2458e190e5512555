"""Wrangler projects: parsed, run on the local target, imported and exported."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import DevSession

import alchemy_nb.wrangler
from alchemy_nb.errors import ConfigError
from alchemy_nb.wrangler import (
    declarations,
    import_wrangler,
    load_wrangler,
    loads_jsonc,
    render_program,
    strip_jsonc,
)

# ------------------------------------------------------------- example projects
# Each in the shape of Cloudflare's Python Workers examples: files, then an HTTP check.

HELLO = {
    "wrangler.toml": """
        name = "hello-python"
        main = "src/entry.py"
        compatibility_date = "2025-11-02"
        compatibility_flags = ["python_workers"]

        [vars]
        GREETING = "Hello world!"

        [env.staging.vars]
        GREETING = "Hello staging!"
    """,
    "src/entry.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(self.env.GREETING)
    """,
}

KV = {
    "wrangler.jsonc": """
        // The KV binding example
        {
          "name": "kv-python",
          "main": "src/entry.py",
          "compatibility_date": "2025-11-02",
          "compatibility_flags": ["python_workers"],
          /* an id as `wrangler kv namespace create` prints it */
          "kv_namespaces": [{"binding": "FOO", "id": "0f2ac74b498b48028cb68387c421e279"},],
        }
    """,
    "src/entry.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                await self.env.FOO.put("bar", "baz")
                bar = await self.env.FOO.get("bar")
                return Response(bar)  # returns "baz"
    """,
}

D1 = {
    "wrangler.toml": """
        name = "d1-python"
        main = "src/entry.py"
        compatibility_date = "2025-11-02"
        compatibility_flags = ["python_workers"]

        [[d1_databases]]
        binding = "DB"
        database_name = "quotes"
        database_id = "6b8a5c3e-0000-4000-8000-000000000000"
        migrations_dir = "migrations"
    """,
    "migrations/0001_init.sql": """
        CREATE TABLE qtable (id INTEGER PRIMARY KEY, quote TEXT, author TEXT);
    """,
    "migrations/0002_seed.sql": """
        INSERT INTO qtable (quote, author) VALUES ('Stay hungry, stay foolish.', 'Steve Jobs');
    """,
    "src/entry.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                query = "SELECT quote, author FROM qtable ORDER BY RANDOM() LIMIT 1;"
                results = await self.env.DB.prepare(query).all()
                data = results.results[0]
                return Response.json({"quote": data.quote, "author": data["author"]})
    """,
}

DURABLE_OBJECT = {
    "wrangler.toml": """
        name = "do-python"
        main = "src/entry.py"
        compatibility_date = "2025-11-02"
        compatibility_flags = ["python_workers"]

        [[durable_objects.bindings]]
        name = "LISTS"
        class_name = "List"

        [[migrations]]
        tag = "v1"
        new_sqlite_classes = ["List"]
    """,
    "src/entry.py": """
        from urllib.parse import urlparse

        from workers import DurableObject, Response, WorkerEntrypoint

        class List(DurableObject):
            async def add_message(self, message):
                messages = await self.ctx.storage.get("messages") or []
                messages.append(message)
                await self.ctx.storage.put("messages", messages)
                return len(messages)

            async def get_messages(self):
                return await self.ctx.storage.get("messages") or []

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                name = urlparse(request.url).path.strip("/") or "default"
                stub = self.env.LISTS.get(self.env.LISTS.idFromName(name))
                if request.method == "POST":
                    count = await stub.add_message(await request.text())
                    return Response(str(count))
                return Response.json(await stub.get_messages())
    """,
}

WORKFLOW = {
    "wrangler.toml": """
        name = "workflows-python"
        main = "src/entry.py"
        compatibility_date = "2025-11-02"
        compatibility_flags = ["python_workers"]

        [[workflows]]
        name = "workflows-demo"
        binding = "MY_WORKFLOW"
        class_name = "PythonWorkflowDemo"
    """,
    "src/entry.py": """
        from urllib.parse import urlparse

        from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

        class PythonWorkflowDemo(WorkflowEntrypoint):
            async def run(self, event, step):
                @step.do("step_1")
                async def step_1():
                    return 1

                @step.do("step_2")
                async def step_2():
                    return 2

                @step.do("step_3", depends=[step_1, step_2], concurrent=True)
                async def step_3(result1, result2):
                    return result1 + result2

                return await step_3()

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                path = urlparse(request.url).path.strip("/")
                if request.method == "POST":
                    instance = await self.env.MY_WORKFLOW.create()
                    return Response.json({"id": instance.id})
                instance = await self.env.MY_WORKFLOW.get(path)
                return Response.json(await instance.status())
    """,
}

R2 = {
    "wrangler.jsonc": """
        {
          "name": "r2-python",
          "main": "src/entry.py",
          "compatibility_date": "2025-11-02",
          "compatibility_flags": ["python_workers"],
          "r2_buckets": [{"binding": "BUCKET", "bucket_name": "photos"}],
        }
    """,
    "src/entry.py": """
        from urllib.parse import urlparse

        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                key = urlparse(request.url).path.strip("/")
                if request.method == "PUT":
                    await self.env.BUCKET.put(key, await request.text(), {
                        "httpMetadata": {"contentType": "text/plain"},
                        "customMetadata": {"owner": "ada"},
                    })
                    return Response(f"Put {key} successfully!")
                obj = await self.env.BUCKET.get(key)
                if obj is None:
                    return Response("Object Not Found", status=404)
                return Response(await obj.text(), headers={
                    "etag": obj.httpEtag,
                    "content-type": obj.httpMetadata.contentType,
                    "x-owner": obj.customMetadata.owner,
                })
    """,
}


def write_project(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return folder


def cli(folder: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alchemy_nb", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def deploy(folder: Path, stage: str = "dev") -> str:
    done = cli(folder, "deploy", "--stage", stage, "--json")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["outputs"]["url"])


def check_hello(url: str) -> None:
    response = httpx.get(url)
    assert response.text == "Hello world!"
    assert response.headers["content-type"] == "text/plain;charset=UTF-8"


def check_kv(url: str) -> None:
    assert httpx.get(url).text == "baz"


def check_d1(url: str) -> None:
    assert httpx.get(url).json() == {
        "quote": "Stay hungry, stay foolish.",
        "author": "Steve Jobs",
    }


def check_durable_object(url: str) -> None:
    assert httpx.post(f"{url}/groceries", content="milk").text == "1"
    assert httpx.post(f"{url}/groceries", content="eggs").text == "2"
    assert httpx.get(f"{url}/groceries").json() == ["milk", "eggs"]
    assert httpx.get(f"{url}/other").json() == []


def check_workflow(url: str) -> None:
    instance = httpx.post(url).json()["id"]
    deadline = time.monotonic() + 30
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/{instance}").json()
        if status["status"] in ("complete", "errored"):
            break
        time.sleep(0.1)
    assert status["status"] == "complete" and status["output"] == 3, status


def check_r2(url: str) -> None:
    assert httpx.put(f"{url}/cat.txt", content="meow").text == "Put cat.txt successfully!"
    got = httpx.get(f"{url}/cat.txt")
    assert got.text == "meow"
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["x-owner"] == "ada"
    assert got.headers["etag"].startswith('"')
    assert httpx.get(f"{url}/dog.txt").status_code == 404


EXAMPLES: dict[str, tuple[dict[str, str], Callable[[str], None]]] = {
    "hello": (HELLO, check_hello),
    "kv": (KV, check_kv),
    "d1": (D1, check_d1),
    "durable-object": (DURABLE_OBJECT, check_durable_object),
    "workflow": (WORKFLOW, check_workflow),
    "r2": (R2, check_r2),
}


# ------------------------------------------------------------ parsing (no servers)


def test_public_names_are_sorted() -> None:
    assert alchemy_nb.wrangler.__all__ == sorted(alchemy_nb.wrangler.__all__)


def test_jsonc_comments_and_trailing_commas_outside_strings() -> None:
    text = '{"url": "https://x/*y*/", // c\n "a": [1, 2,], /* b */ "s": "\\" // no",}'
    assert loads_jsonc(text) == {"url": "https://x/*y*/", "a": [1, 2], "s": '" // no'}
    assert len(strip_jsonc(text)) == len(text)  # positions are kept for error messages


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("wrangler.jsonc", '{\n  "name": "x",\n  "main" "src/entry.py"\n}', ":3:10"),
        ("wrangler.toml", 'name = "x"\nmain = = "src/entry.py"\n', ":2:8"),
    ],
)
def test_a_malformed_file_names_file_line_and_column(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_wrangler(tmp_path / name)
    assert info.value.where == f"{tmp_path / name}{where}"
    done = cli(tmp_path, "deploy")
    assert done.returncode == 2 and f"{name}{where}" in done.stderr
    assert not (tmp_path / ".alchemy").exists()  # nothing half-deployed


def test_environments_follow_wranglers_inheritance(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "wrangler.toml": """
                name = "app"
                main = "src/entry.py"
                compatibility_date = "2025-11-02"
                [vars]
                A = "top"
                [[kv_namespaces]]
                binding = "KV"
                id = "1"
                [triggers]
                crons = ["0 * * * *"]
                [env.staging]
                [env.prod]
                name = "app-production"
                compatibility_date = "2025-12-01"
                [env.prod.vars]
                B = 2
            """,
            "src/entry.py": "",
        },
    )
    config = load_wrangler(tmp_path / "wrangler.toml")
    staging, prod = config.for_stage("staging"), config.for_stage("prod")
    assert (staging.name, staging.main, staging.compatibility_date) == (
        "app-staging",
        "src/entry.py",
        "2025-11-02",
    )
    assert staging.vars == {} and staging.kv_namespaces == []  # not inherited
    assert staging.triggers.crons == ["0 * * * *"]  # inherited
    assert (prod.name, prod.compatibility_date, prod.vars) == (
        "app-production",
        "2025-12-01",
        {"B": 2},
    )
    assert config.for_stage("dev").kv_namespaces[0].binding == "KV"  # no section: top level
    worker = declarations(config, "prod")[-1]
    assert worker.kwargs["vars"] == {"B": "2"}


def test_unsupported_keys_are_listed_once_and_the_rest_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = dict(HELLO)
    files["wrangler.toml"] += '\n        [ai]\n        binding = "AI"\n        routes = ["a/*"]\n'
    files["wrangler.toml"] = files["wrangler.toml"].replace(
        "[vars]", "workers_dev = true\n        [vars]"
    )
    write_project(tmp_path, files)
    with caplog.at_level(logging.WARNING, logger="alchemy_nb.wrangler"):
        config = load_wrangler(tmp_path / "wrangler.toml")
    assert any(
        "ai: Workers AI (AI) runs only on Cloudflare" in w and "env.AI" in w
        for w in config.warnings
    )
    assert any(w.startswith("workers_dev") for w in config.warnings)
    assert len(caplog.records) == len(config.warnings)
    plan = cli(tmp_path, "plan")
    assert plan.returncode == 0, plan.stderr
    assert plan.stderr.count("Workers AI (AI)") == 1


def test_a_main_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    write_project(tmp_path, {"wrangler.toml": HELLO["wrangler.toml"]})
    done = cli(tmp_path, "deploy")
    assert done.returncode == 2
    assert "main 'src/entry.py' in wrangler.toml does not exist" in done.stderr
    assert not (tmp_path / ".alchemy" / "hello-python" / "dev").exists()


def test_import_writes_a_program_and_refuses_to_overwrite(tmp_path: Path) -> None:
    write_project(tmp_path, HELLO)
    done = cli(tmp_path, "import", "wrangler")
    assert done.returncode == 0, done.stderr
    program = (tmp_path / "alchemy_run.py").read_text()
    assert 'Worker(\n        "hello-python",' in program
    assert 'vars={"GREETING": "Hello world!"}' in program
    assert (
        '[stages.staging.vars]\nGREETING = "Hello staging!"'
        in (tmp_path / "alchemy_nb.toml").read_text()
    )
    compile(program, "alchemy_run.py", "exec")
    again = cli(tmp_path, "import", "wrangler")
    assert again.returncode == 2 and "--force" in again.stderr
    assert cli(tmp_path, "import", "wrangler", "--force").returncode == 0


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_export_parse_import_round_trips(tmp_path: Path, example: str) -> None:
    files, _ = EXAMPLES[example]
    write_project(tmp_path, files)
    original = load_wrangler(next(tmp_path.glob("wrangler.*")))
    done = cli(tmp_path, "export", "wrangler", "--stage", "dev", "--out", "exported.jsonc")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "exported.jsonc").read_text()
    assert text.startswith("// ") and "placeholders" in text
    exported = load_wrangler(tmp_path / "exported.jsonc")
    assert exported.warnings == []
    assert declarations(exported, "dev") == declarations(original, "dev")
    assert (
        render_program(exported, vars_in_stage_config=False).split('"""', 2)[2]
        == (render_program(original.model_copy(update={"env": {}})).split('"""', 2)[2])
    )


def test_import_of_an_exported_file_writes_the_same_program(tmp_path: Path) -> None:
    write_project(tmp_path, D1)
    import_wrangler(tmp_path)
    first = (tmp_path / "alchemy_run.py").read_text()
    done = cli(tmp_path, "export", "wrangler", "--out", "wrangler.jsonc")  # via alchemy_run.py
    assert done.returncode == 0, done.stderr
    (tmp_path / "wrangler.toml").unlink()
    import_wrangler(tmp_path / "wrangler.jsonc", force=True)
    second = (tmp_path / "alchemy_run.py").read_text()
    assert first.replace("wrangler.toml", "wrangler.jsonc") == second


# --------------------------------------------------------- running (real workers)


@pytest.mark.xdist_group("local-target")
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_a_wrangler_project_deploys_and_answers_like_wrangler_dev(
    tmp_path: Path, example: str
) -> None:
    files, check = EXAMPLES[example]
    write_project(tmp_path, files)
    try:
        check(deploy(tmp_path))
        releases = cli(tmp_path, "releases", "--json")
        assert releases.returncode == 0, releases.stderr
    finally:
        assert cli(tmp_path, "destroy").returncode == 0
    # import -> deploy behaves the same
    assert cli(tmp_path, "import", "wrangler").returncode == 0
    try:
        check(deploy(tmp_path))
    finally:
        assert cli(tmp_path, "destroy").returncode == 0


@pytest.mark.xdist_group("local-target")
def test_an_env_section_is_a_stage(tmp_path: Path) -> None:
    write_project(tmp_path, HELLO)
    try:
        assert httpx.get(deploy(tmp_path, "staging")).text == "Hello staging!"
        status = cli(tmp_path, "status", "--stage", "staging")
        assert "hello-python" in status.stdout
    finally:
        assert cli(tmp_path, "destroy", "--stage", "staging").returncode == 0


@pytest.mark.xdist_group("local-target")
def test_an_unsupported_binding_leaves_the_rest_running(tmp_path: Path) -> None:
    files = dict(KV)
    files["wrangler.jsonc"] = files["wrangler.jsonc"].replace(
        '"kv_namespaces"',
        '"vectorize": [{"binding": "VECTORS", "index_name": "i"}],\n"kv_namespaces"',
    )
    write_project(tmp_path, files)
    try:
        done = cli(tmp_path, "deploy", "--json")
        assert done.returncode == 0, done.stderr
        assert "vectorize: Vectorize indexes (VECTORS)" in done.stderr
        check_kv(json.loads(done.stdout)["outputs"]["url"])
    finally:
        assert cli(tmp_path, "destroy").returncode == 0


@pytest.mark.xdist_group("local-target")
def test_dev_serves_a_wrangler_project_and_follows_edits(tmp_path: Path) -> None:
    write_project(tmp_path, HELLO)

    def text(url: str) -> str:
        try:
            return httpx.get(url).text
        except httpx.HTTPError:
            return ""

    try:
        with DevSession(tmp_path) as dev:
            url = dev.wait_for_url()
            check_hello(url)
            # an edit made before the watcher starts would not be seen
            dev.wait_for(lambda: any("watching" in line for line in dev.lines), "the watcher")
            config = tmp_path / "wrangler.toml"
            config.write_text(config.read_text().replace('"Hello world!"', '"Hello again!"'))
            dev.wait_for(lambda: text(url) == "Hello again!", "the redeploy after a config edit")
            assert dev.stop() == 0, "".join(dev.lines)
    finally:
        cli(tmp_path, "destroy")


@pytest.mark.xdist_group("local-target")
def test_a_wrangler_release_promotes_from_its_stored_copy(tmp_path: Path) -> None:
    write_project(tmp_path, D1)
    (tmp_path / "alchemy_nb.toml").write_text(
        '[stages.staging]\n\n[stages.prod]\npromote_from = "staging"\n'
    )
    try:
        check_d1(deploy(tmp_path, "staging"))
        (tmp_path / "src" / "entry.py").write_text("broken(")  # the release keeps its copy
        done = cli(tmp_path, "promote", "--to", "prod", "--json")
        assert done.returncode == 0, done.stderr
        check_d1(json.loads(done.stdout)["outputs"]["url"])
    finally:
        for stage in ("staging", "prod"):
            assert cli(tmp_path, "destroy", "--stage", stage).returncode == 0
