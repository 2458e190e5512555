"""A kernelspec for this very interpreter, kept in a private folder.

``python3`` may resolve to a user-level kernelspec pointing at another interpreter, and
the runbook would silently run in the wrong environment. The runner instead writes
``alchemy-nb-<hash of sys.executable>/kernel.json`` under its own folder and looks only
there. The spec declares CurveZMQ support, so the kernel's TCP-encryption warning is
answered with ``transport_encryption = "auto"`` instead of being printed in CI logs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PrivateKernel", "ensure_kernelspec"]


@dataclass(frozen=True)
class PrivateKernel:
    """The kernelspec's name, its folder (holding ``<name>/kernel.json``) and the
    NotebookClient keyword arguments that make papermill use it."""

    name: str
    root: Path
    encrypted: bool

    def engine_kwargs(self, log: Path) -> dict[str, Any]:
        """``kernel_manager_class`` and ``config`` for ``papermill.execute_notebook``; the
        kernel's own stderr (its tracebacks on a timeout, say) goes to the file ``log``."""
        from traitlets.config import Config

        settings: dict[str, Any] = {}
        if self.encrypted:  # silences "Kernel is running over TCP without encryption"
            settings["KernelManager"] = {"transport_encryption": "auto"}
        return {
            "kernel_manager_class": _manager_class(str(self.root), str(log)),
            "config": Config(settings),
        }


def _default_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alchemy-nb" / "kernels"


def ensure_kernelspec(root: Path | None = None) -> PrivateKernel:
    """Write (or keep) the kernelspec of ``sys.executable`` under ``root`` and return it.

    Example::

        kernel = ensure_kernelspec()
        papermill.execute_notebook(src, dst, kernel_name=kernel.name, **kernel.engine_kwargs())
    """
    from ipykernel.kernelspec import get_kernel_dict

    folder = root or _default_root()
    name = "alchemy-nb-" + hashlib.sha256(sys.executable.encode()).hexdigest()[:10]
    spec = get_kernel_dict()
    spec["argv"][0] = sys.executable
    spec["display_name"] = f"alchemy-nb ({sys.executable})"
    text = json.dumps(spec, indent=1, sort_keys=True) + "\n"
    path = folder / name / "kernel.json"
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    encrypted = "curve" in spec.get("metadata", {}).get("supported_encryption", [])
    if encrypted:
        import zmq

        encrypted = bool(zmq.has("curve"))
    return PrivateKernel(name, folder, encrypted)


def _manager_class(root: str, log: str) -> type:
    """An AsyncKernelManager that finds kernelspecs in ``root`` only and writes the
    kernel's stderr to ``log``."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class _PrivateKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _private_specs(self) -> KernelSpecManager:
            return KernelSpecManager(kernel_dirs=[root], ensure_native_kernel=False)

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            with open(log, "ab") as stderr:  # the child keeps its own descriptor
                kw.setdefault("stderr", stderr)
                await super().start_kernel(**kw)

    return _PrivateKernelManager
