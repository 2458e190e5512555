"""The Cloudflare REST client: one async httpx client per account and event loop.

Every call goes through :meth:`CloudflareClient.call`, which

- unwraps the response envelope (``{success, errors, messages, result, result_info}``),
- maps a failure once, to :class:`CloudflareError` carrying Cloudflare's status, code and
  message (a rejected token becomes one clear message, and later calls fail fast instead
  of repeating it),
- retries 429 (honouring ``Retry-After``), 5xx and transport errors with backoff,
- and never has more than ``max_concurrency`` requests in flight (the cap holds during
  retries: a request waiting out its backoff does not hold a slot).

Example::

    client = await CloudflareClient.from_env()
    namespaces = await client.paginate(f"/accounts/{client.account_id}/storage/kv/namespaces")
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import re
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError, ProviderError

__all__ = [
    "AUTH_CODES",
    "DEFAULT_BASE_URL",
    "CloudflareClient",
    "CloudflareError",
    "Credentials",
    "client_for",
]

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
AUTH_CODES = frozenset({10000, 9106, 9109, 6003, 6111})
"""Envelope codes that mean the token (not the request) is wrong."""
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class CloudflareError(ProviderError):
    """A Cloudflare API call failed: ``status`` (HTTP), ``code`` and ``message`` are
    Cloudflare's own (``code`` is 0 when the answer carried none).

    Example::

        except CloudflareError as exc:
            if exc.code == 10014: ...  # a KV namespace with that title exists
    """

    def __init__(
        self,
        what: str,
        *,
        status: int,
        code: int,
        message: str,
        where: str | None = None,
        fix: str | None = None,
        retried: bool = False,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.retried = retried
        """True when an earlier attempt of the same call got no answer or a 5xx: a create
        refused as a conflict then most likely met what that attempt created."""
        super().__init__(what, where=where, fix=fix)


@dataclass(frozen=True)
class Credentials:
    """What a client authenticates with; ``repr`` never shows the token."""

    token: str
    account_id: str | None = None
    base_url: str = DEFAULT_BASE_URL
    source: str = "environment"
    """Where they came from: ``environment`` or ``profile NAME``."""

    def __repr__(self) -> str:
        return (
            f"Credentials(token='***', account_id={self.account_id!r}, "
            f"base_url={self.base_url!r}, source={self.source!r})"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        import html

        return {"text/plain": repr(self), "text/html": f"<code>{html.escape(repr(self))}</code>"}


class CloudflareClient:
    """An async client for one account. Build it with :meth:`from_env` or
    :func:`client_for`; close it with :meth:`aclose` (or ``async with``)."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        max_concurrency: int = 16,
        max_attempts: int = 8,
        backoff: float = 0.25,
        timeout: float = 60.0,
        shared: _Shared | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise ConfigError(
                "the cloudflare target needs httpx, which is not installed",
                fix="pip install 'alchemy-nb[cloudflare]'",
            ) from None
        if max_concurrency < 1:
            raise ConfigError(
                f"the Cloudflare concurrency cap must be at least 1, not {max_concurrency}",
                fix="set CLOUDFLARE_MAX_CONCURRENCY to a positive number (default 16)",
            )
        self.credentials = credentials
        self.max_concurrency = max_concurrency
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._shared = shared or _Shared(max_concurrency, credentials.account_id)
        self._owns_http = self._shared.http is None
        if self._shared.http is None:
            self._shared.http = httpx.AsyncClient(
                base_url=credentials.base_url.rstrip("/"),
                headers={
                    "Authorization": f"Bearer {credentials.token}",
                    "User-Agent": "alchemy-nb",
                },
                timeout=timeout,
                verify=_ssl_context(),
                limits=httpx.Limits(max_connections=max_concurrency),
            )
        self._http = self._shared.http

    @property
    def requests(self) -> int:
        """Requests sent so far by the clients sharing this one's cap (retries included)."""
        return self._shared.requests

    @classmethod
    async def from_env(cls, profile: str | None = None) -> CloudflareClient:
        """A client from ``CLOUDFLARE_API_TOKEN`` / ``CLOUDFLARE_ACCOUNT_ID`` /
        ``CLOUDFLARE_API_BASE_URL``, completed by a stored profile where unset."""
        from ._profiles import resolve_credentials

        return cls(resolve_credentials(profile), max_concurrency=_env_concurrency())

    async def __aenter__(self) -> CloudflareClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (a shared pool closes with its event loop)."""
        if self._owns_http:
            await self._http.aclose()

    # ---------------------------------------------------------------- account
    async def account_id(self, where: str | None = None) -> str:
        """The account: ``CLOUDFLARE_ACCOUNT_ID``, or the only one the token can see."""
        known = self._shared.account_id
        if known:
            return known
        async with self._shared.account_lock:
            known = self._shared.account_id  # found while this call waited
            if known:
                return known
            accounts = await self.paginate("/accounts", where=where, per_page=50)
            if len(accounts) != 1:
                names = ", ".join(f"{a.get('name')} ({a.get('id')})" for a in accounts[:10])
                raise ConfigError(
                    f"the Cloudflare API token sees {len(accounts)} accounts"
                    + (f": {names}" if names else ""),
                    where=where,
                    fix="set CLOUDFLARE_ACCOUNT_ID to the account to deploy to",
                )
            self._shared.account_id = str(accounts[0]["id"])
            return self._shared.account_id

    async def verify(self, where: str | None = None) -> str:
        """Check the token (``GET /user/tokens/verify``); returns its status (``active``)."""
        result = await self.call("GET", "/user/tokens/verify", where=where)
        status = str((result or {}).get("status", "unknown"))
        if status != "active":
            raise ConfigError(
                f"the Cloudflare API token is {status}",
                where=where,
                fix="create a new token in the Cloudflare dashboard and log in again",
            )
        return status

    async def account_path(self, where: str | None = None) -> str:
        """``/accounts/{account_id}``."""
        return f"/accounts/{await self.account_id(where)}"

    async def workers_subdomain(self, where: str | None = None) -> str | None:
        """The account's ``*.workers.dev`` subdomain, or None when it has none."""
        if self._shared.subdomain is None:
            try:
                result = await self.call(
                    "GET", f"{await self.account_path(where)}/workers/subdomain", where=where
                )
            except CloudflareError as exc:
                if exc.status == 404:
                    return None
                raise
            self._shared.subdomain = str((result or {}).get("subdomain") or "")
        return self._shared.subdomain or None

    # ---------------------------------------------------------------- calls
    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Any = None,
        where: str | None = None,
        ok_statuses: frozenset[int] = frozenset(),
    ) -> Any:
        """One API call; returns the envelope's ``result``. A status in ``ok_statuses``
        (e.g. 404 on a delete) returns None instead of raising."""
        envelope = await self.envelope(
            method,
            path,
            json=json,
            params=params,
            files=files,
            where=where,
            ok_statuses=ok_statuses,
        )
        return None if envelope is None else envelope.get("result")

    async def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        where: str | None = None,
        per_page: int = 100,
        cursor: bool = False,
    ) -> list[dict[str, Any]]:
        """Every item of a list endpoint, page by page (``page``/``per_page``) or by
        ``result_info.cursor`` when ``cursor`` is true. R2's ``{buckets: [...]}`` result
        is unwrapped."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {**(params or {}), "per_page": per_page}
        page = 1
        while True:
            if not cursor:
                query["page"] = page
            envelope = await self.envelope("GET", path, params=query, where=where)
            assert envelope is not None
            result = envelope.get("result") or []
            if isinstance(result, dict):
                result = next((v for v in result.values() if isinstance(v, list)), [])
            items.extend(result)
            info = envelope.get("result_info") or {}
            if cursor:
                next_cursor = info.get("cursor")
                if not next_cursor or not result:
                    return items
                query["cursor"] = next_cursor
            else:
                total_pages = info.get("total_pages")
                if not result or (total_pages is not None and page >= int(total_pages)):
                    return items
                if total_pages is None and len(result) < per_page:
                    return items
                page += 1

    async def envelope(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Any = None,
        where: str | None = None,
        ok_statuses: frozenset[int] = frozenset(),
    ) -> dict[str, Any] | None:
        """One API call; returns the whole envelope (for ``result_info``)."""
        import httpx

        if self._shared.auth_error is not None:
            raise self._auth_failed(where)
        attempt = 0
        lost = False  # an attempt whose outcome is unknown (no answer, or a 5xx)
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                async with self._shared.slots:
                    if self._shared.auth_error is not None:  # learnt while this one waited
                        raise self._auth_failed(where)
                    self._shared.requests += 1
                    response = await self._http.request(
                        method, path, json=json, params=params, files=files
                    )
            except httpx.TransportError as exc:
                if attempt >= self.max_attempts:
                    raise ProviderError(
                        f"the Cloudflare API did not answer {method} {path} after "
                        f"{attempt} attempts: {type(exc).__name__}: {exc}",
                        where=where,
                        fix="check the network (and CLOUDFLARE_API_BASE_URL if set), "
                        "then deploy again",
                    ) from None
                lost = True
                await asyncio.sleep(self._delay(attempt, None))
                continue
            status = response.status_code
            if status in _RETRY_STATUSES and attempt < self.max_attempts:
                lost = lost or status >= 500
                retry_after = _retry_after(response.headers.get("retry-after"))
                await asyncio.sleep(self._delay(attempt, retry_after))
                continue
            body = _json(response)
            if 200 <= status < 300 and (body is None or body.get("success", True)):
                return body if body is not None else {"result": None}
            if status in ok_statuses:
                return None
            error = self._error(method, path, status, body, where, attempt)
            error.retried = lost
            raise error

    def _auth_failed(self, where: str | None) -> CloudflareError:
        """The rejected token's error, for this call (sent no request)."""
        first = self._shared.auth_error
        assert first is not None
        return CloudflareError(
            first.what,
            status=first.status,
            code=first.code,
            message=first.message,
            where=where,
            fix=first.fix,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 60.0) + random.uniform(0, self.backoff / 4)
        base = min(self.backoff * 2.0 ** (attempt - 1), 10.0)
        return base / 2 + random.uniform(0, base / 2)

    def _error(
        self,
        method: str,
        path: str,
        status: int,
        body: dict[str, Any] | None,
        where: str | None,
        attempt: int,
    ) -> CloudflareError:
        errors = (body or {}).get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        code = int(first.get("code") or 0)
        message = str(first.get("message") or (errors[0] if errors else "") or "no message")
        more = "; ".join(
            f"{e.get('code')}: {e.get('message')}" for e in errors[1:] if isinstance(e, dict)
        )
        label = f"Cloudflare error {code}: {message}" if code else f"Cloudflare: {message}"
        if more:
            label += f" (also {more})"
        if status in (401, 403) and (code in AUTH_CODES or not code):
            error = CloudflareError(
                f"the Cloudflare API token was rejected (HTTP {status}, {label})",
                status=status,
                code=code,
                message=message,
                where=where,
                fix="set CLOUDFLARE_API_TOKEN to a valid token with the Workers, D1, KV "
                "and R2 edit permissions (or log in again: alchemy-nb cloudflare login)",
            )
            self._shared.auth_error = error
            return error
        account = re.match(r"/accounts/([^/]+)", path)
        if code == 7003 and account and status in (400, 403, 404):
            return CloudflareError(
                f"the Cloudflare account {account.group(1)!r} does not exist or this token "
                f"cannot see it (HTTP {status}, {label})",
                status=status,
                code=code,
                message=message,
                where=where,
                fix="set CLOUDFLARE_ACCOUNT_ID to an account the token can use (or unset "
                "it when the token sees exactly one)",
            )
        if status == 429 or status >= 500:
            what = f"{method} {path} still failed after {attempt} attempts (HTTP {status}, {label})"
            fix = "Cloudflare is rate-limiting or failing; wait a few minutes and deploy again"
        else:
            what = f"{method} {path} failed (HTTP {status}, {label})"
            fix = None
        return CloudflareError(
            what, status=status, code=code, message=message, where=where, fix=fix
        )


def _json(response: Any) -> dict[str, Any] | None:
    if not response.content:
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else {"result": data}


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"{name}={raw!r} is not a positive number",
            fix=f"set it to a positive integer (default {default})",
        )
    return value


def _env_concurrency() -> int:
    return _env_int("CLOUDFLARE_MAX_CONCURRENCY", 16)


class _Shared:
    """What every client of one account shares within an event loop: the concurrency
    cap, the discovered account id and subdomain, and a rejected token."""

    def __init__(self, max_concurrency: int, account_id: str | None) -> None:
        self.slots = asyncio.Semaphore(max_concurrency)
        self.account_lock = asyncio.Lock()
        self.account_id = account_id
        self.auth_error: CloudflareError | None = None
        self.subdomain: str | None = None
        self.requests = 0
        self.http: Any = None
        """The shared connection pool (an ``httpx.AsyncClient``)."""

    async def close_with_loop(self) -> None:
        """Wait until ``asyncio.run`` cancels the loop's remaining tasks at its end, then
        close the pool, so no connection outlives its loop."""
        try:
            await asyncio.Event().wait()
        finally:
            if self.http is not None:
                await self.http.aclose()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every client (building one costs milliseconds)."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, _Shared]] = (
    weakref.WeakKeyDictionary()
)


def client_for(profile: str | None = None) -> CloudflareClient:
    """A client for the current credentials (``async with client_for() as client``).
    Clients made in the same event loop share one concurrency cap, the discovered
    account and a rejected token, so one deploy's resources stay under the cap together."""
    from ._profiles import resolve_credentials

    credentials = resolve_credentials(profile)
    cap = _env_concurrency()
    attempts = _env_int("CLOUDFLARE_MAX_ATTEMPTS", 8)
    per_loop = _shared.setdefault(asyncio.get_running_loop(), {})
    key = (credentials.token, credentials.account_id, credentials.base_url, cap)
    shared = per_loop.get(key)
    if shared is None:
        shared = per_loop[key] = _Shared(cap, credentials.account_id)
        client = CloudflareClient(
            credentials, max_concurrency=cap, shared=shared, max_attempts=attempts
        )
        client._owns_http = False
        task = asyncio.get_running_loop().create_task(shared.close_with_loop())
        _keepers.add(task)
        task.add_done_callback(_keepers.discard)
        return client
    return CloudflareClient(credentials, max_concurrency=cap, shared=shared, max_attempts=attempts)


_keepers: set[asyncio.Task[None]] = set()
