"""Secrets: masked in every repr and output, sealed in state, a clear error without password."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from conftest import cli, run, write_program
from things import Thing

import alchemy_nb
from alchemy_nb.errors import SecretError

PLAIN = "hunter2-very-secret-value"
PLAIN_B = PLAIN.encode()


def secret_app(tmp_path: Path, password: str | None = "pw-1") -> alchemy_nb.App:
    app = alchemy_nb.App("sec", root=tmp_path, password=password)

    @app.program
    def infra(stage):
        t = Thing("t", value="visible", token=alchemy_nb.Secret(PLAIN))
        return {"token": alchemy_nb.Secret(PLAIN), "value": t.value}

    return app


def all_state_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (tmp_path / ".alchemy").rglob("*") if p.is_file())


def test_secret_repr_never_shows_the_value() -> None:
    s = alchemy_nb.Secret(PLAIN)
    named = alchemy_nb.Secret(PLAIN, name="API_TOKEN")
    for text in (
        repr(s),
        str(s),
        f"{s}",
        f"{s!r}",
        repr([s]),
        repr({"k": s}),
        str(s._repr_mimebundle_()),
        repr(named),
    ):
        assert PLAIN not in text
    assert s.reveal() == PLAIN
    with pytest.raises(SecretError):
        pickle.dumps(s)


def test_secret_env_reads_or_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TOKEN", PLAIN)
    assert alchemy_nb.Secret.env("MY_TOKEN").reveal() == PLAIN
    monkeypatch.delenv("MY_TOKEN")
    with pytest.raises(SecretError, match="MY_TOKEN is not set"):
        alchemy_nb.Secret.env("MY_TOKEN")


def test_secrets_are_sealed_in_state_and_masked_in_results(tmp_path: Path) -> None:
    app = secret_app(tmp_path)
    result = run(app.deploy("dev"))
    assert PLAIN_B not in all_state_bytes(tmp_path)
    record = json.loads((tmp_path / ".alchemy/sec/dev/state.json").read_text())
    assert set(record["resources"]["t"]["props"]["token"]) == {"@secret"}
    assert PLAIN not in json.dumps(result.to_json())
    assert result.to_json()["outputs"]["token"] == "••••••"
    assert result.outputs["token"].reveal() == PLAIN  # the library user still gets the value
    plan = run(app.plan("dev"))
    assert PLAIN not in json.dumps(plan.to_json()) and PLAIN not in plan.render_text()
    assert run(app.read("dev")).outputs["token"].reveal() == PLAIN


def test_an_unchanged_secret_is_a_noop_and_a_changed_one_an_update(tmp_path: Path, journal) -> None:
    value = {"v": PLAIN}
    app = alchemy_nb.App("sec", root=tmp_path, password="pw")

    @app.program
    def infra(stage):
        Thing("t", token=alchemy_nb.Secret(value["v"]))

    run(app.deploy("dev"))
    journal.calls.clear()
    assert run(app.deploy("dev")).counts["noop"] == 1
    value["v"] = "rotated"
    plan = run(app.plan("dev"))
    assert plan.changes[0].action == "update"
    assert plan.changes[0].fields[0].before == "••••••"
    assert run(app.deploy("dev")).counts["update"] == 1


def test_missing_password_is_a_clear_error(tmp_path: Path) -> None:
    app = secret_app(tmp_path, password=None)
    with pytest.raises(SecretError, match="ALCHEMY_PASSWORD"):
        run(app.deploy("dev"))
    assert not (tmp_path / ".alchemy/sec/dev/state.json").exists()


def test_wrong_password_is_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    run(secret_app(tmp_path, "right").deploy("dev"))
    before = all_state_bytes(tmp_path)
    with pytest.raises(SecretError, match="password does not open"):
        run(secret_app(tmp_path, "wrong").deploy("dev"))
    with pytest.raises(SecretError, match="password does not open"):
        run(secret_app(tmp_path, "wrong").destroy("dev"))
    assert all_state_bytes(tmp_path) == before
    assert run(secret_app(tmp_path, "right").destroy("dev")).counts["delete"] == 1


PROGRAM = """
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("secret-cli")

@app.program
def infra(stage):
    token = alchemy_nb.Secret.env("API_TOKEN")
    f = File("cfg", path="out/cfg.txt", content="no secret here")
    print("declared", token, f)
    return {"token": token, "path": f.path}
"""


def test_secrets_stay_out_of_cli_output_and_state(tmp_path: Path) -> None:
    write_program(tmp_path, PROGRAM)
    env = {"API_TOKEN": PLAIN, "ALCHEMY_PASSWORD": "pw"}
    outputs = []
    for args in (
        ["plan", "--json"],
        ["deploy", "--json"],
        ["deploy"],
        ["read", "--json"],
        ["read"],
        ["status", "--json"],
        ["status"],
        ["destroy", "--json"],
    ):
        proc = cli(tmp_path, *args, env=env)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout + proc.stderr)
        if args[0] == "deploy":
            assert PLAIN_B not in all_state_bytes(tmp_path)
    joined = "\n".join(outputs)
    assert PLAIN not in joined
    assert "••••••" in joined
    proc = cli(tmp_path, "deploy", env={"API_TOKEN": PLAIN})
    assert proc.returncode == 1
    assert "ALCHEMY_PASSWORD" in proc.stderr and "Traceback" not in proc.stderr


def test_plans_of_a_program_with_secrets_are_stable_before_the_first_deploy(
    tmp_path: Path,
) -> None:
    """A gate binds to a plan digest: two plans of the same program and state must agree,
    even before the stage holds any secret (and so any salt) of its own."""
    app = secret_app(tmp_path)
    first, second = run(app.plan("prod")), run(app.plan("prod"))
    assert first.digest == second.digest
    run(app.deploy("prod", plan=second))  # the saved plan applies
    assert run(app.plan("prod")).digest == run(app.plan("prod")).digest
