"""The opt-in warm start (ALCHEMY_NB_SERVER=1): same behaviour as a plain command."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import interactive, write_program

from alchemy_nb._process import process_start_marker

PROGRAM = """
import asyncio, json, os
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("srv")

@app.program
async def infra(stage):
    seen = {"pid": os.getpid(), "cwd": os.getcwd(), "custom": os.environ.get("CUSTOM"),
            "via": os.environ.get("ALCHEMY_NB_SERVER_CHILD")}
    with open("seen.json", "w") as fh:
        fh.write(json.dumps(seen))
    if os.environ.get("SLOW"):
        await asyncio.sleep(float(os.environ["SLOW"]))
    f = File("f", path="out/f.txt", content=os.environ.get("CONTENT", "x"))
    return {"path": f.path}
"""


@pytest.fixture
def server_env() -> Iterator[dict[str, str]]:
    runtime = tempfile.mkdtemp(prefix="anb")  # short: a socket path has a length limit
    env = {
        **os.environ,
        "ALCHEMY_NB_SERVER": "1",
        "XDG_RUNTIME_DIR": runtime,
        "ALCHEMY_NB_SERVER_IDLE": "30",
    }
    yield env
    for pid_file in Path(runtime).rglob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
    shutil.rmtree(runtime, ignore_errors=True)


def run(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alchemy_nb", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_for_server(env: dict[str, str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if list(Path(env["XDG_RUNTIME_DIR"]).rglob("*.sock")):
            return
        time.sleep(0.05)
    raise AssertionError("the server did not start")


def test_commands_behave_the_same_through_the_server(tmp_path: Path, server_env) -> None:
    write_program(tmp_path, PROGRAM)
    first = run(tmp_path, server_env, "plan", "--json")  # runs here, starts the server
    assert first.returncode == 0, first.stderr
    assert json.loads((tmp_path / "seen.json").read_text())["via"] is None
    wait_for_server(server_env)

    env = {**server_env, "CUSTOM": "passed through", "CONTENT": "hello"}
    deploy = run(tmp_path, env, "deploy", "--json")
    assert deploy.returncode == 0, deploy.stderr
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["via"] == "1"  # it really ran in a server child
    assert seen["custom"] == "passed through"
    assert Path(seen["cwd"]) == tmp_path
    assert json.loads(deploy.stdout)["counts"]["create"] == 1  # stdout passed through
    assert "created fs::File f" in deploy.stderr  # so is stderr
    assert (tmp_path / "out/f.txt").read_text() == "hello"

    bad = run(tmp_path, server_env, "read", "--stage", "bad stage")
    assert bad.returncode == 2
    assert "invalid stage name" in bad.stderr
    usage = run(tmp_path, server_env, "deploi")
    assert usage.returncode == 2


def test_killing_the_command_kills_its_server_child(tmp_path: Path, server_env) -> None:
    write_program(tmp_path, PROGRAM)
    assert run(tmp_path, server_env, "plan").returncode == 0
    wait_for_server(server_env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "alchemy_nb", "deploy"],
        cwd=tmp_path,
        env={**server_env, "SLOW": "30"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen = tmp_path / "seen.json"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if seen.exists() and json.loads(seen.read_text() or "{}").get("via"):
            break
        time.sleep(0.05)
    child = json.loads(seen.read_text())["pid"]
    assert child != proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
        time.sleep(0.02)
    assert not Path(f"/proc/{child}").exists()
    # and the stage is usable right away: the dead child's lock is taken over
    assert run(tmp_path, server_env, "deploy").returncode == 0


def test_ctrl_c_reaches_the_server_child(tmp_path: Path, server_env) -> None:
    write_program(tmp_path, PROGRAM)
    assert run(tmp_path, server_env, "plan").returncode == 0
    wait_for_server(server_env)
    seen = tmp_path / "seen.json"
    seen.unlink()
    proc = subprocess.Popen(
        [sys.executable, "-m", "alchemy_nb", "deploy"],
        cwd=tmp_path,
        env={**server_env, "SLOW": "30"},
        preexec_fn=interactive,  # Ctrl-C works, as in a terminal
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (seen.exists() and seen.read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "interrupted" in err


def test_a_killed_server_is_replaced(tmp_path: Path, server_env) -> None:
    write_program(tmp_path, PROGRAM)
    assert run(tmp_path, server_env, "plan").returncode == 0
    wait_for_server(server_env)
    (pid_file,) = Path(server_env["XDG_RUNTIME_DIR"]).rglob("*.pid")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    time.sleep(0.2)
    # its spare may still take a command, then no one listens: the command runs here
    assert run(tmp_path, server_env, "plan").returncode == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        again = run(tmp_path, server_env, "plan")
        assert again.returncode == 0
        if json.loads((tmp_path / "seen.json").read_text())["via"]:
            return
        time.sleep(0.1)
    raise AssertionError("no new server took over the socket")


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            data = stat.read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != b"Z":
            found.append(int(stat.parent.name))
    return found


def test_a_spare_child_waits_for_the_next_command_and_never_outlives_its_server(
    tmp_path: Path, server_env
) -> None:
    write_program(tmp_path, PROGRAM)
    assert run(tmp_path, server_env, "plan").returncode == 0
    wait_for_server(server_env)
    (pid_file,) = Path(server_env["XDG_RUNTIME_DIR"]).rglob("*.pid")
    server = int(pid_file.read_text())

    def the_spare(besides: int = 0) -> int:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            spares = set(children_of(server)) - {besides}
            if len(spares) == 1:  # one spare at a time, forked ahead of the next command
                return spares.pop()
            time.sleep(0.02)  # none yet, or the last command's child still exiting
        raise AssertionError("the server has no spare child")

    spare = the_spare()
    assert run(tmp_path, server_env, "plan").returncode == 0
    assert json.loads((tmp_path / "seen.json").read_text())["pid"] == spare  # it ran that one
    # a spare that dies before taking a command is replaced
    second = the_spare()
    os.kill(second, signal.SIGKILL)
    third = the_spare(besides=second)
    assert run(tmp_path, server_env, "plan").returncode == 0
    assert json.loads((tmp_path / "seen.json").read_text())["pid"] == third
    # when the server is killed, its spare goes too
    last = the_spare()
    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while process_start_marker(last) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_start_marker(last)  # exited (a zombie nobody reaped counts as gone)


@pytest.mark.parametrize(
    ("env", "argv", "expected"),
    [
        ({}, ["deploy"], True),  # auto: the short engine commands
        ({}, ["plan", "--json"], True),
        ({}, ["status"], True),
        ({}, ["dev"], False),  # runs for hours: nothing to gain
        ({}, ["cloudflare", "login"], False),  # prompts: needs the caller's terminal
        ({}, [], False),
        ({}, ["--version"], False),
        ({"CI": "true"}, ["deploy"], False),  # a CI job's processes end with the job
        ({"CI": "0"}, ["deploy"], True),
        ({"ALCHEMY_NB_SERVER": "0"}, ["deploy"], False),
        ({"ALCHEMY_NB_SERVER": "off"}, ["deploy"], False),
        ({"ALCHEMY_NB_SERVER": "auto"}, ["deploy"], True),
        ({"ALCHEMY_NB_SERVER": "1", "CI": "true"}, ["dev"], True),  # asked for: everything
        ({"ALCHEMY_NB_SERVER": "1", "ALCHEMY_NB_SERVER_CHILD": "1"}, ["deploy"], False),
        ({"ALCHEMY_NB_SERVER": "sometimes"}, ["deploy"], False),  # unknown: never a surprise
    ],
)
def test_which_commands_use_the_server(
    env: dict[str, str], argv: list[str], expected: bool
) -> None:
    from alchemy_nb.cli import use_server

    assert use_server(argv, env) is expected


@pytest.mark.parametrize("setting", ["auto", "1"])
def test_only_linux_runs_commands_through_the_server(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    from alchemy_nb.cli import use_server

    monkeypatch.setattr(sys, "platform", "darwin")  # no SO_PEERCRED to know the caller by
    assert use_server(["deploy"], {"ALCHEMY_NB_SERVER": setting}) is False


def test_auto_is_the_default_outside_ci(tmp_path: Path, server_env) -> None:
    env = {k: v for k, v in server_env.items() if k not in ("ALCHEMY_NB_SERVER", "CI")}
    write_program(tmp_path, PROGRAM)
    first = run(tmp_path, env, "deploy", "--json")  # runs here, starts the server
    assert first.returncode == 0, first.stderr
    assert json.loads((tmp_path / "seen.json").read_text())["via"] is None
    wait_for_server(server_env)
    second = run(tmp_path, {**env, "CONTENT": "y"}, "deploy", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads((tmp_path / "seen.json").read_text())["via"] == "1"
    assert json.loads(second.stdout)["counts"]["update"] == 1
    assert (tmp_path / "out" / "f.txt").read_text() == "y"


def test_a_different_python_setting_gets_its_own_server(tmp_path: Path, server_env) -> None:
    """The server's imports must be the caller's: a changed PYTHONPATH is another server."""
    extra = tmp_path / "lib"
    extra.mkdir()
    (extra / "helper_mod.py").write_text("VALUE = 'from the caller path'\n")
    write_program(
        tmp_path,
        PROGRAM.replace("import alchemy_nb\n", "import alchemy_nb, helper_mod\n").replace(
            '"custom": os.environ.get("CUSTOM")', '"custom": helper_mod.VALUE'
        ),
    )
    plain = {**server_env, "PYTHONPATH": str(extra)}
    assert run(tmp_path, plain, "deploy").returncode == 0
    wait_for_server(server_env)
    other = tmp_path / "lib2"
    other.mkdir()
    (other / "helper_mod.py").write_text("VALUE = 'from another path'\n")
    again = run(tmp_path, {**server_env, "PYTHONPATH": str(other)}, "deploy")
    assert again.returncode == 0, again.stderr
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["custom"] == "from another path"
    assert seen["via"] is None  # no server for this setting yet: it ran here
    assert len(list(Path(server_env["XDG_RUNTIME_DIR"]).rglob("*.sock"))) >= 1
