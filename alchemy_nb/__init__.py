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

from ._lazy import lazy_exports

TYPE_CHECKING = False  # `import typing` alone would cost `import alchemy_nb` milliseconds

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

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        ".engine": [
            "Action",
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
            "Stage",
            "load_program",
        ],
        "._secret": ["Secret"],
        ".errors": ["AlchemyError", "errors"],
        "._api": ["deploy", "destroy", "plan", "read"],
    },
)
