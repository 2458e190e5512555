"""The local stand-in for ``pyodide.http``: ``pyfetch`` and its ``FetchResponse``.

Example::

    from pyodide.http import pyfetch

    response = await pyfetch("http://127.0.0.1:8788/api")
    data = await response.json()
"""

from __future__ import annotations

import json as _json
from typing import Any

import js

__all__ = ["FetchResponse", "pyfetch"]


class FetchResponse:
    """A fetched response: ``status``, ``ok``, ``headers`` (a dict), ``await text()``,
    ``await json()``, ``await bytes()``, ``await buffer()``, ``js_response``."""

    def __init__(self, url: str, js_response: js.Response) -> None:
        self._url = url
        self.js_response = js_response

    @property
    def url(self) -> str:
        """The URL that was fetched."""
        return self._url

    @property
    def status(self) -> int:
        """The status code."""
        return self.js_response.status

    @property
    def ok(self) -> bool:
        """Whether the status is 200-299."""
        return self.js_response.ok

    @property
    def status_text(self) -> str:
        """The status text."""
        return self.js_response.statusText

    @property
    def headers(self) -> dict[str, str]:
        """The headers as a dict with lower-case names."""
        return self.js_response.headers.to_py()

    @property
    def body_used(self) -> bool:
        """Whether the body has been read."""
        return self.js_response.bodyUsed

    def raise_for_status(self) -> None:
        """Raise ``OSError`` for a 4xx or 5xx status."""
        if self.status >= 400:
            raise OSError(f"{self.status} {self.status_text} for url: {self._url}")

    async def string(self) -> str:
        """The body as text."""
        return await self.js_response.text()

    text = string

    async def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON into plain Python data."""
        return _json.loads(await self.js_response.text(), **kwargs)

    async def bytes(self) -> bytes:
        """The body as bytes."""
        return bytes(await self.js_response.arrayBuffer())

    async def buffer(self) -> js.ArrayBuffer:
        """The body as an ``ArrayBuffer``."""
        return await self.js_response.arrayBuffer()

    def clone(self) -> FetchResponse:
        """A copy whose body can be read separately."""
        return FetchResponse(self._url, self.js_response.clone())


async def pyfetch(url: str, **kwargs: Any) -> FetchResponse:
    """Fetch ``url``; keywords are the fetch options (``method``, ``headers``, ``body``)."""
    kwargs.pop("fetcher", None)
    return FetchResponse(url, await js.fetch(url, None, **kwargs))
