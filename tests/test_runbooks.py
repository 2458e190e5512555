"""The promotion runbooks for real: papermill, a kernel on this interpreter, local workers.

The end-to-end flow shares one copy of the demo app (its stages destroyed at the end);
failure kinds and bad input use a small file-only app, so they need no workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli, run

import alchemy_nb
from alchemy_nb.errors import ConfigError, SecretError
from alchemy_nb.runbooks import (
    EXIT_BAD_INPUT,
    EXIT_DEAD_KERNEL,
    EXIT_FAILED,
    EXIT_TIMEOUT,
    ParameterError,
    PromoteParameters,
    check_parameters,
    publish,
    read_results,
    run_runbook,
    scrub_notebook,
)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"
RUNBOOKS = ROOT / "notebooks" / "runbooks"
TOKEN = "canary-api-token-7f3e9c1d"  # planted secrets: must appear nowhere
PASSWORD = "canary-password-2b8d4a60"
PARAM_SECRET = "canary-param-secret-51c0"

FAST_HEALTH = """
[stages.staging]
target = "local"
health = [{ worker = "api", path = "/api/health", expect_status = 200, deadline = "1s" }]

[stages.prod]
target = "local"
promote_from = "staging"
required_reviewers = 1
prevent_self_review = true
wait_timer = "0s"
approval_expiry = "30d"
health = [{ worker = "api", path = "/api/health", expect_status = 200, deadline = "1s" }]

[stages.prod.vars]
GREETING = "hello from prod"
"""


def env(actor: str, **extra: str) -> dict[str, str]:
    return {
        "ALCHEMY_ACTOR": actor,
        "ALCHEMY_BRANCH": "main",
        "API_TOKEN": TOKEN,
        "ALCHEMY_PASSWORD": PASSWORD,
        **extra,
    }


def runbook(folder: Path, *args: str, actor: str = "alice", **extra: str) -> tuple[int, dict, str]:
    proc = cli(folder, "runbook", *args, "--json", env=env(actor, **extra))
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, data, proc.stderr


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def notebook_text(data: dict) -> str:
    return Path(data["notebook"]).read_text()


# ------------------------------------------------------------------ the whole flow
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("runbook-demo")
    shutil.copytree(DEMO, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".alchemy"))
    (folder / "alchemy_nb.toml").write_text(FAST_HEALTH)
    program = folder / "alchemy_run.py"  # the app reads the planted token as a secret
    program.write_text(
        program.read_text()
        .replace(
            '"FILES": files}',
            '"FILES": files, **secret}',
        )
        .replace(
            "    api = Worker(",
            '    secret = {"TOKEN": alchemy_nb.Secret.env("API_TOKEN")}\n    api = Worker(',
        )
    )
    assert "Secret.env" in program.read_text()
    yield folder
    old = dict(os.environ)
    os.environ.update(env("alice"))
    try:
        app = alchemy_nb.load_program(program)
        for stage in ("prod", "staging"):
            run(app.destroy(stage))
    finally:
        os.environ.clear()
        os.environ.update(old)


@pytest.mark.xdist_group("local-target")
def test_deploy_approve_promote_break_rollback_end_to_end(demo: Path) -> None:
    out = demo / "artifacts"
    code, staged, err = runbook(demo, "deploy", "-p", "stage", "staging", "--out", str(out))
    assert code == 0, err
    release = staged["results"]["outcome"]["release"]
    assert staged["results"]["outcome"]["healthy"] is True
    assert Path(staged["notebook"]).parent == out
    assert Path(staged["notebook"]).name.startswith("staging-deploy-")
    assert read_results(staged["notebook"]) == staged["results"]

    # no approval yet: refused, one line, exit 1, notebook saved
    code, refused, err = runbook(demo, "promote", "-p", "to", "prod")
    assert code == EXIT_FAILED
    line = err.splitlines()[0]
    assert line.startswith("error: runbook promote failed in cell") and "GateError" in line
    assert "no approved gate" in line
    assert Path(refused["notebook"]).exists()

    code, approved, err = runbook(
        demo, "approve", "-p", "stage", "prod", "-p", "release", release[:12], actor="bob"
    )
    assert code == 0, err
    assert approved["results"]["gate"]["approvals"][0]["actor"] == "bob"

    code, promoted, err = runbook(demo, "promote", "-p", "to", "prod", "-p", "api_token", "x")
    assert code == EXIT_BAD_INPUT and "unknown parameter 'api_token'" in err  # not a parameter
    code, promoted, err = runbook(demo, "promote", "-p", "to", "prod")
    assert code == 0, err
    outcome = promoted["results"]["outcome"]
    assert outcome["release"] == release and outcome["healthy"]
    assert get_status(outcome["outputs"]["url"] + "/api/health") == 200

    # break the health endpoint and deploy prod directly: automatic rollback
    worker = demo / "src" / "worker.py"
    good = worker.read_text()
    worker.write_text(
        good.replace('if path == "/api/health":', 'if path == "/api/health":\n            1 / 0')
    )
    code, broken, err = runbook(demo, "deploy", "-p", "stage", "prod")
    assert code == EXIT_FAILED
    assert "RunbookFailed" in err and f"rolled back automatically to {release[:12]}" in err
    assert broken["results"]["outcome"]["rolled_back_to"] == release
    nb = json.loads(notebook_text(broken))
    assert any("papermill-error-cell-tag" in c["metadata"].get("tags", []) for c in nb["cells"])
    assert get_status(outcome["outputs"]["url"] + "/api/health") == 200  # the good one again

    # a new healthy release in staging, then a manual rollback to the first one
    worker.write_text(good + "\n# a harmless change\n")
    code, second, err = runbook(demo, "deploy", "-p", "stage", "staging")
    assert code == 0, err
    assert second["results"]["outcome"]["release"] != release
    code, back, err = runbook(demo, "rollback", "-p", "stage", "staging")
    assert code == 0, err
    assert back["results"]["outcome"]["release"] == release
    assert back["results"]["outcome"]["action"] == "rollback"

    # every run's notebook digest is in the ledger, under the action's kind
    ledger = (demo / ".alchemy/demo/ledger.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in ledger]
    recorded = {(e["kind"], e["data"].get("notebook_digest")) for e in events}
    for kind, data in [
        ("deploy", staged),
        ("promotion", refused),
        ("approval", approved),
        ("promotion", promoted),
        ("deploy", broken),
        ("rollback", back),
    ]:
        assert (kind, data["notebook_digest"]) in recorded
    for data in (staged, promoted, back):
        digest = "sha256:" + hashlib.sha256(Path(data["notebook"]).read_bytes()).hexdigest()
        assert digest == data["notebook_digest"]
    assert cli(demo, "ledger", "verify").stdout.strip() == "ledger OK"

    # the leak test: the planted secrets appear nowhere
    feed = cli(demo, "feed", "--format", "atom", env=env("alice")).stdout
    assert "<feed" in feed
    texts = {"feed": feed}
    for path in demo.rglob("*"):
        # the local workers' runtime configs (mode 0600) must hold the secret to serve it
        private = path.parent.name == "workers" and path.suffix == ".json"
        if path.is_file() and not private:
            texts[str(path)] = path.read_bytes().decode(errors="replace")
    assert any(p.endswith(".ipynb") for p in texts) and any(p.endswith(".log") for p in texts)
    assert any("ledger.jsonl" in p for p in texts) and any("state.json" in p for p in texts)
    for name, text in texts.items():
        for secret in (TOKEN, PASSWORD):
            assert secret not in text, f"{secret} leaked into {name}"


# ------------------------------------------------------- failure kinds and bad input
FILES_PROGRAM = """
import os, sys, time
from pathlib import Path
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("rbfiles")

@app.program
def infra(stage):
    File("f", path=f"out/{stage.name}.txt", content=(Path(__file__).parent / "v.txt").read_text())

if "ipykernel_launcher" in sys.argv[0]:  # only inside the runbook's kernel
    if os.environ.get("RUNBOOK_TEST") == "hang":
        time.sleep(120)
    if os.environ.get("RUNBOOK_TEST") == "die":
        os.kill(os.getpid(), 9)
"""

FILES_CONFIG = """
[stages.staging]
[stages.prod]
promote_from = "staging"
required_reviewers = 1
prevent_self_review = false
"""


@pytest.fixture
def files_app(tmp_path: Path) -> Path:
    (tmp_path / "alchemy_run.py").write_text(textwrap.dedent(FILES_PROGRAM))
    (tmp_path / "v.txt").write_text("v1")
    (tmp_path / "alchemy_nb.toml").write_text(FILES_CONFIG)
    return tmp_path


@pytest.mark.parametrize(
    ("mode", "args", "code", "needle", "cell"),
    [
        ("hang", ["--cell-timeout", "2"], EXIT_TIMEOUT, "longer than the cell timeout", "Open"),
        ("die", [], EXIT_DEAD_KERNEL, "the kernel died", "Open the app"),
        ("", ["-p", "release", "abcd1234"], EXIT_BAD_INPUT, "no release 'abcd1234'", "Promote"),
        ("", [], EXIT_FAILED, "GateError: no healthy release in 'staging'", "Promote"),
    ],
)
def test_each_failure_kind_has_its_exit_code_and_an_error_cell(
    files_app: Path, mode: str, args: list[str], code: int, needle: str, cell: str
) -> None:
    got, data, err = runbook(files_app, "promote", "-p", "to", "prod", *args, RUNBOOK_TEST=mode)
    kernel_log = Path(data["notebook"]).with_suffix(".kernel.log").read_text()
    assert TOKEN not in kernel_log and "without encryption" not in kernel_log
    assert got == code, err
    line = err.splitlines()[0]
    assert needle in line and f'"{cell}' in line, line
    assert "Traceback" not in err
    nb = json.loads(notebook_text(data))
    tags = {t for c in nb["cells"] for t in c["metadata"].get("tags", [])}
    assert tags & {"papermill-error-cell-tag", "alchemy-nb-error"}
    if code in (EXIT_TIMEOUT, EXIT_DEAD_KERNEL):
        assert nb["cells"][0]["id"] == "alchemy-nb-runbook-error"
        assert needle in nb["cells"][0]["source"]
    else:
        errors = [
            o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"
        ]
        assert errors and errors[0]["ename"] in ("GateError", "ConfigError")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["deplooy", "-p", "stage", "staging"], "unknown runbook 'deplooy'"),
        (["deploy"], "missing required parameter 'stage'"),
        (["deploy", "-p", "stag", "staging"], "unknown parameter 'stag' (did you mean 'stage'?)"),
        (
            ["approve", "-p", "stage", "prod", "-p", "release", "abcd", "-p", "decision", "yes"],
            "parameter 'decision'",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_the_notebook_is_saved(
    files_app: Path, args: list[str], needle: str
) -> None:
    code, data, err = runbook(files_app, *args)
    assert code == EXIT_BAD_INPUT, err
    lines = [line for line in err.splitlines() if not line.startswith("notebook: ")]
    assert len(lines) == 1 and needle in lines[0], err
    assert Path(data["notebook"]).is_file()


def test_wrong_types_as_papermill_would_pass_them(files_app: Path) -> None:
    result = run_runbook("promote", {"to": "prod", "release": 1.1}, app_dir=files_app)
    assert result.exit_code == EXIT_BAD_INPUT
    assert "parameter 'release' must be a string, not float 1.1" in result.message
    assert result.notebook is not None and result.notebook.is_file()


def test_parameter_contract_checks() -> None:
    params = check_parameters(PromoteParameters, {"to": "prod", "release": None, "os": os})
    assert params.to == "prod" and params.release is None and params.app_dir == "."
    with pytest.raises(ParameterError, match=r"unknown parameter 'too'.*missing required"):
        check_parameters(PromoteParameters, {"too": "prod"})
    assert issubclass(ParameterError, ConfigError)


# ------------------------------------------------------------------ glue and scrub
def test_publish_and_read_results_round_trip(tmp_path: Path) -> None:
    import papermill as pm

    from alchemy_nb.runbooks import ensure_kernelspec

    nb_path = tmp_path / "glue.ipynb"
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(
        cells=[
            new_code_cell(
                "from alchemy_nb.runbooks import publish\n"
                "publish('outcome', {'release': 'abc', 'n': [1, 2.5, None, True]})\n"
                "publish('line', 'first')\npublish('line', 'last')"
            )
        ]
    )
    nbformat.write(nb, nb_path)
    kernel = ensure_kernelspec(tmp_path / "kernels")
    pm.execute_notebook(
        str(nb_path),
        str(tmp_path / "out.ipynb"),
        kernel_name=kernel.name,
        progress_bar=False,
        **kernel.engine_kwargs(tmp_path / "k.log"),
    )
    assert read_results(tmp_path / "out.ipynb") == {
        "outcome": {"release": "abc", "n": [1, 2.5, None, True]},
        "line": "last",
    }


def test_publish_refuses_secrets_and_non_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-123456")
    with pytest.raises(SecretError):
        publish("x", {"a": alchemy_nb.Secret("s")})
    with pytest.raises(SecretError):
        publish("x", ["prefix tok-123456 suffix"])
    with pytest.raises(ConfigError, match="not JSON"):
        publish("x", {"a": object()})


def test_scrub_masks_secret_values_and_parameter_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SECRET_KEY", "value-9x9x9x")
    nb = {
        "cells": [{"source": 'api_token = "p-4242"\nx = "value-9x9x9x"', "outputs": []}],
        "metadata": {
            "papermill": {
                "parameters": {"api_token": "p-4242", "stage": "prod"},
                "environment_variables": {"MY_SECRET_KEY": "value-9x9x9x"},
            }
        },
    }
    text = json.dumps(scrub_notebook(nb, {"api_token": "p-4242", "stage": "prod"}))
    assert "p-4242" not in text and "value-9x9x9x" not in text
    assert '"stage": "prod"' in text


# ------------------------------------------------------------------------ notebooks
def test_committed_runbooks_are_generated_and_without_outputs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_runbooks.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    for path in sorted(RUNBOOKS.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code)
        assert [c["metadata"].get("tags") for c in code[:1]] == [["parameters"]]
        assert "check_parameters" in "".join(code[1]["source"])


def test_nbval_runs_the_runbooks(files_app: Path, tmp_path: Path) -> None:
    import papermill as pm

    first = run_runbook("deploy", {"stage": "staging"}, app_dir=files_app)
    assert first.ok, first.message
    (files_app / "v.txt").write_text("v2")
    app = alchemy_nb.load_program(files_app / "alchemy_run.py")
    from alchemy_nb.promotion import Pipeline

    second = run(Pipeline(app).plan("staging"))
    assert second.has_changes
    folder = tmp_path / "nbval"
    folder.mkdir()
    steps = [
        ("deploy", {"stage": "staging"}),
        ("approve", {"stage": "prod", "release": None}),
        ("promote", {"to": "prod"}),
        ("rollback", {"stage": "staging"}),
    ]
    for i, (name, params) in enumerate(steps):
        if name == "approve":  # the release the first step deploys (v2)
            params = {"stage": "prod", "release": _release_of(files_app, app)}
        pm.execute_notebook(
            str(RUNBOOKS / f"{name}.ipynb"),
            str(folder / f"{i}_{name}.ipynb"),
            parameters={**params, "app_dir": str(files_app)},
            prepare_only=True,
            progress_bar=False,
        )
    (folder / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-p",
            "no:randomly",
            "--nbval-lax",
            "--nbval-current-env",
            "-W",
            "error::DeprecationWarning",
            str(folder),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "ALCHEMY_ACTOR": "carol", "ALCHEMY_BRANCH": "main"},
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout
    assert (files_app / "out" / "prod.txt").read_text() == "v2"
    assert (files_app / "out" / "staging.txt").read_text() == "v1"  # rolled back


def _release_of(folder: Path, app: alchemy_nb.App) -> str:
    from alchemy_nb.promotion import Pipeline

    pipeline = Pipeline(app)
    files, _ = pipeline._release_files([])
    return str(pipeline.records.release_id(files))
