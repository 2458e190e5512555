"""The promotion commands as a user runs them: JSON contracts, refusals, bad config."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import cli

PROGRAM = """
from pathlib import Path
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("pcli")

@app.program
def infra(stage):
    File("f", path=f"out/{stage.name}.txt", content=(Path(__file__).parent / "v.txt").read_text())
"""

CONFIG = """
[stages.staging]
[stages.prod]
promote_from = "staging"
required_reviewers = 1
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "alchemy_run.py").write_text(textwrap.dedent(PROGRAM))
    (tmp_path / "v.txt").write_text("v1")
    (tmp_path / "alchemy_nb.toml").write_text(textwrap.dedent(CONFIG))
    return tmp_path


def as_(actor: str) -> dict[str, str]:
    return {"ALCHEMY_ACTOR": actor, "ALCHEMY_BRANCH": "main"}


def test_the_promotion_flow_through_the_cli(app_dir: Path) -> None:
    deploy = cli(app_dir, "deploy", "--stage", "staging", "--json", env=as_("alice"))
    assert deploy.returncode == 0, deploy.stderr
    staged = json.loads(deploy.stdout)
    assert {"app", "stage", "phase", "counts", "outputs", "release", "healthy"} <= set(staged)
    release = staged["release"]

    refused = cli(app_dir, "promote", "--to", "prod", env=as_("alice"))
    assert refused.returncode == 1
    assert "refused" in refused.stderr
    assert "\n  - no approved gate for release" in refused.stderr  # one condition per line
    assert "Traceback" not in refused.stderr

    assert cli(app_dir, "gate", "request", "--stage", "prod", env=as_("alice")).returncode == 0
    self_review = cli(
        app_dir, "approve", "--stage", "prod", "--release", release[:8], env=as_("alice")
    )
    assert self_review.returncode == 1 and "wrote this release" in self_review.stderr
    ok = cli(
        app_dir,
        "approve",
        "--stage",
        "prod",
        "--release",
        release[:8],
        "--as",
        "bob",
        "--comment",
        "fine",
    )
    assert ok.returncode == 0, ok.stderr
    promoted = cli(app_dir, "promote", "--to", "prod", "--json", env=as_("alice"))
    assert promoted.returncode == 0, promoted.stderr
    assert json.loads(promoted.stdout)["release"] == release

    releases = json.loads(cli(app_dir, "releases", "--json").stdout)
    assert isinstance(releases, list)
    assert {(r["stage"], r["id"]) for r in releases} == {("staging", release), ("prod", release)}
    for r in releases:
        assert {"id", "stage", "healthy", "author", "created_at"} <= set(r)
        assert r["author"] == "alice" and r["healthy"] is True
    history = json.loads(cli(app_dir, "history", "--json").stdout)
    assert [h["action"] for h in history] == ["deploy", "promotion"]
    assert cli(app_dir, "ledger", "verify").stdout.strip() == "ledger OK"
    feed = cli(app_dir, "feed", "--format", "atom")
    assert feed.returncode == 0 and feed.stdout.startswith("<?xml")

    ledger = app_dir / ".alchemy" / "pcli" / "ledger.jsonl"
    lines = ledger.read_text().splitlines()
    lines[1] = lines[1].replace('"alice"', '"mallory"', 1)
    ledger.write_text("\n".join(lines) + "\n")
    broken = cli(app_dir, "ledger", "verify")
    assert broken.returncode == 1 and "FAILED" in broken.stdout


def test_rollback_and_hold_through_the_cli(app_dir: Path) -> None:
    assert cli(app_dir, "deploy", "--stage", "staging", env=as_("alice")).returncode == 0
    (app_dir / "v.txt").write_text("v2")
    assert cli(app_dir, "deploy", "--stage", "staging", env=as_("alice")).returncode == 0
    back = cli(app_dir, "rollback", "--stage", "staging", "--json", env=as_("alice"))
    assert back.returncode == 0, back.stderr
    assert (app_dir / "out/staging.txt").read_text() == "v1"
    held = cli(app_dir, "deploy", "--stage", "staging", env=as_("alice"))
    assert held.returncode == 1 and "on hold" in held.stderr
    assert cli(app_dir, "hold", "release", "--stage", "staging").returncode == 0
    assert cli(app_dir, "deploy", "--stage", "staging", env=as_("alice")).returncode == 0


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("[stages.prod]\nrequired_reviewrs = 1\n", "stages.prod.required_reviewrs: unknown key"),
        ("[stages.prod]\nrequired_reviewers = 'two'\n", "stages.prod.required_reviewers"),
        ("[stages.prod]\nwait_timer = 'soon'\n", "invalid duration 'soon'"),
        ("[stages.prod]\npromote_from = 'nowhere'\n", "promote_from names 'nowhere'"),
        ("[stages.prod\n", "not valid TOML"),
    ],
)
def test_bad_stage_configuration_is_a_clear_error(app_dir: Path, config: str, needle: str) -> None:
    (app_dir / "alchemy_nb.toml").write_text(config)
    proc = cli(app_dir, "deploy", "--stage", "prod")
    assert proc.returncode == 2
    assert needle in proc.stderr and "alchemy_nb.toml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_in_pyproject_and_unknown_stage(app_dir: Path) -> None:
    (app_dir / "alchemy_nb.toml").unlink()
    (app_dir / "pyproject.toml").write_text(
        "[tool.alchemy-nb.stages.staging]\n"
        '[tool.alchemy-nb.stages.prod]\npromote_from = "staging"\n'
    )
    proc = cli(app_dir, "deploy", "--stage", "qa")
    assert proc.returncode == 2 and "unknown stage 'qa'" in proc.stderr
    assert cli(app_dir, "deploy", "--stage", "staging").returncode == 0


def test_deploy_auto_deploys_the_auto_deploy_stages(app_dir: Path) -> None:
    (app_dir / "alchemy_nb.toml").write_text(
        textwrap.dedent("""
        [stages.staging]
        auto_deploy = true
        [stages.qa]
        auto_deploy = true
        [stages.prod]
        promote_from = "staging"
    """)
    )
    proc = cli(app_dir, "deploy", "--auto", "--json", env=as_("ci"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [s["stage"] for s in data["stages"]] == ["staging", "qa"]
    assert (app_dir / "out/staging.txt").exists() and (app_dir / "out/qa.txt").exists()
    assert not (app_dir / "out/prod.txt").exists()
    assert cli(app_dir, "deploy", "--auto", "--stage", "qa").returncode == 2
