"""Scaffold apps from the bundled copier template, offline, in a way ``copier update`` follows.

Where the template comes from, and why
--------------------------------------
The template (``templates/app`` in the source tree) ships inside the wheel as
``alchemy_nb/scaffold/template``, so ``alchemy-nb new`` works without a network. But copier
can only *update* a project whose recorded ``_src_path`` is a git repository with tagged
versions: it regenerates the old version, diffs it against the project and replays the diff
on the new one. A folder inside site-packages is neither versioned nor stable (the next
``pip install`` replaces it).

So the bundled template is mirrored into one local git repository under the user's cache
directory (``$ALCHEMY_NB_CACHE``, else ``$XDG_CACHE_HOME/alchemy-nb``, else
``~/.cache/alchemy-nb``), at ``templates/app``. Each alchemy-nb version adds a commit tagged
``v<version>`` (a changed template under an unchanged version, as in an editable install,
gets ``v<version>+t<digest>``). Apps record that path as ``_src_path`` and the tag as
``_commit``; after upgrading alchemy-nb, ``alchemy-nb update`` mirrors the new template as
the next tag and runs ``copier update`` from the recorded tag to it, keeping the app's
edits. Every tag ever mirrored stays in the repository, so any app can be updated from the
version it was made with. The repository is rebuilt from the wheel whenever it is missing,
so deleting the cache loses only old versions, never the ability to create apps.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["Scaffolded", "new", "template_path", "template_questions", "template_source", "update"]

SLUG = re.compile(r"^[a-z](?:[a-z0-9]|-(?!-)){0,48}[a-z0-9]$")
"""What ``app_name`` must look like (the template's validator says the same)."""

ANSWERS_FILE = ".copier-answers.yml"
_DIGEST_FILE = "TEMPLATE_DIGEST"
_GIT_IDENTITY = [
    "-c",
    "user.name=alchemy-nb",
    "-c",
    "user.email=alchemy-nb@localhost",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "tag.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
]


@dataclass(frozen=True)
class Scaffolded:
    """What :func:`new` or :func:`update` did: the app's folder and the template version."""

    path: Path
    version: str
    """The template tag the app is now at, e.g. ``v0.1.0``."""
    answers: dict[str, Any]
    """The answers recorded in ``.copier-answers.yml``."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (the CLI's ``--json`` output)."""
        return {"path": str(self.path), "version": self.version, "answers": self.answers}


def template_path() -> Path:
    """The bundled template: inside the wheel, else ``templates/app`` of the source tree."""
    here = Path(__file__).resolve().parent
    for folder in (here / "template", here.parent.parent / "templates" / "app"):
        if (folder / "copier.yml").is_file():
            return folder
    raise ConfigError(
        "the app template is missing from this alchemy-nb installation",
        where=str(here),
        fix="reinstall alchemy-nb: pip install --force-reinstall 'alchemy-nb[scaffold]'",
    )


def template_questions(template: Path | None = None) -> list[str]:
    """The template's question names, in the order ``copier.yml`` asks them."""
    import yaml

    config = yaml.safe_load((template or template_path()).joinpath("copier.yml").read_text())
    return [key for key in config if not key.startswith("_")]


def _cache_dir() -> Path:
    if os.environ.get("ALCHEMY_NB_CACHE"):
        return Path(os.environ["ALCHEMY_NB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alchemy-nb"


def _git(cwd: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *_GIT_IDENTITY, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise ConfigError(
            "alchemy-nb new and update need git (copier versions templates with git tags)",
            fix="install git and try again",
        ) from None
    if done.returncode:
        raise ConfigError(
            f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}",
            where=str(cwd),
        )
    return done.stdout.strip()


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if "__pycache__" in rel or rel.endswith((".pyc", ".pyo")):
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no concurrent mirroring protection
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def template_source(version: str | None = None) -> tuple[Path, str]:
    """Mirror the bundled template into the cache's git repository; return (repo, tag).

    The tag is ``v<alchemy-nb version>``, reused while the template is unchanged.
    """
    from .. import __version__

    version = version or __version__
    bundled = template_path()
    digest = _digest(bundled)
    repo = _cache_dir() / "templates" / "app"
    with _locked(repo.parent / ".app.lock"):
        if not (repo / ".git").is_dir():
            if repo.exists():
                shutil.rmtree(repo)
            repo.mkdir(parents=True)
            _git(repo, "init", "-q")
        for tag in (f"v{version}", f"v{version}+t{digest[:10]}"):
            if _git(repo, "tag", "--list", tag):
                recorded = _git(repo, "show", f"{tag}:{_DIGEST_FILE}")
                if recorded == digest:
                    return repo, tag
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        shutil.copytree(
            bundled, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
        (repo / _DIGEST_FILE).write_text(digest + "\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "--allow-empty", "-m", f"alchemy-nb {version} app template")
        tag = f"v{version}"
        if _git(repo, "tag", "--list", tag):  # same version, changed template
            tag = f"v{version}+t{digest[:10]}"
        _git(repo, "tag", tag)
        return repo, tag


def _check_data(data: Mapping[str, Any], questions: list[str]) -> None:
    unknown = sorted(set(data) - set(questions))
    if unknown:
        raise ConfigError(
            f"unknown template question{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}",
            fix=f"the questions are: {', '.join(questions)}",
        )


def _check_slug(name: str) -> None:
    if not SLUG.match(name):
        raise ConfigError(
            f"app_name {name!r} is not a slug",
            fix="use lowercase letters, digits and single dashes, starting with a letter, "
            "e.g. 'my-app'",
        )


def _translate(exc: Exception) -> ConfigError:
    """copier's errors, once, as ours: a question's validator message names the question."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(text.rstrip("."))


@contextlib.contextmanager
def _copier_warnings() -> Iterator[None]:
    # copier reports template state (e.g. DirtyLocalWarning) as warnings; ours are clean tags
    with warnings.catch_warnings():
        from copier.errors import CopierWarning

        warnings.simplefilter("ignore", CopierWarning)
        yield


def _import_copier() -> Any:
    try:
        import copier
    except ImportError:
        raise ConfigError(
            "alchemy-nb new and update need copier",
            fix="pip install 'alchemy-nb[scaffold]'",
        ) from None
    return copier


def _read_answers(dest: Path) -> dict[str, Any]:
    import yaml

    loaded = yaml.safe_load((dest / ANSWERS_FILE).read_text())
    return dict(loaded) if isinstance(loaded, dict) else {}


def _inside_git_worktree(path: Path) -> bool:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"],
            cwd=path,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return False
    return done.returncode == 0 and done.stdout.strip() == "true"


def new(
    name: str,
    *,
    dest: str | Path | None = None,
    data: Mapping[str, Any] | None = None,
    defaults: bool = False,
    git_init: bool = True,
) -> Scaffolded:
    """Create the app ``name`` in ``dest`` (default ``./NAME``) from the bundled template.

    Unanswered questions are asked interactively unless ``defaults`` is true. The app
    records the template source so :func:`update` (or ``copier update``) can apply later
    template versions. With ``git_init`` (and outside another repository), the app becomes
    a git repository with one commit, which ``copier update`` needs.

    Bad input (a name that is not a slug, an unknown question, an answer a validator
    refuses, a non-empty destination) raises :class:`~alchemy_nb.errors.ConfigError` and
    writes nothing.

    Example::

        from alchemy_nb.scaffold import new

        app = new("my-app", data={"use_queue": True}, defaults=True)
        app.path, app.version
    """
    _check_slug(name)
    answers = dict(data or {})
    if "app_name" in answers and answers["app_name"] != name:
        raise ConfigError(
            f"--data app_name={answers['app_name']} contradicts the name {name!r}",
            fix="give the name once, as NAME",
        )
    answers["app_name"] = name
    _check_data(answers, template_questions())
    target = Path(dest if dest is not None else name).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(
            "the destination exists and is not empty",
            where=str(target),
            fix="pass --dest with a new or empty folder",
        )
    copier = _import_copier()
    repo, tag = template_source()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        try:
            with _copier_warnings():
                copier.run_copy(
                    str(repo),
                    str(staging),
                    data=answers,
                    vcs_ref=tag,
                    defaults=defaults,
                    quiet=True,
                    overwrite=True,
                )
        except (ValueError, copier.errors.CopierError) as exc:
            raise _translate(exc) from None
        if target.exists():
            target.rmdir()  # empty, checked above
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if git_init and not _inside_git_worktree(target.parent):
        _git(target, "init", "-q")
        _git(target, "add", "-A")
        _git(target, "commit", "-q", "-m", f"New app {name} from the alchemy-nb template {tag}")
    return Scaffolded(path=target, version=tag, answers=_read_answers(target))


def update(
    dest: str | Path = ".",
    *,
    data: Mapping[str, Any] | None = None,
    vcs_ref: str | None = None,
    conflict: str = "inline",
) -> Scaffolded:
    """Apply a newer template version to the app in ``dest``, keeping its edits.

    Wraps ``copier update``: the app must be a clean git work tree with a
    ``.copier-answers.yml``. An app made by :func:`new` is updated to this alchemy-nb's
    template (mirrored as the next tag first); one made with ``copier copy`` from another
    source is updated to that source's latest tag (or ``vcs_ref``). Answers stay as
    recorded, except those in ``data``; new questions take their defaults. Conflicts are
    left as inline markers (``conflict="rej"``: ``.rej`` files).

    Example::

        from alchemy_nb.scaffold import update

        update("my-app").version   # 'v0.2.0'
    """
    target = Path(dest).resolve()
    if not (target / ANSWERS_FILE).is_file():
        raise ConfigError(
            f"no {ANSWERS_FILE} here: not an app made from the alchemy-nb template",
            where=str(target),
            fix="run it in the app's folder, or pass --dest",
        )
    copier = _import_copier()
    recorded = _read_answers(target)
    _check_data(dict(data or {}), template_questions())
    ref = vcs_ref
    repo = _cache_dir() / "templates" / "app"
    if ref is None and Path(str(recorded.get("_src_path", ""))).resolve() == repo.resolve():
        _repo, ref = template_source()
    try:
        with _copier_warnings():
            copier.run_update(
                str(target),
                data=dict(data or {}),
                vcs_ref=ref,
                defaults=True,
                overwrite=True,
                skip_answered=True,
                conflict=conflict,
                quiet=True,
            )
    except (ValueError, copier.errors.CopierError) as exc:
        raise _translate(exc) from None
    answers = _read_answers(target)
    return Scaffolded(path=target, version=str(answers.get("_commit", "")), answers=answers)
