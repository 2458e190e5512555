"""Releases, gates, promotion, health, rollback and holds: a test per rule.

Each test fails if its rule is removed. Most use files (fs::File) so they are quick; the
health and rollback tests serve a real worker on the local target.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

import pytest
from conftest import run

import alchemy_nb
from alchemy_nb.errors import ConfigError, GateError
from alchemy_nb.promotion import Pipeline

PROGRAM = """
from pathlib import Path

import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("promo")

@app.program
def infra(stage):
    content = (Path(__file__).parent / "content.txt").read_text()
    f = File("f", path=f"out/{stage.name}.txt", content=content)
    return {"path": f.path}
"""

CONFIG = """
[stages.staging]
auto_deploy = true

[stages.prod]
promote_from = "staging"
required_reviewers = {reviewers}
prevent_self_review = true
allowed_branches = {branches}
wait_timer = "{wait}"
approval_expiry = "{expiry}"
"""


def make(
    tmp_path: Path,
    *,
    reviewers: int = 1,
    branches: str = "[]",
    wait: str = "0s",
    expiry: str = "30d",
    content: str = "v1",
) -> Pipeline:
    (tmp_path / "alchemy_run.py").write_text(textwrap.dedent(PROGRAM))
    (tmp_path / "content.txt").write_text(content)
    (tmp_path / "alchemy_nb.toml").write_text(
        CONFIG.format(reviewers=reviewers, branches=branches, wait=wait, expiry=expiry)
    )
    return Pipeline(alchemy_nb.load_program(tmp_path / "alchemy_run.py"))


@pytest.fixture(autouse=True)
def _author(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALCHEMY_ACTOR", "alice")  # who deploys (and so authors) releases
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
    monkeypatch.setenv("ALCHEMY_BRANCH", "main")


def staged(p: Pipeline) -> str:
    outcome = run(p.deploy("staging"))
    assert outcome.healthy
    return outcome.release


def test_the_same_release_goes_from_staging_to_prod(tmp_path: Path) -> None:
    p = make(tmp_path)
    rel = staged(p)
    gate = run(p.request_gate("prod"))
    assert gate["release"] == rel
    run(p.approve("prod", rel[:8], actor="bob", comment="looks good"))
    (tmp_path / "content.txt").write_text("v2 in the working tree")  # must not leak into prod
    outcome = run(p.promote("prod"))
    assert outcome.release == rel and outcome.healthy
    assert (tmp_path / "out/prod.txt").read_text() == "v1"
    kinds = [e["kind"] for e in run(p._ledger.events())]
    assert kinds[:1] == ["deploy"] and "gate.request" in kinds and "approval" in kinds
    assert kinds[-2:] == ["promotion", "health"] or "promotion" in kinds


def test_self_approval_is_refused(tmp_path: Path) -> None:
    p = make(tmp_path)
    rel = staged(p)
    run(p.request_gate("prod"))
    with pytest.raises(GateError) as info:
        run(p.approve("prod", rel, actor="alice"))
    assert "wrote this release" in str(info.value)


def test_approvals_count_distinct_people(tmp_path: Path) -> None:
    p = make(tmp_path, reviewers=2)
    rel = staged(p)
    run(p.request_gate("prod"))
    run(p.approve("prod", rel, actor="bob"))
    with pytest.raises(GateError, match="already approved"):
        run(p.approve("prod", rel, actor="bob"))
    with pytest.raises(GateError) as info:
        run(p.promote("prod"))
    assert "1 of 2 required approvals" in str(info.value)
    run(p.approve("prod", rel, actor="carol"))
    assert run(p.promote("prod")).healthy


def test_an_approval_for_release_a_cannot_promote_release_b(tmp_path: Path) -> None:
    p = make(tmp_path)
    a = staged(p)
    run(p.request_gate("prod"))
    run(p.approve("prod", a, actor="bob"))
    (tmp_path / "content.txt").write_text("v2")
    b = staged(p)
    assert a != b
    with pytest.raises(GateError) as info:
        run(p.promote("prod"))  # the healthy release of staging is now b
    assert "no approved gate for release " + b[:12] in str(info.value)
    with pytest.raises(GateError, match="not the healthy release"):
        run(p.promote("prod", release=a))


def test_a_stale_plan_is_refused(tmp_path: Path) -> None:
    p = make(tmp_path)
    rel = staged(p)
    run(p.request_gate("prod"))
    run(p.approve("prod", rel, actor="bob"))
    # the target's state changes after approval: the approved plan no longer holds
    (tmp_path / "content.txt").write_text("deployed to prod by hand")
    run(p.app.deploy("prod"))
    with pytest.raises(GateError) as info:
        run(p.promote("prod"))
    assert "the plan changed since the gate was requested" in str(info.value)


def test_wait_timer(tmp_path: Path) -> None:
    p = make(tmp_path, wait="1h")
    rel = staged(p)
    run(p.request_gate("prod"))
    run(p.approve("prod", rel, actor="bob"))
    with pytest.raises(GateError, match="wait timer"):
        run(p.promote("prod"))


def test_branch_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path, branches='["main"]')
    monkeypatch.setenv("ALCHEMY_BRANCH", "feature/x")
    rel = staged(p)
    run(p.request_gate("prod"))
    run(p.approve("prod", rel, actor="bob"))
    with pytest.raises(GateError, match="branch 'feature/x' is not one of main"):
        run(p.promote("prod"))


def test_expiry(tmp_path: Path) -> None:
    p = make(tmp_path, expiry="1s")
    rel = staged(p)
    run(p.request_gate("prod"))
    run(p.approve("prod", rel, actor="bob"))
    time.sleep(1.1)
    with pytest.raises(GateError, match="expired"):
        run(p.promote("prod"))


def test_a_rejection_closes_the_gate(tmp_path: Path) -> None:
    p = make(tmp_path)
    rel = staged(p)
    run(p.request_gate("prod"))
    run(p.reject("prod", rel, actor="bob", comment="not today"))
    with pytest.raises(GateError, match="no open gate"):
        run(p.approve("prod", rel, actor="carol"))
    with pytest.raises(GateError, match="no approved gate"):
        run(p.promote("prod"))


def test_promoting_a_release_not_healthy_in_the_source_is_refused(tmp_path: Path) -> None:
    p = make(tmp_path, reviewers=0)
    with pytest.raises(GateError, match="no healthy release in 'staging'"):
        run(p.promote("prod"))
    rel = staged(p)
    data = p.records.stage("staging")
    data["history"][-1]["healthy"] = False  # as after a failed health check
    p.records.save_stage("staging", data)
    with pytest.raises(GateError, match="is not the healthy release of 'staging'"):
        run(p.promote("prod", release=rel))


def test_unknown_stage_and_release_ids(tmp_path: Path) -> None:
    p = make(tmp_path)
    with pytest.raises(ConfigError, match="unknown stage 'qa'"):
        run(p.deploy("qa"))
    staged(p)
    with pytest.raises(ConfigError, match="no release"):
        run(p.promote("prod", release="abcdef12"))
    with pytest.raises(ConfigError, match="not a release id"):
        run(p.promote("prod", release="zz"))
    with pytest.raises(ConfigError, match="actor name is empty"):
        run(p.approve("prod", "abcd", actor="  "))


def test_two_concurrent_promotions_are_serialized(tmp_path: Path) -> None:
    p = make(tmp_path)
    rel = staged(p)
    run(p.request_gate("prod"))
    run(p.approve("prod", rel, actor="bob"))

    async def both() -> list[object]:
        return await asyncio.gather(p.promote("prod"), p.promote("prod"), return_exceptions=True)

    results = run(both())
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, GateError)]
    assert len(ok) == 1 and len(refused) == 1  # the gate was used by the first
    history = [e for e in p.history("prod") if e["action"] == "promotion"]
    assert len(history) == 1


def test_migration_guard_and_force(tmp_path: Path) -> None:
    p = make(tmp_path, reviewers=0)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_init.sql").write_text("CREATE TABLE t (x INTEGER);\n")
    (tmp_path / "alchemy_run.py").write_text(
        textwrap.dedent(PROGRAM).replace(
            "    return",
            "    from alchemy_nb.cloudflare import D1Database\n"
            "    D1Database('db', migrations_dir='migrations')\n    return",
        )
    )
    p = Pipeline(alchemy_nb.load_program(tmp_path / "alchemy_run.py"))
    first = staged(p)
    (tmp_path / "migrations" / "0002_more.sql").write_text("ALTER TABLE t ADD y TEXT;\n")
    second = staged(p)
    with pytest.raises(GateError) as info:
        run(p.rollback("staging", to=first[:10]))
    assert "migration 0002_more.sql is applied" in str(info.value)
    outcome = run(p.rollback("staging", to=first, force=True))
    assert outcome.release == first and second != first


def test_rollback_puts_a_hold_that_blocks_redeploys(tmp_path: Path) -> None:
    p = make(tmp_path, reviewers=0)
    first = staged(p)
    (tmp_path / "content.txt").write_text("v2")
    second = staged(p)
    outcome = run(p.rollback("staging"))
    assert outcome.release == first
    assert (tmp_path / "out/staging.txt").read_text() == "v1"
    with pytest.raises(GateError, match="on hold"):
        run(p.deploy("staging"))  # the working tree still holds the bad release
    hold = run(p.release_hold("staging"))
    assert hold["release"] == second
    assert run(p.deploy("staging")).release == second


WORKER = """
import os
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        with open(os.environ["ALCHEMY_TEST_FLAG"]) as fh:
            status = int(fh.read())
        return Response("{body}", status=status if "{body}" == "ok" else 500)
"""

HEALTH_PROGRAM = """
import alchemy_nb
from alchemy_nb.cloudflare import Worker

app = alchemy_nb.App("healthy")

@app.program
def infra(stage):
    return {"url": Worker("api", entry="src/worker.py").url}
"""


@pytest.mark.xdist_group("local-target")
def test_failed_health_rolls_back_automatically_never_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "flag"
    flag.write_text("200")
    monkeypatch.setenv("ALCHEMY_TEST_FLAG", str(flag))  # reaches the worker processes
    (tmp_path / "src").mkdir()
    worker = tmp_path / "src" / "worker.py"
    worker.write_text(WORKER.format(body="ok"))
    (tmp_path / "alchemy_run.py").write_text(textwrap.dedent(HEALTH_PROGRAM))
    (tmp_path / "alchemy_nb.toml").write_text(
        textwrap.dedent("""
        [stages.staging]
        health = [{ worker = "api", path = "/", expect_status = 200, deadline = "1s" }]
    """)
    )
    app = alchemy_nb.load_program(tmp_path / "alchemy_run.py")
    p = Pipeline(app)
    try:
        good = run(p.deploy("staging"))
        assert good.healthy and good.probes[0].ok
        worker.write_text(WORKER.format(body="broken"))
        bad = run(p.deploy("staging"))
        assert not bad.healthy
        assert bad.rolled_back_to == good.release  # automatically
        history = p.history("staging")
        assert [(h["action"], h["healthy"]) for h in history] == [
            ("deploy", True),
            ("deploy", False),
            ("rollback", True),
        ]
        events = run(p._ledger.events(kind="rollback"))
        assert events[-1]["data"]["automatic"] is True
        assert "got 500" in events[-1]["data"]["reason"]

        # now the good release fails too: its rollback is not rolled back again
        run(p.release_hold("staging"))
        flag.write_text("503")
        again = run(p.deploy("staging"))  # the broken code once more
        assert not again.healthy and again.rolled_back_to == good.release
        history = p.history("staging")
        assert [(h["action"], h["healthy"]) for h in history[-2:]] == [
            ("deploy", False),
            ("rollback", False),
        ]
        assert len(run(p._ledger.events(kind="rollback"))) == 2  # one per failed deploy
    finally:
        run(app.destroy("staging"))


CEDAR = """
@id("prod-approvers")
permit (principal in Team::"prod-reviewers", action == Action::"approve",
        resource == Stage::"prod");

permit (principal, action in [Action::"reject", Action::"promote",
                              Action::"rollback", Action::"hold"], resource);
"""


def test_cedar_decides_who_may_approve_both_ways(tmp_path: Path) -> None:
    p = make(tmp_path)
    with (tmp_path / "alchemy_nb.toml").open("a") as fh:
        fh.write('\n[teams]\nprod-reviewers = ["bob"]\n')
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "approvals.cedar").write_text(CEDAR)
    p = Pipeline(alchemy_nb.load_program(tmp_path / "alchemy_run.py"))
    rel = staged(p)
    run(p.request_gate("prod"))
    with pytest.raises(GateError) as info:
        run(p.approve("prod", rel, actor="mallory"))
    assert "policy denies 'mallory' to approve stage 'prod'" in str(info.value)
    run(p.approve("prod", rel, actor="bob"))  # a prod reviewer: allowed
    assert run(p.promote("prod")).healthy


REGO = """# enforcement: {enforcement}
package alchemy_nb.no_new_files_in_prod

import rego.v1

deny contains msg if {{
    input.stage == "prod"
    some change in input.plan.changes
    change.kind == "fs::File"
    change.action == "create"
    msg := sprintf("no new files in prod: %s", [change.id])
}}
"""


@pytest.mark.parametrize("enforcement", ["mandatory", "advisory"])
def test_rego_checks_the_plan_both_ways(tmp_path: Path, enforcement: str) -> None:
    p = make(tmp_path, reviewers=0)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "files.rego").write_text(REGO.format(enforcement=enforcement))
    p = Pipeline(alchemy_nb.load_program(tmp_path / "alchemy_run.py"))
    staged(p)  # staging is not checked by this policy
    if enforcement == "mandatory":
        with pytest.raises(GateError) as info:
            run(p.promote("prod"))
        assert "no new files in prod: f" in str(info.value)
        assert not (tmp_path / "out/prod.txt").exists()
    else:
        assert run(p.promote("prod")).healthy  # advisory: shown and recorded, not blocking
    decisions = run(p._ledger.events(kind="policy"))
    assert decisions and decisions[-1]["data"]["decisions"][0]["denials"] == [
        "no new files in prod: f"
    ]


def test_ambiguous_release_prefixes_are_refused(tmp_path: Path) -> None:
    p = make(tmp_path)
    rel = staged(p)
    twin = rel[:6] + "0" * (len(rel) - 6)
    p.records.store.doc_put(p.app.name, "releases", twin, {**p.records.release(rel), "id": twin})
    with pytest.raises(ConfigError, match="ambiguous"):
        p.records.release(rel[:6])
    assert p.records.release(rel[:10])["id"] == rel


VARS_WORKER = """
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(f"{self.env.GREETING} / {self.env.ALCHEMY_RELEASE}")
"""

VARS_PROGRAM = """
import alchemy_nb
from alchemy_nb.cloudflare import Worker

app = alchemy_nb.App("vars")

@app.program
def infra(stage):
    return {"url": Worker("api", entry="src/worker.py", vars={"GREETING": "from the program"}).url}
"""


@pytest.mark.xdist_group("local-target")
def test_stage_vars_override_the_programs_in_every_worker(tmp_path: Path) -> None:
    import httpx

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "worker.py").write_text(VARS_WORKER)
    (tmp_path / "alchemy_run.py").write_text(textwrap.dedent(VARS_PROGRAM))
    (tmp_path / "alchemy_nb.toml").write_text(
        textwrap.dedent("""
        [stages.staging]
        [stages.prod]
        promote_from = "staging"
        [stages.prod.vars]
        GREETING = "hello from prod"
    """)
    )
    app = alchemy_nb.load_program(tmp_path / "alchemy_run.py")
    p = Pipeline(app)
    try:
        staging = run(p.deploy("staging"))
        prod = run(p.promote("prod"))
        assert httpx.get(staging.result.outputs["url"]).text == (
            f"from the program / {staging.release[:12]}"
        )
        assert httpx.get(prod.result.outputs["url"]).text == (
            f"hello from prod / {staging.release[:12]}"
        )  # the same release, prod's vars
    finally:
        run(app.destroy("staging"))
        run(app.destroy("prod"))


def test_a_gate_holds_for_a_program_with_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan digest a gate binds to must not change from run to run because of secrets."""
    monkeypatch.setenv("ALCHEMY_PASSWORD", "pw")
    monkeypatch.setenv("API_TOKEN", "t0ken-value")
    p = make(tmp_path)
    program = tmp_path / "alchemy_run.py"
    program.write_text(
        program.read_text().replace(
            "    return {",
            "    from things import Thing\n"
            "    Thing('t', token=alchemy_nb.Secret.env('API_TOKEN'))\n    return {",
        )
    )
    p = Pipeline(alchemy_nb.load_program(program))
    rel = staged(p)
    run(p.request_gate("prod"))
    run(p.approve("prod", rel, actor="bob"))
    assert run(p.promote("prod")).healthy  # not "the plan changed since the gate"
