"""The `alchemy-nb` command as a user runs it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, write_program

HELLO = """
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("hello")

@app.program
def infra(stage):
    greeting = File("greeting", path="out/hello.txt", content=f"hello from {stage.name}")
    return {"path": greeting.path}
"""

COUNT_KEYS = {"create", "update", "replace", "delete", "noop"}


def one_json(proc: subprocess.CompletedProcess[str]) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    write_program(tmp_path, HELLO)
    return tmp_path


def test_plan_deploy_read_destroy_print_one_json_object(hello: Path) -> None:
    plan = one_json(cli(hello, "plan", "--json"))
    assert {"app", "stage", "phase", "counts"} <= set(plan)
    assert plan["counts"]["create"] == 1 and set(plan["counts"]) == COUNT_KEYS
    assert (plan["app"], plan["stage"], plan["phase"]) == ("hello", "dev", "up")

    deploy = cli(hello, "deploy", "--json")
    assert deploy.returncode == 0, deploy.stderr
    data = one_json(deploy)
    assert {"app", "stage", "phase", "counts", "outputs"} <= set(data)
    assert data["counts"] == {"create": 1, "update": 0, "replace": 0, "delete": 0, "noop": 0}
    assert data["outputs"] == {"path": "out/hello.txt"}
    assert "created fs::File greeting" in deploy.stderr  # progress goes to stderr
    assert (hello / "out/hello.txt").read_text() == "hello from dev"

    again = one_json(cli(hello, "deploy", "--json"))
    assert again["counts"]["noop"] == 1 and again["counts"]["create"] == 0

    read = one_json(cli(hello, "read", "--json"))
    assert read["outputs"] == {"path": "out/hello.txt"} and read["phase"] == "read"

    status = one_json(cli(hello, "status", "--json"))
    assert status["resources"] == [
        {
            "id": "greeting",
            "kind": "fs::File",
            "status": "created",
            "updated": status["resources"][0]["updated"],
        }
    ]

    destroy = one_json(cli(hello, "destroy", "--json"))
    assert destroy["counts"]["delete"] == 1 and destroy["phase"] == "destroy"
    assert not (hello / "out/hello.txt").exists()


def test_stage_comes_from_flag_then_stage_then_alchemy_stage(hello: Path) -> None:
    assert one_json(cli(hello, "plan", "--json", env={"ALCHEMY_STAGE": "a"}))["stage"] == "a"
    assert (
        one_json(cli(hello, "plan", "--json", env={"ALCHEMY_STAGE": "a", "STAGE": "b"}))["stage"]
        == "b"
    )
    assert (
        one_json(cli(hello, "plan", "--json", "--stage", "c", env={"STAGE": "b"}))["stage"] == "c"
    )


def test_human_output_and_saved_plans(hello: Path) -> None:
    plan = cli(hello, "plan", "--out", "plan.json")
    assert plan.returncode == 0
    assert "+ fs::File greeting" in plan.stdout
    assert "1 to create" in plan.stdout
    deploy = cli(hello, "deploy", "--plan", "plan.json")
    assert deploy.returncode == 0, deploy.stderr
    assert "path = out/hello.txt" in deploy.stdout
    stale = cli(hello, "deploy", "--plan", "plan.json")
    assert stale.returncode == 1
    assert "state changed since the plan was made" in stale.stderr
    assert "Traceback" not in stale.stderr


def test_program_flag_points_at_another_folder(tmp_path: Path) -> None:
    app_dir = tmp_path / "apps" / "one"
    app_dir.mkdir(parents=True)
    write_program(app_dir, HELLO, name="infra.py")
    proc = cli(tmp_path, "deploy", "--program", "apps/one/infra.py")
    assert proc.returncode == 0, proc.stderr
    # relative paths and state live beside the program, not in the current directory
    assert (app_dir / "out/hello.txt").exists()
    assert (app_dir / ".alchemy/hello/dev/state.json").exists()


@pytest.mark.parametrize(
    ("program", "code", "needle"),
    [
        (None, 2, "no program file at"),
        ("def broken(:\n", 2, "syntax error"),
        ("import alchemy_nb\n", 2, "has no module-level `app`"),
        ("import alchemy_nb\napp = alchemy_nb.App('x')\n", 2, "has no program"),
        ("raise RuntimeError('at import')\n", 1, "RuntimeError: at import"),
        (
            HELLO.replace("greeting = File(", "raise KeyError('oops')\n    greeting = File("),
            1,
            "the program raised KeyError",
        ),
        (HELLO.replace('content=f"hello', 'contnt=f"hello'), 2, "did you mean 'content'"),
        (HELLO.replace('File("greeting"', 'File("bad id!"'), 2, "invalid resource id"),
        (
            HELLO.replace("    return", '    File("greeting", path="x")\n    return'),
            2,
            "declared twice",
        ),
    ],
    ids=[
        "missing",
        "syntax",
        "no-app",
        "no-program",
        "raises-on-import",
        "program-raises",
        "mistyped-prop",
        "invalid-id",
        "duplicate-id",
    ],
)
def test_bad_programs_get_one_paragraph_and_an_exit_code(
    tmp_path: Path, program: str | None, code: int, needle: str
) -> None:
    if program is not None:
        write_program(tmp_path, program)
    for args in (["deploy"], ["deploy", "--json"]):
        proc = cli(tmp_path, *args)
        assert proc.returncode == code, proc.stderr
        assert needle in proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("error: ")
        if "--json" in args:
            assert one_json(proc)["ok"] is False
    assert not (tmp_path / ".alchemy/hello/dev/state.json").exists()
    debug = cli(tmp_path, "deploy", "--debug")
    if code == 1:
        assert "Traceback" in debug.stderr


def test_usage_errors_exit_2_with_help(hello: Path) -> None:
    assert cli(hello, "deploi").returncode == 2
    assert cli(hello, "deploy", "--concurrency", "zero").returncode == 2
    proc = cli(hello, "deploy", "--concurrency", "0")
    assert proc.returncode == 2 and "at least 1" in proc.stderr
    assert cli(hello).returncode == 2
    helped = cli(hello, "--help")
    assert helped.returncode == 0
    for word in ("plan", "deploy", "read", "destroy", "status", "unlock", "ALCHEMY_PASSWORD"):
        assert word in helped.stdout
    sub = cli(hello, "deploy", "--help")
    for flag in ("--stage", "--program", "--json", "--debug", "--plan", "--concurrency"):
        assert flag in sub.stdout


def test_read_before_deploy_fails_clearly(hello: Path) -> None:
    proc = cli(hello, "read")
    assert proc.returncode == 1
    assert "not deployed in stage 'dev'" in proc.stderr
    assert "alchemy-nb deploy --stage dev" in proc.stderr


def test_python_alchemy_run_honours_phase_and_stage(hello: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PHASE", "STAGE")}

    def script(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "alchemy_run.py"],
            cwd=hello,
            text=True,
            capture_output=True,
            env={**env, **extra},
            timeout=60,
        )

    up = script(STAGE="qa")
    assert up.returncode == 0, up.stderr
    assert "up hello/qa: 1 created" in up.stderr
    assert (hello / "out/hello.txt").read_text() == "hello from qa"
    read = script(STAGE="qa", PHASE="read")
    assert read.returncode == 0 and "path = out/hello.txt" in read.stdout
    gone = script(STAGE="qa", PHASE="destroy")
    assert gone.returncode == 0 and "1 deleted" in gone.stderr
    assert not (hello / "out/hello.txt").exists()
    bad = script(PHASE="explode")
    assert bad.returncode == 2 and "unknown PHASE 'explode'" in bad.stderr


def test_a_script_that_raises_does_not_deploy(hello: Path) -> None:
    program = hello / "alchemy_run.py"
    program.write_text(program.read_text() + "\nraise SystemExit('stopped on purpose')\n")
    proc = subprocess.run(
        [sys.executable, "alchemy_run.py"], cwd=hello, text=True, capture_output=True, timeout=60
    )
    assert proc.returncode == 1
    assert not (hello / "out/hello.txt").exists()


def test_explicit_app_run_is_not_repeated_at_exit(hello: Path) -> None:
    program = hello / "alchemy_run.py"
    program.write_text(program.read_text() + "\nif __name__ == '__main__':\n    app.run()\n")
    proc = subprocess.run(
        [sys.executable, "alchemy_run.py"], cwd=hello, text=True, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert (hello / ".alchemy/hello/dev/state.json").exists()
    assert "unchanged" not in proc.stderr  # one run only, not a second no-op


def test_module_entry_point_and_version(hello: Path) -> None:
    proc = cli(hello, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("alchemy-nb ")
