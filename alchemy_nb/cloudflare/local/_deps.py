"""A worker's own dependencies, installed into an environment of its own.

A worker project declares what it needs as Cloudflare's tooling reads it: the
``[project] dependencies`` of its ``pyproject.toml`` (the ``dev`` dependency group, where
``workers-py`` lives, is not installed), else a ``requirements.txt``. The file is looked
for in the folder of the worker's module and then upwards, up to the app's folder.

The packages are installed with pip (``pip install --target``) into a folder of the cache,
named by a hash of what decides its content: the dependency list, the lock file beside it
(``uv.lock``, ``pylock.toml``, ``requirements.lock``) and the Python version. An existing
folder is reused as is, so a project whose dependencies are cached starts without pip and
offline. The folder is prepared under a temporary name and renamed when complete, under a
lock, so concurrent deploys and a killed install never leave a half-made environment.

The worker process imports from it *after* the runtime's ``workers``/``js``/``pyodide``/
``asgi`` modules and the worker's own folder, and before alchemy-nb's environment: the
worker's versions of a package win over ours, and ours of the runtime's modules always win
over a ``workers-runtime-sdk`` that a dependency pulls in. Nothing is ever installed into
alchemy-nb's own environment.

Example::

    deps = find_dependencies(Path("src/entry.py"), root=Path("."))
    site = ensure_environment(deps) if deps else None
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, ProviderError

__all__ = [
    "HOST_REQUIREMENTS",
    "Dependencies",
    "WorkerPython",
    "cache_root",
    "choose_python",
    "ensure_environment",
    "find_dependencies",
    "installed_pythons",
]

LOCK_FILES = ("uv.lock", "pylock.toml", "requirements.lock")
COMPLETE = ".alchemy-nb-complete"


@dataclass(frozen=True)
class Dependencies:
    """What a worker project asks for: requirement strings, from ``source``."""

    source: Path
    requirements: tuple[str, ...]
    lock: Path | None = None
    requires_python: str | None = None

    def python_mismatch(self) -> str | None:
        """A note when ``requires-python`` excludes the Python the worker will run on."""
        if not self.requires_python:
            return None
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        running = ".".join(map(str, sys.version_info[:3]))
        try:
            fits = SpecifierSet(self.requires_python).contains(running, prereleases=True)
        except InvalidSpecifier:
            return f"requires-python {self.requires_python!r} in {self.source} is not valid"
        if fits:
            return None
        return (
            f"the worker asks for Python {self.requires_python} ({self.source.name}); the "
            f"local target runs it on Python {running}, the Python alchemy-nb runs on"
        )

    def accepts(self, version: str) -> bool:
        """Whether ``requires-python`` accepts ``version`` (``"3.12.1"``)."""
        if not self.requires_python:
            return True
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            return SpecifierSet(self.requires_python).contains(version, prereleases=True)
        except InvalidSpecifier:
            return True

    def digest(self, python: WorkerPython | None = None) -> str:
        """The hash naming the environment (requirements, lock, Python version)."""
        h = hashlib.sha256()
        h.update(json.dumps(sorted(self.requirements)).encode())
        if self.lock is not None:
            h.update(self.lock.read_bytes())
        h.update(f"{sys.implementation.cache_tag}-{sys.platform}".encode())
        if python is not None and python.foreign:
            h.update(f"{python.executable}-{python.version}-{HOST_REQUIREMENTS}".encode())
        return h.hexdigest()[:32]


HOST_REQUIREMENTS = ("uvicorn[standard]>=0.30", "httpx>=0.27")
"""What a worker process needs besides alchemy-nb's own code, when it runs on another
Python than alchemy-nb's (installed into the worker's environment then)."""


@dataclass(frozen=True)
class WorkerPython:
    """The interpreter a worker runs on: alchemy-nb's own, or another installed CPython
    that its ``requires-python`` asks for."""

    executable: str
    version: str  # "3.12.1"
    foreign: bool = False


def installed_pythons() -> list[WorkerPython]:
    """The CPython 3 interpreters found on PATH (``python3.N``) and under pyenv."""
    import glob
    import shutil

    candidates: list[str] = []
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    for minor in range(10, 16):
        found = shutil.which(f"python3.{minor}")
        if found:
            candidates.append(found)
        candidates += sorted(glob.glob(f"{pyenv}/versions/3.{minor}.*/bin/python3.{minor}"))
    out: list[WorkerPython] = []
    seen: set[str] = set()
    for exe in candidates:
        real = os.path.realpath(exe)
        if real in seen:
            continue
        seen.add(real)
        try:
            done = subprocess.run(
                [exe, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip():
            out.append(WorkerPython(exe, done.stdout.strip(), foreign=True))
    return out


def choose_python(deps: Dependencies) -> tuple[WorkerPython, str | None]:
    """The interpreter for the worker: alchemy-nb's own when ``requires-python`` accepts
    it, else the oldest installed CPython that it accepts; with a note saying which."""
    running = ".".join(map(str, sys.version_info[:3]))
    own = WorkerPython(sys.executable, running)
    if deps.accepts(running):
        return own, None
    fitting = [p for p in installed_pythons() if deps.accepts(p.version)]
    if not fitting:
        note = deps.python_mismatch()
        return own, f"{note} (no installed CPython matches)" if note else None

    def order(python: WorkerPython) -> tuple[int, ...]:
        return tuple(int(part) for part in python.version.split(".") if part.isdigit())

    chosen = min(fitting, key=order)
    return chosen, (
        f"the worker asks for Python {deps.requires_python} ({deps.source.name}): it runs on "
        f"Python {chosen.version} ({chosen.executable})"
    )


def cache_root() -> Path:
    """Where worker environments live: ``$ALCHEMY_NB_WORKER_ENVS``, else
    ``$XDG_CACHE_HOME/alchemy-nb/worker-envs`` (``~/.cache/...``)."""
    explicit = os.environ.get("ALCHEMY_NB_WORKER_ENVS")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alchemy-nb" / "worker-envs"


def find_dependencies(entry: Path, root: Path) -> Dependencies | None:
    """The dependencies declared for the worker whose module is ``entry`` (None: none)."""
    folder = entry.resolve().parent
    top = root.resolve()
    while True:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            found = _from_pyproject(pyproject)
            if found is not None:
                return found
        requirements = folder / "requirements.txt"
        if requirements.is_file():
            return _from_requirements(requirements)
        if folder == top or folder.parent == folder or top not in folder.parents:
            return None
        folder = folder.parent


def _lock_beside(path: Path) -> Path | None:
    for name in LOCK_FILES:
        candidate = path.parent / name
        if candidate.is_file():
            return candidate
    return None


def _from_pyproject(path: Path) -> Dependencies | None:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"cannot read the worker's dependencies: {exc}",
            where=str(path),
            fix="fix pyproject.toml (its [project] dependencies list the worker's packages)",
        ) from None
    project = data.get("project")
    if not isinstance(project, dict) or "dependencies" not in project:
        return None
    deps = project["dependencies"]
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ConfigError(
            "[project] dependencies must be a list of requirement strings",
            where=str(path),
            fix='write them as dependencies = ["fastapi>=0.110", ...]',
        )
    wanted = project.get("requires-python")
    return Dependencies(
        path,
        tuple(d.strip() for d in deps if d.strip()),
        _lock_beside(path),
        wanted if isinstance(wanted, str) else None,
    )


def _from_requirements(path: Path) -> Dependencies:
    lines = []
    for line in path.read_text().splitlines():
        text = line.split(" #")[0].strip()
        if text and not text.startswith("#"):
            lines.append(text)
    return Dependencies(path, tuple(lines), _lock_beside(path))


def ensure_environment(
    deps: Dependencies,
    *,
    log: Callable[[str], None] | None = None,
    python: WorkerPython | None = None,
) -> Path:
    """The folder holding ``deps`` installed (made with pip on first use, then reused).

    Raises :class:`~alchemy_nb.errors.ProviderError` with pip's own error when the
    installation fails; nothing is left behind then.
    """
    root = cache_root()
    target = root / deps.digest(python)
    foreign = python is not None and python.foreign
    if (target / COMPLETE).exists():
        return target
    if not deps.requirements and not foreign:
        target.mkdir(parents=True, exist_ok=True)
        (target / COMPLETE).write_text(str(deps.source))
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another deploy may be installing the same
        if (target / COMPLETE).exists():
            return target
        if log is not None:
            log(f"installing the worker's dependencies from {deps.source} into {target}")
        building = root / f"{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        try:
            _pip_install(deps, building, python)
            (building / COMPLETE).write_text(str(deps.source))
            if target.exists():  # an incomplete leftover
                shutil.rmtree(target)
            os.replace(building, target)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return target


def _pip_install(deps: Dependencies, folder: Path, python: WorkerPython | None) -> None:
    command = [
        python.executable if python is not None else sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(folder),
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--no-warn-script-location",
    ]
    if deps.source.name == "requirements.txt":
        command += ["--requirement", str(deps.source)]
    else:
        command += list(deps.requirements)
    if python is not None and python.foreign:
        command += list(HOST_REQUIREMENTS)
    env = {**os.environ, "PIP_NO_INPUT": "1", "PYTHONNOUSERSITE": "1"}
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=deps.source.parent,
            env=env,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProviderError(
            f"could not run pip to install the worker's dependencies: {exc}",
            where=str(deps.source),
            fix="make sure pip is installed for this Python (python -m ensurepip)",
        ) from None
    if done.returncode != 0:
        raise ProviderError(
            f"pip could not install the worker's dependencies:\n{_pip_error(done.stderr)}",
            where=str(deps.source),
            fix="fix the dependency named above (its name, version, or that it exists for "
            "the worker's Python), then run again",
        )


def _pip_error(stderr: str) -> str:
    """pip's error lines, without its hints and notices."""
    lines = [
        line.rstrip()
        for line in stderr.splitlines()
        if line.strip() and not line.lstrip().startswith(("[notice]", "WARNING: Location"))
    ]
    text = "\n".join(f"  {line}" for line in lines[-15:])
    return text or "  (pip gave no error output)"
