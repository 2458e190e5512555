"""Service bindings and dynamic workers: the ``services`` example project (a gateway and an
auth worker of one app) under ``alchemy-nb dev``, checked over HTTP; and the Worker
Loader's error cases in process."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import DevSession

PROJECTS = Path(__file__).resolve().parent / "projects"


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, DevSession]]:
    folder = tmp_path_factory.mktemp("services") / "services"
    shutil.copytree(PROJECTS / "services", folder)
    with pytest.MonkeyPatch.context() as patch:  # these sessions see only each other
        patch.setenv("ALCHEMY_NB_DEV_REGISTRY", str(folder.parent / "registry"))
        dev = DevSession(folder)
    with dev:
        gateway = dev.wait_for_url()
        dev.wait_for(lambda: any("auth = " in line for line in dev.lines), "the outputs")
        auth = next(line for line in dev.lines if "auth = " in line).split("auth = ")[1].strip()
        yield gateway, auth, dev


def call(method: str, url: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, url, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.mark.xdist_group("services")
def test_fetch_through_a_service_binding(services: tuple[str, str, DevSession]) -> None:
    gateway, _, _ = services
    ok = call("POST", gateway + "/login", content=b"open-sesame")
    assert (ok.status_code, ok.text) == (200, "welcome")
    assert ok.headers["set-cookie"] == "session=abc; HttpOnly"
    assert ok.headers["content-type"] == "text/plain;charset=UTF-8"
    denied = call("POST", gateway + "/login?next=%2Fhome", content=b"guess")
    assert denied.status_code == 401
    # The other worker sees the URL the caller used: this host, this path and query.
    assert denied.text == f"wrong word at {gateway}/login?next=%2Fhome"


@pytest.mark.xdist_group("services")
def test_rpc_methods_through_a_service_binding(services: tuple[str, str, DevSession]) -> None:
    gateway, _, _ = services
    who = call("GET", gateway + "/whoami", headers={"authorization": "Bearer abc"})
    assert who.json() == {"user": {"user": "ann", "roles": ["admin"], "active": True}}
    assert who.headers["x-user"] == "ann"
    assert call("GET", gateway + "/whoami").json() == {"user": None}
    back = call("POST", gateway + "/reverse", content=b"\x00\x01abc\xff")
    assert back.content == b"\xffcba\x01\x00"
    boom = call("GET", gateway + "/explode")
    assert (boom.status_code, boom.text) == (502, "ValueError: cannot do that")
    stats = call("GET", gateway + "/stats")  # by script name, to a named entrypoint
    assert stats.json() == {"service": "auth", "entrypoint": "Admin", "word_length": 11}


@pytest.mark.xdist_group("services")
def test_rpc_is_not_reachable_from_outside(services: tuple[str, str, DevSession]) -> None:
    _, auth, _ = services
    outside = call(
        "POST",
        auth + "/cdn-cgi/alchemy-nb/rpc",
        json={"method": "verify", "args": ["Bearer abc"], "kwargs": {}},
    )
    assert outside.status_code == 401  # an ordinary request to the auth worker
    assert outside.text == f"wrong word at {auth}/cdn-cgi/alchemy-nb/rpc"


@pytest.mark.xdist_group("services")
def test_a_binding_to_a_worker_that_does_not_run_names_the_binding(
    services: tuple[str, str, DevSession],
) -> None:
    gateway, _, _ = services
    failed = call("GET", gateway + "/billing")
    assert failed.status_code == 500
    assert failed.text == (
        "Worker threw exception: JsException: Error: Service binding 'BILLING' points to"
        " worker 'billing-that-does-not-exist', which is not running on this machine. Fix:"
        " start it (alchemy-nb dev in its project), or declare it in this app and bind the"
        " Worker resource\n"
    )
    assert call("GET", gateway + "/").text == "gateway"  # the rest is unaffected


@pytest.mark.xdist_group("services")
def test_the_worker_loader_runs_code_from_source_cached_per_id(
    services: tuple[str, str, DevSession],
) -> None:
    gateway, _, _ = services
    first = call("GET", gateway + "/dynamic")
    second = call("GET", gateway + "/dynamic")
    assert first.text == second.text == "hello ann from a dynamic worker"
    assert first.headers["x-sum"] == "5"  # RPC on the dynamic worker's entrypoint
    assert second.headers["x-loads"] == "1"  # the code callback ran once for the id


def test_worker_loader_errors_are_clear(tmp_path: Path) -> None:
    from local.test_runtime import exercise

    source = """
        from workers import Response, WorkerEntrypoint

        def code(modules, main="main.py"):
            return lambda: {"mainModule": main, "modules": modules}

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                kind = request.url.rsplit("/", 1)[1]
                if kind == "fresh":  # load(): not cached, a new module each time
                    source = "from workers import Response\\nimport random\\nN = random.random()\\n"
                    source += "async def on_fetch(request, env):\\n    return Response(str(N))\\n"
                    fresh = {"mainModule": "m.py", "modules": {"m.py": source}}
                    a = await self.env.LOADER.load(fresh).getEntrypoint().fetch(request)
                    b = await self.env.LOADER.load(fresh).getEntrypoint().fetch(request)
                    return Response(str(await a.text() != await b.text()))
                cases = {
                    "js": code({"main.js": "export default {}"}, "main.js"),
                    "nomain": code({"other.py": "x = 1"}),
                    "broken": code({"main.py": "raise RuntimeError('at import')"}),
                    "nohandler": code({"main.py": "x = 1"}),
                }
                try:
                    stub = self.env.LOADER.get(kind, cases[kind])
                    await stub.getEntrypoint().fetch(request)
                except Exception as error:
                    return Response(str(error))
                return Response("no error")
    """

    async def check(app: object, client: httpx.AsyncClient) -> None:
        texts = {k: (await client.get(f"/{k}")).text for k in ["js", "nomain", "broken"]}
        assert texts == {
            "js": "TypeError: Dynamic worker 'js': module 'main.js' is not a Python module;"
            " the local runtime runs Python modules only (name it *.py)",
            "nomain": "TypeError: Dynamic worker 'nomain': mainModule 'main.py' is not one of"
            " its modules (other.py)",
            "broken": "Error: Dynamic worker 'broken' failed to load: RuntimeError: at import",
        }
        assert (await client.get("/fresh")).text == "True"
        nohandler = (await client.get("/nohandler")).text
        assert nohandler.startswith("TypeError: Dynamic worker 'nohandler':")
        assert "has no handler" in nohandler

    exercise(tmp_path, textwrap.dedent(source), check, {"LOADER": {"type": "worker_loader"}})


def test_two_wrangler_projects_reach_each_other_while_both_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALCHEMY_NB_DEV_REGISTRY", str(tmp_path / "registry"))
    shutil.copytree(PROJECTS / "pair", tmp_path / "pair")
    with DevSession(tmp_path / "pair" / "api") as api:
        url = api.wait_for_url()
        alone = call("GET", url + "/check")
        assert alone.status_code == 500
        assert "Service binding 'AUTH' points to worker 'pair-auth', which is not running" in (
            alone.text
        )
        assert call("GET", url + "/").text == "api"  # the rest of the worker is unaffected
        with DevSession(tmp_path / "pair" / "auth") as auth:
            auth.wait_for_url()
            assert call("GET", url + "/check").json() == {"user": "ann", "allowed": True}
            forwarded = call("POST", url + "/forward?x=1", content=b"hi")
            assert forwarded.text == f"auth saw POST {url}/forward?x=1"
        api.wait_for(  # stopped (its last requests drain first): the binding says so again
            lambda: "'pair-auth', which is not running" in call("GET", url + "/check").text,
            "the error once auth stopped",
        )
