"""The app template (templates/app), ``alchemy-nb new`` / ``update`` and the apps they make.

Renders go into ``tmp_path``; the generated app's own tests, a deploy on the local target
and ``copier update`` between two tagged template versions run for real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import copier
import httpx
import nbformat
import pytest
import yaml
from conftest import cli

import alchemy_nb.scaffold
from alchemy_nb.errors import ConfigError
from alchemy_nb.scaffold import new, template_path, template_questions, update

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "templates" / "app"
CHECKOUT = str(ROOT)
RESOURCES = ["use_d1", "use_kv", "use_r2", "use_durable_object", "use_workflow", "use_queue"]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALCHEMY_NB_CACHE", str(tmp_path / "cache"))
    settings = tmp_path / "copier-settings.yml"  # no user defaults, no trusted locations
    settings.write_text("{}\n")
    monkeypatch.setenv("COPIER_SETTINGS_PATH", str(settings))
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def render(dest: Path, **answers: Any) -> Path:
    copier.run_copy(
        str(TEMPLATE),
        str(dest),
        data={"app_name": "my-app", "alchemy_nb_source": CHECKOUT, **answers},
        defaults=True,
        quiet=True,
    )
    return dest


def run_app_tests(app: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("STAGE", "PHASE")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=app,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


# ------------------------------------------------------------------ rendering


def test_defaults_render_a_complete_app(tmp_path: Path) -> None:
    app = render(tmp_path / "app")
    for name in (
        "pyproject.toml",
        "alchemy_run.py",
        "src/worker.py",
        "migrations/0001_items.sql",
        "alchemy_nb.toml",
        "notebooks/explore.ipynb",
        "notebooks/README.md",
        "tests/test_worker.py",
        ".github/workflows/ci.yml",
        ".github/workflows/promote.yml",
        "README.md",
        "QUICK_START.md",
        ".gitignore",
        "Makefile",
        ".copier-answers.yml",
    ):
        assert (app / name).is_file(), name
    program = (app / "alchemy_run.py").read_text()
    assert 'alchemy_nb.App("my-app")' in program
    for binding in ('bindings["DB"]', 'bindings["CACHE"]', 'bindings["FILES"]'):
        assert binding in program
    for absent in ("COUNTERS", "PROCESS", "JOBS"):
        assert absent not in program
    makefile = (app / "Makefile").read_text()
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert ".alchemy/" in (app / ".gitignore").read_text()
    assert (
        f"alchemy-nb[local,notebooks] @ file://{CHECKOUT}" in (app / "pyproject.toml").read_text()
    )
    answers = yaml.safe_load((app / ".copier-answers.yml").read_text())
    assert answers["app_name"] == "my-app"
    assert [s["name"] for s in answers["stages"]] == ["staging", "prod"]


def test_stage_configuration_protects_prod(tmp_path: Path) -> None:
    import tomllib

    from alchemy_nb._config import load_config

    app = render(tmp_path / "app", prod_reviewers=2)
    config = load_config(app)
    assert list(config.stages) == ["dev", "staging", "prod"]
    assert config.stages["staging"].auto_deploy
    prod = config.stages["prod"]
    assert prod.promote_from == "staging"
    assert prod.required_reviewers == 2 and prod.prevent_self_review
    assert all(c.health[0].path == "/api/health" for c in config.stages.values())
    raw = tomllib.loads((app / "alchemy_nb.toml").read_text())
    assert raw["stages"]["prod"]["target"] == "local"


@pytest.mark.parametrize(
    "enabled",
    [
        [],
        ["use_d1"],
        ["use_kv", "use_queue"],
        ["use_durable_object", "use_workflow"],
        RESOURCES,
    ],
    ids=["none", "d1", "kv+queue", "do+workflow", "all"],
)
def test_each_chosen_binding_is_bound_and_routed(tmp_path: Path, enabled: list[str]) -> None:
    app = render(tmp_path / "app", **{r: r in enabled for r in RESOURCES})
    program = (app / "alchemy_run.py").read_text()
    worker = (app / "src" / "worker.py").read_text()
    tests = (app / "tests" / "test_worker.py").read_text()
    expect = {
        "use_d1": ("DB", "/api/items"),
        "use_kv": ("CACHE", "/api/kv/"),
        "use_r2": ("FILES", "/api/files/"),
        "use_durable_object": ("COUNTERS", "/api/counters/"),
        "use_workflow": ("PROCESS", "/api/workflows"),
        "use_queue": ("JOBS", "/api/queue"),
    }
    for resource, (binding, route) in expect.items():
        on = resource in enabled
        assert (f'bindings["{binding}"]' in program) is on, resource
        assert (f"env.{binding}." in worker) is on, resource
        assert (route in worker) is on, resource
        assert (route in tests) is on, resource
    assert (app / "migrations").exists() is ("use_d1" in enabled)
    assert ("queue_consumers=[jobs]" in program) is ("use_queue" in enabled)
    assert ("async def queue(" in worker) is ("use_queue" in enabled)
    for path in (
        app / "alchemy_run.py",
        app / "src" / "worker.py",
        app / "tests" / "test_worker.py",
    ):
        compile(path.read_text(), str(path), "exec")
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "ruff"), "check", "--no-cache", "."],
        cwd=app,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run(
        [str(Path(sys.executable).parent / "ruff"), "format", "--check", "--no-cache", "."],
        cwd=app,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout


def test_stages_are_parameterised(tmp_path: Path) -> None:
    stages = [
        {"name": "qa", "target": "local"},
        {"name": "staging", "target": "local"},
        {"name": "live", "target": "local"},
    ]
    app = render(tmp_path / "app", stages=stages, prod_reviewers=0)
    from alchemy_nb._config import load_config

    config = load_config(app)
    assert list(config.stages) == ["dev", "qa", "staging", "live"]
    assert config.stages["staging"].promote_from == "qa"
    assert config.stages["live"].promote_from == "staging"
    assert config.stages["live"].required_reviewers == 0
    promote = yaml.safe_load((app / ".github/workflows/promote.yml").read_text())
    inputs = promote[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads `on:` as True
    assert inputs["environment"]["options"] == ["qa", "staging", "live"]


def test_workflows_are_valid_yaml_with_the_expected_jobs(tmp_path: Path) -> None:
    app = render(tmp_path / "app", python_version="3.12")
    text_ci = (app / ".github/workflows/ci.yml").read_text()
    text_promote = (app / ".github/workflows/promote.yml").read_text()
    assert "continue-on-error" not in text_ci + text_promote
    ci = yaml.safe_load(text_ci)
    assert set(ci[True]) == {"push", "pull_request"}
    job = ci["jobs"]["check"]
    assert job["strategy"]["matrix"]["task"] == ["lint", "tests", "notebooks"]
    steps = {step.get("name"): step for step in job["steps"]}
    assert steps["lint"]["if"] == "matrix.task == 'lint'"
    assert "ruff check" in steps["lint"]["run"]
    assert "pytest" in steps["tests"]["run"]
    assert "--nbval-lax notebooks/" in steps["notebooks"]["run"]
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.12"

    promote = yaml.safe_load(text_promote)
    inputs = promote[True]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["type"] == "choice"
    assert inputs["environment"]["options"] == ["staging", "prod"]
    job = promote["jobs"]["runbook"]
    assert job["environment"]["name"] == "${{ inputs.environment }}"
    runs = [step.get("run", "") for step in job["steps"]]
    for runbook in ("deploy", "approve", "promote", "rollback"):
        assert any(f"alchemy-nb runbook {runbook}" in run for run in runs), runbook
    upload = next(
        s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")
    )
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "artifacts/"


def test_notebooks_are_committed_without_outputs(tmp_path: Path) -> None:
    app = render(tmp_path / "app")
    nb = nbformat.read(app / "notebooks" / "explore.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert "load_program" in code[0].source
    assert "alchemy-nb runbook promote" in (app / "notebooks" / "README.md").read_text()


# ------------------------------------------------------------------ bad answers


@pytest.mark.parametrize(
    ("answers", "question"),
    [
        ({"app_name": "My_App"}, "app_name"),
        ({"app_name": "-app"}, "app_name"),
        ({"app_name": "a--b"}, "app_name"),
        ({"prod_reviewers": 9}, "prod_reviewers"),
        ({"stages": [{"name": "dev", "target": "local"}]}, "stages"),
        ({"stages": [{"name": "prod", "target": "aws"}]}, "stages"),
        ({"stages": "staging"}, "stages"),
        ({"python_version": "2.7"}, "python_version"),
    ],
)
def test_invalid_answers_are_refused_naming_the_question(
    tmp_path: Path, answers: dict[str, Any], question: str
) -> None:
    with pytest.raises(ValueError, match=question):
        render(tmp_path / "app", **answers)
    assert not (tmp_path / "app").exists()


def test_new_refuses_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="app_name 'Bad_Name' is not a slug"):
        new("Bad_Name", dest=tmp_path / "a", defaults=True)
    with pytest.raises(ConfigError, match="unknown template question 'colour'"):
        new("ok", dest=tmp_path / "a", data={"colour": "red"}, defaults=True)
    with pytest.raises(ConfigError, match="Validation error for question 'prod_reviewers'"):
        new("ok", dest=tmp_path / "a", data={"prod_reviewers": "9"}, defaults=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        new("ok", dest=tmp_path / "full", defaults=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "copier-settings.yml", "full"]
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["new", "Not A Slug", "--defaults"], "error: app_name 'Not A Slug' is not a slug"),
        (["new", "ok", "--defaults", "--dest", "full"], "error: the destination exists"),
        (["new", "ok", "--defaults", "--data", "colour=red"], "error: unknown template question"),
        (
            ["new", "ok", "--defaults", "--data", "colour"],
            "error: --data 'colour' is not KEY=VALUE",
        ),
        (["update", "--dest", "nowhere"], "error: no .copier-answers.yml here"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "nowhere").mkdir()
    done = cli(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ok").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_scaffold_api_is_sorted_and_pinned() -> None:
    assert alchemy_nb.scaffold.__all__ == sorted(alchemy_nb.scaffold.__all__)
    assert alchemy_nb.scaffold.__all__ == [
        "Scaffolded",
        "new",
        "template_path",
        "template_questions",
        "template_source",
        "update",
    ]
    assert template_path() == TEMPLATE
    assert template_questions()[0] == "app_name"


# ------------------------------------------------------------------ new, deploy, update


@pytest.mark.xdist_group("local-target")
def test_new_app_deploys_answers_health_and_is_destroyed(tmp_path: Path) -> None:
    done = cli(
        tmp_path,
        "new",
        "shop",
        "--defaults",
        "--json",
        "--data",
        f"alchemy_nb_source={CHECKOUT}",
    )
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    app = Path(made["path"])
    assert app == tmp_path / "shop"
    assert made["version"] == f"v{alchemy_nb.__version__}"
    answers = yaml.safe_load((app / ".copier-answers.yml").read_text())
    assert answers["_commit"] == made["version"]
    assert Path(answers["_src_path"]) == tmp_path / "cache" / "templates" / "app"
    assert git(app, "status", "--porcelain") == ""  # committed, ready for `copier update`

    # the program runs as a script, honouring STAGE (PHASE defaults to up)
    env = {**os.environ, "STAGE": "dev"}
    env.pop("PHASE", None)
    up = subprocess.run(
        [sys.executable, "alchemy_run.py"], cwd=app, env=env, capture_output=True, text=True
    )
    try:
        assert up.returncode == 0, up.stderr
        read = cli(app, "read", "--stage", "dev", "--json")
        url = json.loads(read.stdout)["outputs"]["url"]
        health = httpx.get(f"{url}/api/health", timeout=10)
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok" and body["timestamp"] and "release" in body
        assert httpx.get(f"{url}/api/items", timeout=10).json()[0]["name"] == "first item"
    finally:
        down = subprocess.run(
            [sys.executable, "alchemy_run.py"],
            cwd=app,
            env={**env, "PHASE": "destroy"},
            capture_output=True,
            text=True,
        )
    assert down.returncode == 0, down.stderr
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/api/health", timeout=2)


@pytest.mark.xdist_group("local-target")
def test_generated_apps_own_tests_pass(tmp_path: Path) -> None:
    made = new(
        "everything",
        dest=tmp_path / "everything",
        data={"alchemy_nb_source": CHECKOUT, **dict.fromkeys(RESOURCES, "true")},
        defaults=True,
    )
    done = run_app_tests(made.path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 passed" in done.stdout  # health, 404 and one per binding
    assert not list((made.path / ".alchemy").glob("*/pytest/state/*.json"))


def _tagged_template(repo: Path) -> None:
    shutil.copytree(TEMPLATE, repo, ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1.0.0")


def test_copier_update_to_the_next_tag_keeps_the_users_edits(tmp_path: Path) -> None:
    repo = tmp_path / "template"
    _tagged_template(repo)
    app = tmp_path / "app"
    copier.run_copy(str(repo), str(app), data={"app_name": "my-app"}, defaults=True, quiet=True)
    assert yaml.safe_load((app / ".copier-answers.yml").read_text())["_commit"] == "v1.0.0"
    git(app, "init", "-q")
    git(app, "add", "-A")
    git(app, "commit", "-q", "-m", "generated")
    # the user's edits
    worker = app / "src" / "worker.py"
    worker.write_text(worker.read_text() + "\n\n# my own helper\nANSWER = 42\n")
    (app / "notes.md").write_text("my notes\n")
    git(app, "add", "-A")
    git(app, "commit", "-q", "-m", "my edits")
    # the template's next version
    ignore = repo / "template" / ".gitignore"
    ignore.write_text(ignore.read_text() + "# added in v2\n.coverage\n")
    git(repo, "commit", "-q", "-am", "v2")
    git(repo, "tag", "v2.0.0")

    copier.run_update(str(app), defaults=True, overwrite=True, quiet=True)

    assert yaml.safe_load((app / ".copier-answers.yml").read_text())["_commit"] == "v2.0.0"
    assert ".coverage" in (app / ".gitignore").read_text()
    assert "ANSWER = 42" in worker.read_text()
    assert "<<<<<<<" not in worker.read_text()
    assert (app / "notes.md").read_text() == "my notes\n"


def test_alchemy_nb_update_follows_the_recorded_source(tmp_path: Path) -> None:
    made = new("my-app", dest=tmp_path / "app", data={"use_kv": "false"}, defaults=True)
    readme = made.path / "README.md"
    readme.write_text(readme.read_text() + "\nOur own section.\n")
    git(made.path, "commit", "-q", "-am", "edit")
    updated = update(made.path, data={"use_queue": "true"})
    assert updated.version == made.version
    assert updated.answers["use_queue"] is True and updated.answers["use_kv"] is False
    assert 'bindings["JOBS"]' in (made.path / "alchemy_run.py").read_text()
    assert "Our own section." in readme.read_text()
    # a dirty app is refused with copier's reason, translated
    readme.write_text("uncommitted\n")
    with pytest.raises(ConfigError, match="dirty"):
        update(made.path)
