"""Package exports that load on first use, so importing a package stays cheap."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # `typing` would cost every `import alchemy_nb` milliseconds
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: dict[str, Any], modules: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` (PEP 562) for a package's public names.

    ``modules`` maps a module, relative to the package (``"._d1"``), to the names it
    defines; a module named after the name itself (``".errors"`` for ``errors``) is
    returned as the module. A loaded name is cached in the package's namespace.

    Example::

        __getattr__, __dir__ = lazy_exports(globals(), {"._kv": ["KVNamespace"]})
    """
    package = namespace["__name__"]
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module, package)
        value = loaded if module == f".{name}" else getattr(loaded, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace.get("__all__", where))

    return __getattr__, __dir__
