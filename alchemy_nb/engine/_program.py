"""Load a program file (``alchemy_run.py``) and find its ``app``."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

from ..errors import AlchemyError, ConfigError, ProgramError
from ._app import App
from ._run import _user_frame

__all__ = ["load_program"]

CONTRACT = 'define `app = alchemy_nb.App("name")` and register a function with @app.program'


_PROGRAM_FOLDERS: set[str] = set()


def _forget_siblings(folder: str) -> None:
    """Drop modules imported from any program folder, so this program's ``import helpers``
    finds its own ``helpers.py`` (a release's copy, say) and not one cached earlier."""
    _PROGRAM_FOLDERS.add(folder)
    for key, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if (
            origin
            and not key.startswith("_alchemy_nb_program_")
            and any(origin.startswith(f + os.sep) for f in _PROGRAM_FOLDERS)
        ):
            del sys.modules[key]


def load_program(path: str | Path) -> App:
    """Import the program file at ``path`` and return its module-level ``app``.

    Example::

        app = load_program("alchemy_run.py")
        result = await app.deploy("dev")
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise ConfigError(
            f"no program file at {file}",
            where=str(path),
            fix=f"create alchemy_run.py ({CONTRACT}), or point --program at it",
        )
    name = "_alchemy_nb_program_" + hashlib.sha256(str(file).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ConfigError(
            f"cannot import {file} as Python",
            where=str(file),
            fix="give the program file a .py name",
        )
    module = importlib.util.module_from_spec(spec)
    folder = str(file.parent)
    _forget_siblings(folder)
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)  # its sibling modules win over another program's
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise ConfigError(
            f"the program file has a syntax error: {exc.msg}",
            where=f"{exc.filename}:{exc.lineno}",
            fix="fix the syntax error",
        ) from None
    except AlchemyError:
        sys.modules.pop(name, None)
        raise
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ProgramError(
            f"loading the program file raised {type(exc).__name__}: {exc}",
            where=_user_frame(exc),
            fix="fix the program (run with --debug to see the whole traceback)",
        ) from exc
    app = getattr(module, "app", None)
    if not isinstance(app, App):
        raise ConfigError(
            f"{file.name} has no module-level `app`",
            where=str(file),
            fix=CONTRACT,
        )
    if app.program_function is None:
        raise ConfigError(
            f"app {app.name!r} in {file.name} has no program",
            where=str(file),
            fix="decorate a function of the stage with @app.program",
        )
    return app
