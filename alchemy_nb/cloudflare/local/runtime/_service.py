"""Service bindings: ``await env.OTHER.fetch(request_or_url)`` reaches another local worker.

The request goes over HTTP to the other worker's local URL. Its path and query are
kept, its origin replaced, and its ``Host`` header kept, so the other worker sees the
URL the caller used, as on Cloudflare.
"""

from __future__ import annotations

from typing import Any

import js
import workers

__all__ = ["ServiceBinding"]


class ServiceBinding:
    """A service binding (``env.OTHER``): ``await env.OTHER.fetch(request | url, init)``.

    Example::

        response = await self.env.AUTH.fetch("https://auth/check", method="POST", body="x")
        if response.status == 200: ...
    """

    __slots__ = ("_base", "_name")

    def __init__(self, name: str, url: str) -> None:
        self._name = name
        self._base = js.URL(url)

    def __repr__(self) -> str:
        return f"ServiceBinding({self._name!r} → {self._base.origin})"

    async def fetch(self, input: Any, init: Any = None, **kwargs: Any) -> workers.Response:
        """Send ``input`` (a Request, a URL; relative URLs are fine) to the other worker."""
        source = getattr(input, "js_object", input)
        if isinstance(source, str) and not js.URL.canParse(source):
            source = js.URL(source, self._base.origin).href
        request = js.Request(source, init, **kwargs)
        original = js.URL(request.url)
        target = f"{self._base.origin}{original.pathname}{original.search}"
        outgoing = js.Request(target, None, method=request.method, headers=request.headers)
        outgoing._body = request._body
        if not outgoing.headers.has("host"):
            outgoing.headers.set("host", original.host)
        return workers.FetchResponse._wrap(await js._send(outgoing))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def rpc(*args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError(
                f"RPC method {name!r} on service binding {self._name!r} is not supported by"
                " the local runtime yet; call fetch() instead"
            )

        return rpc
