"""Bindings that only Cloudflare can serve (Workers AI, Vectorize, Browser Rendering...).

The worker starts and everything else works; the first use of such a binding raises
:class:`RemoteOnlyError` naming the binding and what to do.

Example::

    env.AI.run("@cf/meta/llama-3.1-8b-instruct", {...})
    # RemoteOnlyError: env.AI is a Workers AI binding, which runs only on Cloudflare ...
"""

from __future__ import annotations

from typing import Any

__all__ = ["SERVICES", "RemoteOnlyBinding", "RemoteOnlyError", "remote_only_message"]

SERVICES = {
    "ai": "Workers AI",
    "vectorize": "Vectorize",
    "browser": "Browser Rendering",
    "images": "Images",
    "hyperdrive": "Hyperdrive",
    "analytics_engine": "Analytics Engine",
    "send_email": "Email",
    "html_rewriter": "HTMLRewriter",
}
"""Binding kinds (their wrangler key) and the service's name."""


class RemoteOnlyError(NotImplementedError):
    """Raised on the first use of a binding the local target cannot serve."""


def remote_only_message(what: str) -> str:
    """``what``, then why it fails locally and what to do."""
    return (
        f"{what}: it runs only on Cloudflare, not on the local target. To use it, "
        "deploy the worker to Cloudflare (a stage whose target is cloudflare); for local "
        "runs, bind a fake in its place (a Python object with the methods your code calls, "
        "or another Worker through a service binding)"
    )


class RemoteOnlyBinding:
    """``env.NAME`` for a binding only Cloudflare serves: any use raises a clear error."""

    def __init__(self, name: str, kind: str) -> None:
        self._name = name
        self._kind = kind

    def _error(self, use: str) -> RemoteOnlyError:
        service = SERVICES.get(self._kind, self._kind)
        return RemoteOnlyError(
            remote_only_message(f"env.{self._name}{use}: {self._name} is a {service} binding")
        )

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in ("_name", "_kind"):
            raise AttributeError(attr)
        raise self._error(f".{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._error("()")

    def __repr__(self) -> str:
        service = SERVICES.get(self._kind, self._kind)
        return f"<{service} binding {self._name!r} (runs only on Cloudflare)>"
