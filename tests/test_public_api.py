"""The public surface: a pinned, sorted front door, and layers that only point down."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import alchemy_nb
import alchemy_nb.engine
import alchemy_nb.errors
import alchemy_nb.fs
import alchemy_nb.state

PACKAGE = Path(alchemy_nb.__file__).parent


def test_front_door_is_sorted_and_pinned() -> None:
    assert alchemy_nb.__all__ == sorted(alchemy_nb.__all__)
    assert alchemy_nb.__all__ == [
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
    for name in alchemy_nb.__all__:
        assert getattr(alchemy_nb, name) is not None


def test_every_public_subpackage_has_a_sorted_all() -> None:
    import alchemy_nb.cloudflare
    import alchemy_nb.display
    import alchemy_nb.promotion
    import alchemy_nb.runbooks
    import alchemy_nb.scaffold
    import alchemy_nb.wrangler

    modules = (
        alchemy_nb.engine,
        alchemy_nb.errors,
        alchemy_nb.fs,
        alchemy_nb.state,
        alchemy_nb.cloudflare,
        alchemy_nb.display,
        alchemy_nb.promotion,
        alchemy_nb.runbooks,
        alchemy_nb.scaffold,
        alchemy_nb.wrangler,
    )
    for module in modules:
        assert module.__all__ == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_error_tree_has_one_root() -> None:
    errors = [getattr(alchemy_nb.errors, n) for n in alchemy_nb.errors.__all__]
    assert all(issubclass(e, alchemy_nb.errors.AlchemyError) for e in errors)
    assert alchemy_nb.errors.ConfigError.exit_code == 2
    assert alchemy_nb.errors.LockError.exit_code == 1


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    # the package a module is in (for __init__.py: the package itself)
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def test_layers_point_down_only() -> None:
    """The engine never imports a provider, the CLI or a display; state never the engine
    (except the shared canonical-JSON helpers); providers only the engine."""
    upper = (
        "alchemy_nb.cli",
        "alchemy_nb.display",
        "alchemy_nb.runbooks",
        "alchemy_nb.scaffold",
        "alchemy_nb.wrangler",
    )
    forbidden = {
        "engine": ("alchemy_nb.fs", "alchemy_nb.cloudflare", "alchemy_nb.promotion", *upper),
        "state": ("alchemy_nb.engine", "alchemy_nb.fs", "alchemy_nb.promotion", *upper),
        "fs": ("alchemy_nb.state", "alchemy_nb.promotion", *upper),
        "cloudflare": ("alchemy_nb.promotion", *upper),
        "promotion": upper,
    }
    for layer, banned in forbidden.items():
        for path in (PACKAGE / layer).rglob("*.py"):
            for name in imports_of(path):
                assert not name.startswith(banned), f"{path.relative_to(PACKAGE)} imports {name}"


def test_import_is_light() -> None:
    """`import alchemy_nb` loads neither pydantic nor cryptography (speed is benchmarked)."""
    code = (
        "import sys, alchemy_nb; "
        "print(sorted(m for m in ('pydantic', 'cryptography', 'asyncio') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
