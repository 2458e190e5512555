"""The Cloudflare client and its profiles, the fake's contract checks, the CLI commands,
and (marked ``live``) a real account when credentials are present."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import cli, run

from alchemy_nb.cloudflare.api import (
    CloudflareClient,
    CloudflareError,
    Credentials,
    list_profiles,
    profiles_path,
    resolve_credentials,
    save_profile,
)
from alchemy_nb.errors import ConfigError
from alchemy_nb.testing.cloudflare import FakeCloudflare


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in (
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_ACCOUNT_ID",
        "CLOUDFLARE_API_BASE_URL",
        "CLOUDFLARE_PROFILE",
        "CLOUDFLARE_MAX_CONCURRENCY",
        "CLOUDFLARE_MAX_ATTEMPTS",
        "ALCHEMY_NB_ADOPT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return monkeypatch


@pytest.fixture
def fake(env: pytest.MonkeyPatch) -> Iterator[FakeCloudflare]:
    with FakeCloudflare() as server:
        env.setenv("CLOUDFLARE_API_BASE_URL", server.base_url)
        env.setenv("CLOUDFLARE_API_TOKEN", server.token)
        env.setenv("CLOUDFLARE_ACCOUNT_ID", server.account_id)
        yield server


def client(fake: FakeCloudflare, **options: object) -> CloudflareClient:
    creds = Credentials(fake.token, fake.account_id, fake.base_url)
    return CloudflareClient(creds, **options)  # type: ignore[arg-type]


def test_profiles_are_private_and_never_override_the_environment(
    env: pytest.MonkeyPatch,
) -> None:
    path = save_profile("work", token="profile-token", account_id="a" * 32)
    assert path == profiles_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert list_profiles() == {"work": {"account_id": "a" * 32, "token": "***"}}

    creds = resolve_credentials("work")
    assert (creds.token, creds.account_id, creds.source) == (
        "profile-token",
        "a" * 32,
        "profile work",
    )
    assert "profile-token" not in repr(creds)
    env.setenv("CLOUDFLARE_API_TOKEN", "env-token")
    env.setenv("CLOUDFLARE_ACCOUNT_ID", "b" * 32)
    creds = resolve_credentials("work")
    assert (creds.token, creds.account_id, creds.source) == ("env-token", "b" * 32, "environment")
    env.delenv("CLOUDFLARE_ACCOUNT_ID")
    assert resolve_credentials("work").account_id == "a" * 32  # fills in what env leaves unset

    with pytest.raises(ConfigError, match="no Cloudflare profile named 'home'"):
        resolve_credentials("home")
    env.delenv("CLOUDFLARE_API_TOKEN")
    path.unlink()
    with pytest.raises(ConfigError, match="CLOUDFLARE_API_TOKEN is not set"):
        resolve_credentials()


def test_requests_the_contract_does_not_describe_fail(fake: FakeCloudflare) -> None:
    async def go() -> None:
        async with client(fake) as c:
            with pytest.raises(CloudflareError) as info:  # not in the contract at all
                await c.call("GET", f"/accounts/{fake.account_id}/workers/scripts/a/schedules")
            assert info.value.code == 7000
            with pytest.raises(CloudflareError) as info:  # a body the schema refuses
                await c.call(
                    "POST", f"/accounts/{fake.account_id}/storage/kv/namespaces", json={"x": 1}
                )
            assert info.value.status == 400

    run(go())
    assert len(fake.violations) == 2
    assert "schedules" in fake.violations[0] and "kv/namespaces" in fake.violations[1]


def test_pagination_reads_every_page(fake: FakeCloudflare) -> None:
    for i in range(250):
        fake.kv[f"{i:032x}"] = {"id": f"{i:032x}", "title": f"t{i}", "supports_url_encoding": True}

    async def go() -> list[dict[str, object]]:
        async with client(fake) as c:
            return await c.paginate(f"/accounts/{fake.account_id}/storage/kv/namespaces")

    found = run(go())
    assert len(found) == 250 and len({n["id"] for n in found}) == 250
    pages = [p for m, p, _ in fake.log if p.endswith("/storage/kv/namespaces")]
    assert len(pages) == 3
    assert fake.violations == []


def test_rate_limits_are_retried_then_reported(fake: FakeCloudflare) -> None:
    fake.rate_limit_ratio = 1.0
    fake.retry_after = 0

    async def go() -> None:
        async with client(fake, max_attempts=4, backoff=0.01) as c:
            await c.call("GET", f"/accounts/{fake.account_id}/d1/database")

    with pytest.raises(CloudflareError) as info:
        run(go())
    assert info.value.status == 429 and info.value.code == 971
    assert "after 4 attempts" in str(info.value) and fake.requests == 4
    fake.rate_limit_ratio = 0.0
    fake.error_ratio = 0.5  # half the calls fail with 503: retried until they pass
    run(go())
    assert fake.violations == []


def test_the_fake_runs_as_a_program(env: pytest.MonkeyPatch) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "alchemy_nb.testing.cloudflare", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["base_url"].startswith("http://127.0.0.1:")
        response = httpx.get(
            info["base_url"] + "/accounts",
            headers={"Authorization": f"Bearer {info['token']}"},
            timeout=10,
        )
        assert response.json()["result"][0]["id"] == info["account_id"]
        stats = httpx.get(info["base_url"].replace("/client/v4", "/__fake__/stats")).json()
        assert stats["requests"] == 1 and stats["violations"] == []
    finally:
        proc.terminate()
        code = proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0


PROGRAM = """
import alchemy_nb
from alchemy_nb.cloudflare import KVNamespace

app = alchemy_nb.App("clicf", target="cloudflare")


@app.program
def infra(stage):
    KVNamespace("cache")
"""


def test_cli_login_whoami_adopt_and_plan_refresh(fake: FakeCloudflare, tmp_path: Path) -> None:
    (tmp_path / "alchemy_run.py").write_text(textwrap.dedent(PROGRAM))
    base = {k: os.environ[k] for k in ("XDG_CONFIG_HOME", "CLOUDFLARE_API_BASE_URL")}
    no_token = {**base, "CLOUDFLARE_API_TOKEN": "", "CLOUDFLARE_ACCOUNT_ID": ""}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "alchemy_nb",
            "cloudflare",
            "login",
            "--profile",
            "ci",
            "--token-stdin",
            "--json",
        ],
        input=fake.token + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **no_token},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["account_id"] == fake.account_id
    assert fake.token not in done.stdout + done.stderr
    who = cli(tmp_path, "cloudflare", "whoami", "--profile", "ci", env=no_token)
    assert who.returncode == 0 and fake.account_id in who.stdout and "profile ci" in who.stdout
    bad = cli(tmp_path, "cloudflare", "whoami", env={**base, "CLOUDFLARE_API_TOKEN": "nope"})
    assert bad.returncode == 1 and "token was rejected" in bad.stderr

    fake.kv["e" * 32] = {"id": "e" * 32, "title": "clicf-cache-prod", "supports_url_encoding": True}
    first = cli(tmp_path, "deploy", "--stage", "prod", "--profile", "ci", env=no_token)
    assert first.returncode == 1 and "--adopt" in first.stderr and "10014" in first.stderr
    adopted = cli(tmp_path, "deploy", "--stage", "prod", "--profile", "ci", "--adopt", env=no_token)
    assert adopted.returncode == 0, adopted.stderr
    assert len(fake.kv) == 1

    fake.kv["e" * 32]["title"] = "changed-by-hand"
    plan = cli(
        tmp_path, "plan", "--stage", "prod", "--profile", "ci", "--refresh", "--json", env=no_token
    )
    assert plan.returncode == 0, plan.stderr
    drift = json.loads(plan.stdout)["drift"]
    assert drift == [
        {
            "id": "cache",
            "kind": "cloudflare::KVNamespace",
            "gone": False,
            "fields": {"title": {"state": "clicf-cache-prod", "live": "changed-by-hand"}},
        }
    ]
    assert fake.violations == []


LIVE = bool(os.environ.get("CLOUDFLARE_API_TOKEN")) and not os.environ.get(
    "CLOUDFLARE_API_BASE_URL"
)


@pytest.mark.live
@pytest.mark.skipif(not LIVE, reason="needs CLOUDFLARE_API_TOKEN for a real Cloudflare account")
def test_live_kv_namespace_round_trip(tmp_path: Path) -> None:
    """Create, rename and delete a KV namespace in the real account."""
    import alchemy_nb
    from alchemy_nb.cloudflare import KVNamespace

    suffix = uuid.uuid4().hex[:8]
    app = alchemy_nb.App(f"anb-live-{suffix}", root=tmp_path, target="cloudflare")
    title = {"value": None}

    @app.program
    def infra(stage: object) -> None:
        KVNamespace("cache", title=title["value"])

    try:
        outputs = run(app.deploy("live")).outputs
        assert outputs is None or isinstance(outputs, dict)
        state = run(app.state.load(app.name, "live"))
        ns_id = state.records["cache"]["outputs"]["namespace_id"]
        title["value"] = f"anb-live-renamed-{suffix}"
        run(app.deploy("live"))
        state = run(app.state.load(app.name, "live"))
        assert state.records["cache"]["outputs"]["namespace_id"] == ns_id
        assert state.records["cache"]["outputs"]["title"] == title["value"]
    finally:
        run(app.destroy("live"))


def test_retry_after_sets_the_wait(fake: FakeCloudflare) -> None:
    from alchemy_nb.cloudflare.api._client import _retry_after

    c = client(fake, backoff=0.5)
    assert _retry_after("3") == 3.0 and _retry_after("soon") is None and _retry_after(None) is None
    assert 3.0 <= c._delay(1, 3.0) <= 3.0 + 0.5 / 4  # Retry-After wins over the backoff
    assert c._delay(1, 600.0) <= 60.0 + 0.5 / 4  # within reason
    assert c._delay(4, None) <= 0.5 * 2**3  # exponential backoff, with jitter below it
    run(c.aclose())


def test_mock_cloudflare_points_the_environment_at_the_fake_and_restores_it(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import alchemy_nb
    from alchemy_nb.cloudflare import R2Bucket
    from alchemy_nb.testing.cloudflare import mock_cloudflare

    env.setenv("CLOUDFLARE_API_TOKEN", "the-real-one")
    app = alchemy_nb.App("mocked", root=tmp_path, target="cloudflare")

    @app.program
    def infra(stage: object) -> None:
        R2Bucket("files")

    with mock_cloudflare() as fake:
        assert os.environ["CLOUDFLARE_API_BASE_URL"] == fake.base_url
        run(app.deploy("prod"))
        assert set(fake.r2) == {"mocked-files-prod"}
        run(app.destroy("prod"))
        assert fake.violations == []
    assert os.environ["CLOUDFLARE_API_TOKEN"] == "the-real-one"
    assert "CLOUDFLARE_API_BASE_URL" not in os.environ
