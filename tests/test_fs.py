"""The fs provider: File and Folder on real files."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run

import alchemy_nb
from alchemy_nb.fs import File, Folder


def test_file_create_update_replace_delete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = alchemy_nb.App("fs", root=tmp_path)
    spec = {"path": "a/one.txt", "content": "long first content\n"}

    @app.program
    def infra(stage):
        f = File("f", **spec)
        return {"path": f.path, "content": f.content}

    assert run(app.deploy("dev")).outputs == {
        "path": "a/one.txt",
        "content": "long first content\n",
    }
    assert (tmp_path / "a/one.txt").read_text() == "long first content\n"

    spec["content"] = "short\n"  # shorter content: the old tail must not survive
    assert run(app.deploy("dev")).counts["update"] == 1
    assert (tmp_path / "a/one.txt").read_text() == "short\n"

    spec["path"] = "b/two.txt"  # a new path replaces the file: new one first, then the old goes
    plan = run(app.plan("dev"))
    assert plan.changes[0].action == "replace"
    assert plan.changes[0].fields[0].forces_replacement
    assert run(app.deploy("dev")).counts["replace"] == 1
    assert not (tmp_path / "a/one.txt").exists()
    assert (tmp_path / "b/two.txt").read_text() == "short\n"

    (tmp_path / "b/two.txt").unlink()  # gone already: delete still succeeds
    assert run(app.destroy("dev")).counts["delete"] == 1


def test_file_absolute_paths_and_unicode(tmp_path: Path) -> None:
    app = alchemy_nb.App("fs", root=tmp_path / "app")
    target = tmp_path / "elsewhere" / "ünï.txt"

    @app.program
    def infra(stage):
        File("f", path=str(target), content="héllo ✓\n")

    run(app.deploy("dev"))
    assert target.read_text(encoding="utf-8") == "héllo ✓\n"
    run(app.destroy("dev"))
    assert not target.exists()


def test_folder_lifecycle(tmp_path: Path) -> None:
    app = alchemy_nb.App("fs", root=tmp_path)
    spec: dict[str, object] = {"path": "data/cache"}

    @app.program
    def infra(stage):
        folder = Folder("cache", **spec)
        File("inside", path="data/cache/x.txt", content="x")
        return {"folder": folder.path}

    assert run(app.deploy("dev")).outputs == {"folder": "data/cache"}
    assert (tmp_path / "data/cache").is_dir()
    (tmp_path / "data/cache/extra.bin").write_bytes(b"made by hand")
    run(app.destroy("dev"))
    assert not (tmp_path / "data/cache").exists()  # recursive by default, like Alchemy's

    spec.update(recursive=False)
    run(app.deploy("dev"))
    (tmp_path / "data/cache/extra.bin").write_bytes(b"made by hand")
    events: list[tuple[str, dict]] = []
    run(app.destroy("dev", reporter=lambda e, **d: events.append((e, d))))
    assert (tmp_path / "data/cache/extra.bin").exists()  # not empty, not recursive: kept
    assert any(e == "resource.note" for e, _ in events)

    spec.update(recursive=True, delete=False)
    run(app.deploy("dev"))
    run(app.destroy("dev"))
    assert (tmp_path / "data/cache").is_dir()  # delete=False keeps the folder


def test_folder_props_are_validated(tmp_path: Path) -> None:
    app = alchemy_nb.App("fs", root=tmp_path)

    @app.program
    def infra(stage):
        Folder("f", path="x", recursiv=True)

    with pytest.raises(alchemy_nb.errors.ConfigError, match="did you mean 'recursive'"):
        run(app.plan("dev"))
