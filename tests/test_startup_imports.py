"""A command imports what it uses and builds only its own parser, so a fresh `alchemy-nb`
process starts quickly; `--help` and a misspelt command still name every command.

The imports are checked in real processes: a tiny launcher runs the `alchemy-nb` entry point
and writes the interpreter's ``sys.modules`` to a file when the process exits. No timings.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_program

from alchemy_nb import __version__
from alchemy_nb.cli import _main, main

LAUNCHER = """\
import atexit
import os
import sys


def _report():
    with open(os.environ["MODULES_OUT"], "w") as fh:
        fh.write("\\n".join(sorted(sys.modules)))


atexit.register(_report)
sys.argv = ["alchemy-nb", *sys.argv[1:]]
from alchemy_nb.cli import main

raise SystemExit(main())
"""

FILES = """
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("lean")

@app.program
def infra(stage):
    first = File("first", path="out/first.txt", content="one")
    File("second", path="out/second.txt", content=first.content)
"""

# What a deploy or destroy of files with the default (file) state store never needs. Not
# listed: importlib.metadata (and what it brings: zipfile, shutil, email, ...), which
# pydantic imports to look for plugins when it builds the first model of any process.
NOT_ON_THE_FILES_PATH = {
    "sqlite3": "the SQLite state store and `alchemy-nb d1`",
    "urllib.request": "health probes",
    "http.client": "health probes",
    "difflib": "the suggestion for a misspelt prop",
    "tomllib": "a configuration file (this app has none)",
    "xml.etree.ElementTree": "the ledger's RSS and Atom feeds",
    "alchemy_nb.display": "displays, in a kernel or on a terminal",
    "alchemy_nb.cloudflare": "programs declaring Cloudflare resources",
    "alchemy_nb.fs._folder": "programs declaring folders",
    "alchemy_nb.state._sqlite": "--state sqlite:///...",
    "alchemy_nb.state._postgres": "--state postgresql://...",
    "alchemy_nb.promotion._policy": "promotions, approvals and rollbacks",
    "alchemy_nb.cli._d1": "`alchemy-nb d1`",
    "alchemy_nb.cli._promotion": "the promotion commands",
    "alchemy_nb.cli._runbook": "`alchemy-nb runbook`",
    "alchemy_nb.cli._scaffold": "`alchemy-nb new` and `update`",
    "alchemy_nb.wrangler._cli": "`alchemy-nb import` and `export`",
}
COMMAND_MODULES = {
    "alchemy_nb.cli._cloudflare",
    "alchemy_nb.cli._d1",
    "alchemy_nb.cli._promotion",
    "alchemy_nb.cli._runbook",
    "alchemy_nb.cli._scaffold",
    "alchemy_nb.cli._state",
    "alchemy_nb.wrangler._cli",
}


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STAGE", "ALCHEMY_STAGE", "ALCHEMY_PASSWORD")
    }
    env["ALCHEMY_NB_SERVER"] = "0"  # a cold start, in the process the test watches
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """What this interpreter imports before running anything (site hooks included)."""
    out = tmp_path_factory.mktemp("bare") / "modules.txt"
    code = "import sys; open(sys.argv[1], 'w').write('\\n'.join(sorted(sys.modules)))"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=_env(), timeout=60)
    return set(out.read_text().split())


def imported(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `alchemy-nb ARGS` in a fresh process in ``folder``; its result and modules."""
    launcher = folder / "launch_alchemy_nb.py"
    launcher.write_text(LAUNCHER)
    out = folder / "modules.txt"
    proc = subprocess.run(
        [sys.executable, str(launcher), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=_env(MODULES_OUT=str(out)),
        timeout=120,
    )
    return proc, set(out.read_text().split())


def test_deploy_and_destroy_of_files_import_only_what_they_use(
    tmp_path: Path, bare: set[str]
) -> None:
    write_program(tmp_path, FILES)
    deploy, modules = imported(tmp_path, "deploy", "--stage", "lean", "--quiet")
    assert deploy.returncode == 0, deploy.stderr
    assert (tmp_path / "out/second.txt").read_text() == "one"
    # the launcher saw the whole run: the engine, the file kind and the ledger's record
    assert {"alchemy_nb.engine", "alchemy_nb.fs._file", "alchemy_nb.promotion._ledger"} <= modules
    loaded = {name: why for name, why in NOT_ON_THE_FILES_PATH.items() if name in modules - bare}
    assert not loaded, f"a deploy of files imported modules only these need: {loaded}"

    destroy, modules = imported(tmp_path, "destroy", "--stage", "lean", "--quiet")
    assert destroy.returncode == 0, destroy.stderr
    assert not (tmp_path / "out/first.txt").exists()
    assert "alchemy_nb.fs._file" in modules
    loaded = {name: why for name, why in NOT_ON_THE_FILES_PATH.items() if name in modules - bare}
    assert not loaded, f"a destroy of files imported modules only these need: {loaded}"


COLLECTED = """
import gc
import json
import os

import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("collected")
DELETED = []


class Cycle:
    def __init__(self):
        self.me = self

    def __del__(self):
        DELETED.append(1)


@app.program
def infra(stage):
    File("f", path="out/f.txt", content="f")
    seen = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count() > 0}
    for _ in range(20_000):
        Cycle()  # garbage at once, for the collector to find on its own
    seen["collected_by_itself"] = len(DELETED)
    gc.collect()
    seen["collected_in_the_end"] = len(DELETED)
    with open(os.environ["SEEN_OUT"], "w") as fh:
        json.dump(seen, fh)
"""


def test_the_users_program_gets_a_collector_as_usual(tmp_path: Path) -> None:
    """A fresh command freezes what its start-up imported, then the user's program runs
    with the collector on, and its garbage is collected as usual."""
    write_program(tmp_path, COLLECTED)
    out = tmp_path / "seen.json"
    proc = subprocess.run(
        [sys.executable, "-m", "alchemy_nb", "deploy", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(SEEN_OUT=str(out)),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(out.read_text())
    assert seen["enabled"] and seen["frozen"]
    assert seen["collected_by_itself"] > 0
    assert seen["collected_in_the_end"] == 20_000


def test_main_called_from_python_leaves_the_collector_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_program(tmp_path, FILES)
    frozen = gc.get_freeze_count()
    code = main(["status", "--json", "--program", str(tmp_path / "alchemy_run.py")])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_version_imports_no_command_asyncio_or_pydantic(tmp_path: Path, bare: set[str]) -> None:
    proc, modules = imported(tmp_path, "--version")
    assert (proc.returncode, proc.stdout) == (0, f"alchemy-nb {__version__}\n")
    heavy = {"asyncio", "pydantic", "alchemy_nb.engine", *COMMAND_MODULES}
    assert not heavy & (modules - bare)


def test_help_still_loads_and_names_every_command(tmp_path: Path) -> None:
    proc, modules = imported(tmp_path, "--help")
    assert proc.returncode == 0
    assert modules >= COMMAND_MODULES
    listed = proc.stdout.split("COMMAND", 1)[1]
    for name in _all_commands():
        assert f"\n    {name} " in listed or f"\n    {name}\n" in listed, name


@pytest.mark.parametrize("argv", [["deploi"], ["deploi", "--stage", "dev"], ["Deploy"]])
def test_a_misspelt_command_is_told_every_command(tmp_path: Path, argv: list[str]) -> None:
    proc, _ = imported(tmp_path, *argv)
    assert proc.returncode == 2
    choices = ", ".join(repr(name) for name in _all_commands())
    assert f"invalid choice: {argv[0]!r} (choose from {choices})" in proc.stderr
    assert proc.stderr.startswith("usage: alchemy-nb [-h] [--version] COMMAND ...")
    assert "(see `alchemy-nb --help`)" in proc.stderr


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    proc, _ = imported(tmp_path)
    assert proc.returncode == 2
    assert "the following arguments are required: COMMAND" in proc.stderr


@pytest.mark.parametrize("argv", [["--version"], ["--vers"], ["--version", "deploy", "--bogus"]])
def test_version_wins_wherever_it_comes_first(tmp_path: Path, argv: list[str]) -> None:
    proc, _ = imported(tmp_path, *argv)
    assert (proc.returncode, proc.stdout) == (0, f"alchemy-nb {__version__}\n")


def test_the_command_table_names_the_full_parsers_commands_in_order() -> None:
    assert [name for names, _ in _main.COMMANDS for name in names] == _all_commands()


@pytest.mark.parametrize("command", [name for names, _ in _main.COMMANDS for name in names])
def test_a_commands_own_parser_is_the_full_parsers(command: str) -> None:
    full = _helps(_main._parser())
    own_parser = _main._parser(command)
    own = _helps(own_parser)
    assert command in _choices(own_parser)
    assert {p: h for p, h in own.items() if p[:1] == (command,)} == {
        p: h for p, h in full.items() if p[:1] == (command,)
    }
    # only the commands added together with it (e.g. every promotion command)
    group = next(names for names, _ in _main.COMMANDS if command in names)
    assert set(_choices(own_parser)) == set(group)


@pytest.mark.parametrize(
    ("argv", "needs"),
    [
        ([], None),
        (["deploy", "--stage", "dev"], "deploy"),
        (["approve", "--release", "x"], "approve"),
        (["--version"], _main.VERSION_ONLY),
        (["--v"], _main.VERSION_ONLY),
        (["--version=2"], None),
        (["--help"], None),
        (["-h", "deploy"], None),
        (["deploi"], None),
        (["--", "deploy"], None),
    ],
)
def test_parser_for(argv: list[str], needs: str | None) -> None:
    assert _main.parser_for(argv) == needs


def _choices(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def _all_commands() -> list[str]:
    return _choices(_main._parser())


def _helps(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], str]:
    """The help text of ``parser`` and of every (sub)command under it, by command path."""
    found = {path: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_helps(sub, (*path, name)))
    return found
