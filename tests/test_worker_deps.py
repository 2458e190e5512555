"""How a worker project's dependencies are found and named (no installation here; the
installs are exercised under ``alchemy-nb dev`` in test_dev_workers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from alchemy_nb.cloudflare.local._deps import cache_root, find_dependencies
from alchemy_nb.errors import ConfigError


def project(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    entry = tmp_path / "src" / "entry.py"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.touch()
    return entry


PYPROJECT = """\
[project]
name = "w"
requires-python = "{python}"
dependencies = ["fastapi>=0.110", " jinja2 "]

[dependency-groups]
dev = ["workers-py", "workers-runtime-sdk"]
"""


def test_pyproject_dependencies_are_found_above_main_without_the_dev_group(
    tmp_path: Path,
) -> None:
    entry = project(tmp_path, **{"pyproject.toml": PYPROJECT.format(python=">=3.8")})
    deps = find_dependencies(entry, tmp_path)
    assert deps is not None
    assert deps.source == tmp_path / "pyproject.toml"
    assert deps.requirements == ("fastapi>=0.110", "jinja2")
    assert deps.python_mismatch() is None


def test_requirements_txt_is_read_when_pyproject_declares_none(tmp_path: Path) -> None:
    entry = project(
        tmp_path,
        **{
            "pyproject.toml": "[tool.ruff]\nline-length = 100\n",
            "requirements.txt": "# pinned\nhttpx==0.28.1  # client\n\nattrs\n",
        },
    )
    deps = find_dependencies(entry, tmp_path)
    assert deps is not None
    assert (deps.source.name, deps.requirements) == ("requirements.txt", ("httpx==0.28.1", "attrs"))


def test_no_dependency_file_up_to_the_app_root_means_none(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("attrs\n")  # above the app root: not ours
    entry = project(tmp_path / "app")
    assert find_dependencies(entry, tmp_path / "app") is None


def test_the_environment_name_follows_the_lock_and_the_requirements(tmp_path: Path) -> None:
    entry = project(tmp_path, **{"pyproject.toml": PYPROJECT.format(python=">=3.8")})

    def digest() -> str:
        deps = find_dependencies(entry, tmp_path)
        assert deps is not None
        return deps.digest()

    unlocked = digest()
    assert unlocked == digest()  # the same project, the same environment
    (tmp_path / "uv.lock").write_text("version = 1\n")
    locked = digest()
    (tmp_path / "uv.lock").write_text("version = 2\n")
    relocked = digest()
    assert len({unlocked, locked, relocked}) == 3


def test_a_python_the_worker_does_not_accept_is_said(tmp_path: Path) -> None:
    entry = project(tmp_path, **{"pyproject.toml": PYPROJECT.format(python=">=3.99")})
    deps = find_dependencies(entry, tmp_path)
    assert deps is not None
    running = ".".join(map(str, sys.version_info[:3]))
    assert deps.python_mismatch() == (
        f"the worker asks for Python >=3.99 (pyproject.toml); the local target runs it on "
        f"Python {running}, the Python alchemy-nb runs on"
    )


def test_a_broken_pyproject_is_a_clear_error(tmp_path: Path) -> None:
    entry = project(tmp_path, **{"pyproject.toml": "[project]\ndependencies = 'fastapi'\n"})
    with pytest.raises(ConfigError, match="must be a list of requirement strings") as err:
        find_dependencies(entry, tmp_path)
    assert err.value.where == str(tmp_path / "pyproject.toml")


def test_the_cache_folder_can_be_moved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALCHEMY_NB_WORKER_ENVS", str(tmp_path / "envs"))
    assert cache_root() == tmp_path / "envs"
    monkeypatch.delenv("ALCHEMY_NB_WORKER_ENVS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "alchemy-nb" / "worker-envs"
