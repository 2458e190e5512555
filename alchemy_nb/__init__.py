"""alchemy-nb: infrastructure as code for Python people who live in notebooks.

Example::

    import alchemy_nb
    from alchemy_nb.fs import File

    app = alchemy_nb.App("hello")

    @app.program
    def infra(stage):
        greeting = File("greeting", path="out/hello.txt", content=f"hello from {stage.name}")
        return {"path": greeting.path}

    result = await app.deploy("dev")

Names are loaded on first use, so ``import alchemy_nb`` stays fast.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # `import typing` alone would cost `import alchemy_nb` milliseconds
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AlchemyError",
    "App",
    "Input",
    "Outputs",
    "Phase",
    "Plan",
    "Props",
    "Provider",
    "Ref",
    "Resource",
    "ResourceContext",
    "RunResult",
    "Secret",
    "Stage",
    "__version__",
    "deploy",
    "destroy",
    "errors",
    "load_program",
    "plan",
    "read",
]

_LAZY = {
    "Action": "alchemy_nb.engine",
    "App": "alchemy_nb.engine",
    "Input": "alchemy_nb.engine",
    "Outputs": "alchemy_nb.engine",
    "Phase": "alchemy_nb.engine",
    "Plan": "alchemy_nb.engine",
    "Props": "alchemy_nb.engine",
    "Provider": "alchemy_nb.engine",
    "Ref": "alchemy_nb.engine",
    "Resource": "alchemy_nb.engine",
    "ResourceContext": "alchemy_nb.engine",
    "RunResult": "alchemy_nb.engine",
    "Stage": "alchemy_nb.engine",
    "load_program": "alchemy_nb.engine",
    "Secret": "alchemy_nb._secret",
    "AlchemyError": "alchemy_nb.errors",
    "deploy": "alchemy_nb._api",
    "destroy": "alchemy_nb._api",
    "plan": "alchemy_nb._api",
    "read": "alchemy_nb._api",
}

if TYPE_CHECKING:
    from . import errors
    from ._api import deploy, destroy, plan, read
    from ._secret import Secret
    from .engine import (
        Action,
        App,
        Input,
        Outputs,
        Phase,
        Plan,
        Props,
        Provider,
        Ref,
        Resource,
        ResourceContext,
        RunResult,
        Stage,
        load_program,
    )
    from .errors import AlchemyError


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module("alchemy_nb.errors")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alchemy_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
