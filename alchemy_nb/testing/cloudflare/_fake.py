"""A contract fake of the Cloudflare REST API: a real HTTP server on 127.0.0.1 with
in-memory state.

Every request is validated against the vendor's OpenAPI description (a trimmed copy ships
as ``openapi.json`` beside this module) with openapi-core before it is served, and every
response before it is sent. The ``metadata`` part of a Worker upload (``PUT`` script) or a
version upload (``POST .../versions``) is decoded and validated against
``workers_script_upload_metadata`` or ``workers_version_upload_metadata`` separately.
Versions and deployments are kept per script: a script upload creates a version and a
deployment of it at 100%; a version upload creates a version that serves nothing until a
deployment (one version at 100%, or two whose percentages add up to 100) names it.
Queues keep their consumers; a queue's producers are the scripts whose serving version
binds it. Queue errors carry Cloudflare's codes: 10104 (QueueNotFound, as Cloudflare's
Queues error-code reference documents it) for an unknown queue, 11009 for a queue name
already taken, 11004 for a second consumer of one script on one queue. Other error codes
the description does not fix are the fake's choice: 10007 for an unknown script or
version, 10021 for a refused upload or deployment, 11000 for an unknown consumer. A
request the contract does not describe is answered as Cloudflare answers an unknown route
(404, code 7000) and recorded in :attr:`FakeCloudflare.violations`, which a test asserts
is empty.

Faults for resilience tests: ``latency`` (seconds per call), ``rate_limit_ratio`` (share of
calls answered 429 with ``Retry-After``), ``error_ratio`` (share answered 503 before they
are served), ``lost_response_ratio`` (share served, then answered 502: the client cannot
know the call took effect).

Example::

    with FakeCloudflare(latency=0.05) as fake:
        os.environ["CLOUDFLARE_API_BASE_URL"] = fake.base_url
        os.environ["CLOUDFLARE_API_TOKEN"] = fake.token
        ...                                   # deploy a stage whose target is cloudflare
        assert not fake.violations
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import os
import random
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["FakeCloudflare", "FakeDeployment", "FakeScript", "FakeVersion", "mock_cloudflare"]

SPEC_PATH = Path(__file__).with_name("openapi.json")
_HOST = "http://fake.invalid"
_PREFIX = "/client/v4"
_MAX_SCRIPT_BYTES = 10 * 1024 * 1024


class _Fail(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class FakeVersion:
    """One Worker version: what one upload sent (a script upload, or a version upload that
    deploys nothing)."""

    id: str
    number: int
    metadata: dict[str, Any]
    modules: dict[str, tuple[str, bytes]]
    """Module name -> (content type, bytes)."""
    etag: str
    created_on: str
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def bindings(self) -> dict[str, dict[str, Any]]:
        """The uploaded bindings by name."""
        return {b["name"]: b for b in self.metadata.get("bindings", [])}


@dataclass
class FakeDeployment:
    """One deployment: which versions serve the script's traffic, and what share each."""

    id: str
    created_on: str
    source: str
    versions: list[dict[str, Any]]
    """``{"version_id": ..., "percentage": ...}`` for each version, as created."""
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def split(self) -> dict[str, float]:
        """Version id -> percentage of traffic."""
        return {v["version_id"]: v["percentage"] for v in self.versions}


@dataclass
class FakeScript:
    """A Worker script: its versions and deployments, and (as ``metadata``, ``modules``,
    ``etag``) the version serving the most traffic in the latest deployment."""

    name: str
    metadata: dict[str, Any]
    modules: dict[str, tuple[str, bytes]]
    """Module name -> (content type, bytes)."""
    etag: str
    created_on: str
    modified_on: str
    migration_tag: str | None = None
    subdomain_enabled: bool = False
    previews_enabled: bool = False
    versions: list[FakeVersion] = field(default_factory=list)
    """Every version uploaded, oldest first."""
    deployments: list[FakeDeployment] = field(default_factory=list)
    """Every deployment, oldest first; the last one serves traffic."""

    @property
    def bindings(self) -> dict[str, dict[str, Any]]:
        """The serving version's bindings by name."""
        return {b["name"]: b for b in self.metadata.get("bindings", [])}

    @property
    def active(self) -> FakeDeployment | None:
        """The deployment serving traffic now."""
        return self.deployments[-1] if self.deployments else None

    def version(self, version_id: str) -> FakeVersion | None:
        """The version with that id, or None."""
        return next((v for v in self.versions if v.id == version_id), None)


@cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    spec["servers"] = [{"url": _HOST + _PREFIX}]
    # Two upstream defects in the security requirements, read as the API behaves: the
    # Workflows operations declare ONE requirement joining all three schemes (token AND
    # email AND key) where the others list alternatives, and a few operations (GET
    # /accounts) list only the legacy email+key pair although API tokens work there too.
    for item in spec["paths"].values():
        for operation in item.values():
            security = operation.get("security") if isinstance(operation, dict) else None
            if security and not any(req == {"api_token": []} for req in security):
                operation["security"] = [{"api_token": []}, {"api_email": [], "api_key": []}]
            # A third: some failure responses join the success envelope (success: [true])
            # with the failure envelope (success: [false]) in one allOf, so that no failure
            # could ever validate; those are checked against the failure envelope alone.
            for code, response in (operation.get("responses") or {}).items():
                media = (response.get("content") or {}).get("application/json") or {}
                parts = (media.get("schema") or {}).get("allOf") or []
                refs = [part.get("$ref", "") for part in parts]
                if code.startswith("4") and any(r.endswith("common-failure") for r in refs):
                    failure = next(r for r in refs if r.endswith("common-failure"))
                    media["schema"] = {"$ref": failure}
    return spec


def _inline_refs(node: Any, components: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """The same document with its ``#/components`` references inlined (a recursive one
    stays a reference): validating then skips openapi-core's slow reference resolution."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/") and len(node) == 1:
            if ref in seen:
                return node
            target: Any = components
            for part in ref[len("#/components/") :].split("/"):
                target = target[part]
            return _inline_refs(target, components, (*seen, ref))
        return {k: _inline_refs(v, components, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, components, seen) for v in node]
    return node


@cache
def _openapi() -> Any:
    from openapi_core import Config, OpenAPI
    from openapi_core.templating.paths.finders import APICallPathFinder

    found: dict[tuple[int, str, str], Any] = {}

    class RememberingPathFinder(APICallPathFinder):
        """openapi-core's own path finder, remembering what it found for a method and URL
        (a request and its response look the same operation up twice)."""

        def find(self, method: str, name: str) -> Any:
            key = (id(self.spec), method, name)
            if key not in found:
                if len(found) > 4096:
                    found.clear()
                found[key] = super().find(method, name)
            return found[key]

    spec = dict(_spec())
    spec["paths"] = _inline_refs(spec["paths"], spec["components"])
    return OpenAPI.from_dict(spec, config=Config(path_finder_cls=RememberingPathFinder))


@cache
def _metadata_validator() -> Any:
    from openapi_schema_validator import OAS30WriteValidator

    return OAS30WriteValidator(
        {
            "$ref": "#/components/schemas/workers_script_upload_metadata",
            "components": _spec()["components"],
        }
    )


@cache
def _version_metadata_validator() -> Any:
    from openapi_schema_validator import OAS30WriteValidator

    return OAS30WriteValidator(
        {
            "$ref": "#/components/schemas/workers_version_upload_metadata",
            "components": _spec()["components"],
        }
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _hex() -> str:
    return uuid.uuid4().hex


class FakeCloudflare:
    """The fake server. Use it as a context manager (it runs in a background thread) or
    call :meth:`start` / :meth:`stop`. ``base_url`` is what ``CLOUDFLARE_API_BASE_URL``
    takes; ``token`` is the only API token it accepts."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        rate_limit_ratio: float = 0.0,
        error_ratio: float = 0.0,
        retry_after: int = 1,
        lost_response_ratio: float = 0.0,
        seed: int = 0,
        token: str = "fake-cloudflare-token",
        accounts: int = 1,
        workers_subdomain: str | None = "fake-account",
        max_script_bytes: int = _MAX_SCRIPT_BYTES,
        port: int = 0,
    ) -> None:
        self.latency = latency
        self.rate_limit_ratio = rate_limit_ratio
        self.error_ratio = error_ratio
        self.retry_after = retry_after
        self.lost_response_ratio = lost_response_ratio
        self.token = token
        self.max_script_bytes = max_script_bytes
        self.port = port
        self._random = random.Random(seed)
        self.accounts = [
            {"id": uuid.uuid5(uuid.NAMESPACE_DNS, f"account{i}").hex, "name": f"Account {i}"}
            for i in range(accounts)
        ]
        self.workers_subdomain = workers_subdomain
        self.scripts: dict[str, FakeScript] = {}
        self.do_namespaces: list[dict[str, Any]] = []
        self.kv: dict[str, dict[str, Any]] = {}
        self.d1: dict[str, dict[str, Any]] = {}
        self._d1_conns: dict[str, sqlite3.Connection] = {}
        self.r2: dict[str, dict[str, Any]] = {}
        self.workflows: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        """Queue id -> ``{queue_id, queue_name, created_on, modified_on}``."""
        self.consumers: dict[str, list[dict[str, Any]]] = {}
        """Queue id -> its consumers (``consumer_id``, ``script_name``, ``settings``, ...)."""
        self.violations: list[str] = []
        """Requests or responses that broke the contract (empty in a passing test)."""
        self.requests = 0
        self.faults = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.log: list[tuple[str, str, int]] = []
        """(method, path, status) of every request, in order."""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._routes = self._route_table()

    # ----------------------------------------------------------------- running
    @property
    def account_id(self) -> str:
        """The first account's id."""
        return str(self.accounts[0]["id"])

    @property
    def base_url(self) -> str:
        """The API's base URL (``http://127.0.0.1:PORT/client/v4``)."""
        return f"http://127.0.0.1:{self.port}{_PREFIX}"

    def app(self) -> Any:
        """The ASGI application (Starlette)."""
        from starlette.applications import Starlette
        from starlette.routing import Route

        methods = ["GET", "PUT", "POST", "DELETE", "PATCH"]
        return Starlette(
            routes=[
                Route("/__fake__/stats", self._stats, methods=["GET"]),
                Route("/__fake__/faults", self._set_faults, methods=["POST"]),
                Route("/{path:path}", self._handle, methods=methods),
            ]
        )

    def environ(self) -> dict[str, str]:
        """The variables that point the Cloudflare target at this fake."""
        return {
            "CLOUDFLARE_API_BASE_URL": self.base_url,
            "CLOUDFLARE_API_TOKEN": self.token,
            "CLOUDFLARE_ACCOUNT_ID": self.account_id,
        }

    def start(self) -> FakeCloudflare:
        """Serve in a background thread until :meth:`stop`; returns self."""
        import uvicorn

        _openapi()  # load the contract before the first request
        config = uvicorn.Config(
            self.app(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            loop="asyncio",
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()
        server = self._server

        def run() -> None:
            try:
                asyncio.run(self._serve(server, started))
            finally:
                started.set()

        self._thread = threading.Thread(target=run, name="fake-cloudflare", daemon=True)
        self._thread.start()
        if not started.wait(30) or not server.started:
            raise RuntimeError("the fake Cloudflare server did not start")
        return self

    async def _serve(self, server: Any, started: threading.Event) -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            self.port = server.servers[0].sockets[0].getsockname()[1]
        started.set()
        await task

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        for conn in self._d1_conns.values():
            conn.close()
        self._d1_conns.clear()

    def __enter__(self) -> FakeCloudflare:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """Counters: requests, injected faults, the most requests in flight at once,
        contract violations."""
        return {
            "requests": self.requests,
            "faults": self.faults,
            "max_in_flight": self.max_in_flight,
            "violations": list(self.violations),
        }

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<FakeCloudflare {self.base_url}: {s['requests']} requests, {s['faults']} faults, "
            f"{len(s['violations'])} contract violations>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        import html

        items = "".join(f"<li>{html.escape(v)}</li>" for v in self.violations)
        return {
            "text/plain": repr(self),
            "text/html": f"<div><code>{html.escape(repr(self))}</code><ul>{items}</ul></div>",
        }

    async def _stats(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse(self.stats())

    async def _set_faults(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        body = await request.json()
        for key in (
            "latency",
            "rate_limit_ratio",
            "error_ratio",
            "retry_after",
            "lost_response_ratio",
        ):
            if key in body:
                setattr(self, key, body[key])
        if body.get("reset_stats"):
            self.requests = self.faults = self.max_in_flight = 0
        return JSONResponse(self.stats())

    # ----------------------------------------------------------------- handling
    async def _handle(self, request: Any) -> Any:
        from starlette.responses import Response

        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            body = await request.body()
            status, payload, headers = await self._answer(request, body)
        finally:
            self.in_flight -= 1
        self.log.append((request.method, request.url.path, status))
        if payload is None:
            return Response(status_code=status, headers=headers)
        return Response(
            json.dumps(payload), status_code=status, headers=headers, media_type="application/json"
        )

    async def _answer(
        self, request: Any, body: bytes
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        from openapi_core.testing import MockRequest, MockResponse

        path = request.url.path
        content_type = request.headers.get("content-type", "")
        mock = MockRequest(
            _HOST,
            request.method.lower(),
            path,
            args=dict(request.query_params),
            data=body,
            headers=dict(request.headers),
            content_type=content_type or "application/json",
        )
        api = _openapi()
        try:
            api.validate_request(mock)
        except Exception as exc:
            return self._violation(request.method, path, exc)
        if (self.rate_limit_ratio or self.error_ratio) and path.startswith(_PREFIX + "/accounts"):
            roll = self._random.random()
            if roll < self.rate_limit_ratio:
                self.faults += 1
                return (
                    429,
                    _envelope_error(971, "Please wait and consider throttling your request speed"),
                    {"Retry-After": str(self.retry_after)},
                )
            if roll < self.rate_limit_ratio + self.error_ratio:
                self.faults += 1
                return 503, _envelope_error(10013, "Service temporarily unavailable"), {}
        try:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                raise _Fail(403, 10000, "Authentication error")
            status, payload = await self._dispatch(request, path[len(_PREFIX) :], body)
        except _Fail as fail:
            status, payload = fail.status, _envelope_error(fail.code, fail.message)
        if self.lost_response_ratio and self._random.random() < self.lost_response_ratio:
            self.faults += 1  # done, but the answer is lost on the way: a 502
            return 502, _envelope_error(10013, "Bad gateway"), {}
        if payload is not None:
            response = MockResponse(
                json.dumps(payload).encode(), status_code=status, content_type="application/json"
            )
            try:
                api.validate_response(mock, response)
            except Exception as exc:
                self.violations.append(f"response to {request.method} {path}: {_explain(exc)}")
        return status, payload, {}

    def _violation(
        self, method: str, path: str, exc: Exception
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        from openapi_core.templating.paths.exceptions import PathError

        what = _explain(exc)
        self.violations.append(f"request {method} {path}: {what}")
        if isinstance(exc, PathError):
            return 404, _envelope_error(7000, f"No route for that URI ({what})"), {}
        if "security" in type(exc).__name__.lower():
            return (
                401,
                _envelope_error(9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers"),
                {},
            )
        # the details (which may quote a request's values) stay in ``violations``
        return (
            400,
            _envelope_error(10001, f"contract: {type(exc).__name__}; see the fake's violations"),
            {},
        )

    async def _dispatch(self, request: Any, path: str, body: bytes) -> tuple[int, Any]:
        for method, pattern, handler in self._routes:
            if method != request.method:
                continue
            match = pattern.fullmatch(path)
            if match is None:
                continue
            params = match.groupdict()
            account = params.pop("account_id", None)
            if account is not None and account not in {a["id"] for a in self.accounts}:
                raise _Fail(
                    404,
                    7003,
                    "Could not route to /accounts/" + account + ", perhaps your object "
                    "identifier is invalid?",
                )
            query = dict(request.query_params)
            result = handler(params, query, body, request)
            if asyncio.iscoroutine(result):
                result = await result
            return result  # type: ignore[no-any-return]
        raise _Fail(404, 7000, "No route for that URI")

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Callable[..., Any]]]:
        a = "/accounts/(?P<account_id>[^/]+)"
        table: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/accounts", self._accounts),
            ("GET", "/user/tokens/verify", self._verify),
            ("GET", a + "/workers/scripts", self._scripts),
            ("PUT", a + "/workers/scripts/(?P<name>[^/]+)", self._upload),
            ("GET", a + "/workers/scripts/(?P<name>[^/]+)", self._download),
            ("DELETE", a + "/workers/scripts/(?P<name>[^/]+)", self._delete_script),
            ("GET", a + "/workers/scripts/(?P<name>[^/]+)/subdomain", self._script_subdomain),
            ("POST", a + "/workers/scripts/(?P<name>[^/]+)/subdomain", self._set_script_subdomain),
            (
                "DELETE",
                a + "/workers/scripts/(?P<name>[^/]+)/subdomain",
                self._del_script_subdomain,
            ),
            ("POST", a + "/workers/scripts/(?P<name>[^/]+)/versions", self._version_upload),
            ("GET", a + "/workers/scripts/(?P<name>[^/]+)/versions", self._versions_list),
            (
                "GET",
                a + "/workers/scripts/(?P<name>[^/]+)/versions/(?P<version>[^/]+)",
                self._version_get,
            ),
            ("POST", a + "/workers/scripts/(?P<name>[^/]+)/deployments", self._deploy_versions),
            ("GET", a + "/workers/scripts/(?P<name>[^/]+)/deployments", self._deployments_list),
            ("GET", a + "/workers/subdomain", self._account_subdomain),
            ("PUT", a + "/workers/subdomain", self._set_account_subdomain),
            ("GET", a + "/workers/durable_objects/namespaces", self._do_list),
            ("GET", a + "/storage/kv/namespaces", self._kv_list),
            ("POST", a + "/storage/kv/namespaces", self._kv_create),
            ("GET", a + "/storage/kv/namespaces/(?P<ns>[^/]+)", self._kv_get),
            ("PUT", a + "/storage/kv/namespaces/(?P<ns>[^/]+)", self._kv_rename),
            ("DELETE", a + "/storage/kv/namespaces/(?P<ns>[^/]+)", self._kv_delete),
            ("GET", a + "/d1/database", self._d1_list),
            ("POST", a + "/d1/database", self._d1_create),
            ("GET", a + "/d1/database/(?P<db>[^/]+)", self._d1_get),
            ("DELETE", a + "/d1/database/(?P<db>[^/]+)", self._d1_delete),
            ("POST", a + "/d1/database/(?P<db>[^/]+)/query", self._d1_query),
            ("GET", a + "/r2/buckets", self._r2_list),
            ("POST", a + "/r2/buckets", self._r2_create),
            ("GET", a + "/r2/buckets/(?P<bucket>[^/]+)", self._r2_get),
            ("DELETE", a + "/r2/buckets/(?P<bucket>[^/]+)", self._r2_delete),
            ("GET", a + "/workflows", self._wf_list),
            ("GET", a + "/workflows/(?P<wf>[^/]+)", self._wf_get),
            ("PUT", a + "/workflows/(?P<wf>[^/]+)", self._wf_put),
            ("DELETE", a + "/workflows/(?P<wf>[^/]+)", self._wf_delete),
            ("GET", a + "/queues", self._q_list),
            ("POST", a + "/queues", self._q_create),
            ("GET", a + "/queues/(?P<q>[^/]+)", self._q_get),
            ("DELETE", a + "/queues/(?P<q>[^/]+)", self._q_delete),
            ("GET", a + "/queues/(?P<q>[^/]+)/consumers", self._qc_list),
            ("POST", a + "/queues/(?P<q>[^/]+)/consumers", self._qc_create),
            ("DELETE", a + "/queues/(?P<q>[^/]+)/consumers/(?P<c>[^/]+)", self._qc_delete),
        ]
        return [(m, re.compile(p), h) for m, p, h in table]

    # ----------------------------------------------------------------- accounts
    def _accounts(self, params: dict[str, str], query: dict[str, str], *_: Any) -> Any:
        return _page(self.accounts, query, default=20)

    def _verify(self, *_: Any) -> Any:
        return 200, _ok({"id": _hex(), "status": "active"})

    # ----------------------------------------------------------------- workers
    def _script_summary(self, s: FakeScript) -> dict[str, Any]:
        return {
            "id": s.name,
            "etag": s.etag,
            "created_on": s.created_on,
            "modified_on": s.modified_on,
        }

    def _scripts(self, *_: Any) -> Any:
        return 200, _ok([self._script_summary(s) for s in self.scripts.values()])

    async def _accept(
        self, name: str, body: bytes, request: Any, validator: Any, what: str
    ) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        """The checks every upload passes (name, size, metadata, modules, bindings)."""
        if not re.fullmatch(r"[a-z0-9_][a-z0-9-_]*", name):
            raise _Fail(400, 10016, f"invalid script name {name!r}")
        if len(body) > self.max_script_bytes:
            raise _Fail(
                400,
                10027,
                f"Your Worker exceeded the size limit of {self.max_script_bytes // 1024} KiB",
            )
        metadata, modules = await _parse_upload(request, body)
        errors = sorted(validator.iter_errors(metadata), key=lambda e: [str(p) for p in e.path])
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(metadata)"
            self.violations.append(f"{what} metadata of {name}: {where}: {errors[0].message}")
            # the answer names the place and the rule, never the value (it may be a secret)
            raise _Fail(400, 10021, f"metadata: {where}: fails {errors[0].validator!r}")
        main = metadata.get("main_module")
        if not main or main not in modules:
            raise _Fail(400, 10021, f"main_module {main!r} is not one of the uploaded parts")
        flags = metadata.get("compatibility_flags", [])
        for module, (ctype, content) in modules.items():
            if ctype == "text/x-python":
                if "python_workers" not in flags:
                    raise _Fail(
                        400, 10021, "Python modules need the python_workers compatibility flag"
                    )
                try:
                    ast.parse(content.decode(), filename=module)
                except (SyntaxError, UnicodeDecodeError) as exc:
                    line = getattr(exc, "lineno", None)
                    raise _Fail(
                        400,
                        10021,
                        f"Uncaught SyntaxError in {module}"
                        + (f" line {line}" if line else "")
                        + f": {getattr(exc, 'msg', exc)}",
                    ) from None
        return metadata, modules

    def _new_version(
        self,
        script: FakeScript,
        metadata: dict[str, Any],
        modules: dict[str, tuple[str, bytes]],
        body: bytes,
        triggered_by: str,
    ) -> FakeVersion:
        annotations = {
            k: v for k, v in (metadata.get("annotations") or {}).items() if isinstance(v, str)
        }
        version = FakeVersion(
            id=str(uuid.uuid4()),
            number=len(script.versions) + 1,
            metadata=metadata,
            modules=modules,
            etag=hashlib.sha256(body).hexdigest(),
            created_on=_now(),
            annotations={**annotations, "workers/triggered_by": triggered_by},
        )
        script.versions.append(version)
        for binding in metadata.get("bindings", []):
            if binding.get("type") == "workflow" and binding.get("class_name"):
                self._register_workflow(
                    binding["workflow_name"],
                    binding["class_name"],
                    binding.get("script_name") or script.name,
                )
        return version

    def _deploy_split(
        self,
        script: FakeScript,
        split: list[dict[str, Any]],
        annotations: dict[str, str],
        source: str,
    ) -> FakeDeployment:
        deployment = FakeDeployment(
            id=str(uuid.uuid4()),
            created_on=_now(),
            source=source,
            versions=split,
            annotations=annotations,
        )
        script.deployments.append(deployment)
        top = max(split, key=lambda v: v["percentage"])["version_id"]
        serving = script.version(top)
        assert serving is not None
        script.metadata, script.modules, script.etag = (
            serving.metadata,
            serving.modules,
            serving.etag,
        )
        script.modified_on = deployment.created_on
        return deployment

    async def _upload(
        self, params: dict[str, str], query: dict[str, str], body: bytes, request: Any
    ) -> Any:
        """PUT .../scripts/NAME: upload a new version and deploy it to 100% at once (the
        only upload that may carry Durable Object migrations)."""
        name = params["name"]
        metadata, modules = await self._accept(name, body, request, _metadata_validator(), "upload")
        old = self.scripts.get(name)
        migrations = metadata.get("migrations")
        new_tag = old.migration_tag if old else None
        if migrations:
            current = old.migration_tag if old else None
            if migrations.get("old_tag") != current:
                raise _Fail(
                    412,
                    10079,
                    f"Migration tag precondition failed; expected tag is '{current or ''}'",
                )
            steps = migrations.get("steps") or [migrations]
            for step in steps:
                for cls, sqlite in [(c, False) for c in step.get("new_classes", [])] + [
                    (c, True) for c in step.get("new_sqlite_classes", [])
                ]:
                    self.do_namespaces.append(
                        {
                            "id": _hex(),
                            "name": f"{name}_{cls}",
                            "script": name,
                            "class": cls,
                            "use_sqlite": sqlite,
                        }
                    )
                for cls in step.get("deleted_classes", []):
                    self.do_namespaces = [
                        n
                        for n in self.do_namespaces
                        if not (n["script"] == name and n["class"] == cls)
                    ]
            new_tag = migrations.get("new_tag")
        for binding in metadata.get("bindings", []):
            self._check_binding(name, binding)
        now = _now()
        script = old or FakeScript(
            name=name, metadata={}, modules={}, etag="", created_on=now, modified_on=now
        )
        script.migration_tag = new_tag
        self.scripts[name] = script
        version = self._new_version(script, metadata, modules, body, "upload")
        self._deploy_split(script, [{"version_id": version.id, "percentage": 100}], {}, "api")
        result = {**self._script_summary(script), "handlers": ["fetch"], "startup_time_ms": 1}
        return 200, _ok(result)

    async def _version_upload(
        self, params: dict[str, str], query: dict[str, str], body: bytes, request: Any
    ) -> Any:
        """POST .../scripts/NAME/versions: a new version of an existing script, deployed to
        no traffic until a deployment names it."""
        script = self._script(params["name"])
        metadata, modules = await self._accept(
            script.name, body, request, _version_metadata_validator(), "version upload"
        )
        if "migrations" in metadata:
            raise _Fail(
                400,
                10021,
                "Durable Object migrations cannot be applied by a version upload; "
                "upload the script (PUT) instead",
            )
        for binding in metadata.get("bindings", []):
            self._check_binding(script.name, binding)
        version = self._new_version(script, metadata, modules, body, "upload")
        return 200, _ok(self._version_view(script, version, full=True))

    def _version_view(
        self, script: FakeScript, version: FakeVersion, *, full: bool
    ) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": version.id,
            "number": version.number,
            "metadata": {
                "author_email": "user@example.com",
                "created_on": version.created_on,
                "modified_on": version.created_on,
                "source": "api",
            },
            "annotations": version.annotations,
        }
        if full:
            view["resources"] = {
                "bindings": version.metadata.get("bindings", []),
                "script": {"etag": version.etag, "handlers": ["fetch"]},
                "script_runtime": {
                    "compatibility_date": version.metadata.get("compatibility_date", ""),
                    "compatibility_flags": version.metadata.get("compatibility_flags", []),
                },
            }
        return view

    def _versions_list(self, params: dict[str, str], *_: Any) -> Any:
        script = self._script(params["name"])
        items = [self._version_view(script, v, full=False) for v in reversed(script.versions)]
        return 200, _ok({"items": items})

    def _version_get(self, params: dict[str, str], *_: Any) -> Any:
        script = self._script(params["name"])
        version = script.version(params["version"])
        if version is None:
            raise _Fail(404, 10007, f"version {params['version']!r} does not exist")
        return 200, _ok(self._version_view(script, version, full=True))

    def _deployment_view(self, deployment: FakeDeployment) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": deployment.id,
            "source": deployment.source,
            "strategy": "percentage",
            "author_email": "user@example.com",
            "created_on": deployment.created_on,
            "versions": deployment.versions,
        }
        if deployment.annotations:
            view["annotations"] = deployment.annotations
        return view

    def _deploy_versions(
        self, params: dict[str, str], query: dict[str, str], body: bytes, *_: Any
    ) -> Any:
        """POST .../scripts/NAME/deployments: one version at 100%, or two whose
        percentages add up to 100."""
        script = self._script(params["name"])
        data = json.loads(body)
        split = data["versions"]
        if not 1 <= len(split) <= 2:
            raise _Fail(400, 10021, f"a deployment has one or two versions, not {len(split)}")
        ids = [v["version_id"] for v in split]
        if len(set(ids)) != len(ids):
            raise _Fail(400, 10021, "a deployment names each version once")
        for version_id in ids:
            if script.version(version_id) is None:
                raise _Fail(404, 10007, f"version {version_id!r} does not exist")
        total = sum(float(v["percentage"]) for v in split)
        if abs(total - 100) > 1e-9:
            raise _Fail(400, 10021, f"the versions' percentages add up to {total:g}, not 100")
        annotations = {
            k: v for k, v in (data.get("annotations") or {}).items() if isinstance(v, str)
        }
        split = [{"version_id": v["version_id"], "percentage": v["percentage"]} for v in split]
        deployment = self._deploy_split(script, split, annotations, "api")
        return 200, _ok(self._deployment_view(deployment))

    def _deployments_list(self, params: dict[str, str], *_: Any) -> Any:
        script = self._script(params["name"])
        views = [self._deployment_view(d) for d in reversed(script.deployments)]
        return 200, _ok({"deployments": views})

    def _check_binding(self, script: str, b: dict[str, Any]) -> None:
        kind, name = b.get("type"), b.get("name")
        missing = None
        if kind == "kv_namespace" and b["namespace_id"] not in self.kv:
            missing = f"KV namespace {b['namespace_id']}"
        elif kind == "d1" and b["database_id"] not in self.d1:
            missing = f"D1 database {b['database_id']}"
        elif kind == "r2_bucket" and b["bucket_name"] not in self.r2:
            missing = f"R2 bucket {b['bucket_name']}"
        elif kind == "service" and b["service"] not in self.scripts and b["service"] != script:
            missing = f"Worker {b['service']}"
        elif kind == "queue" and self._q_named(b["queue_name"]) is None:
            missing = f"Queue {b['queue_name']}"
        if missing:
            raise _Fail(400, 10021, f"binding {name}: {missing} does not exist")

    def _download(self, params: dict[str, str], *_: Any) -> Any:
        if params["name"] not in self.scripts:
            raise _Fail(404, 10007, "This Worker does not exist on your account.")
        raise _Fail(400, 10001, "the fake does not serve script downloads; read fake.scripts")

    def _delete_script(self, params: dict[str, str], query: dict[str, str], *_: Any) -> Any:
        name = params["name"]
        if name not in self.scripts:
            raise _Fail(404, 10007, "This Worker does not exist on your account.")
        bound = [n for n in self.do_namespaces if n["script"] == name]
        if bound and query.get("force") != "true":
            raise _Fail(400, 10064, "Cannot delete a Worker with Durable Object namespaces")
        del self.scripts[name]
        for consumers in self.consumers.values():
            consumers[:] = [c for c in consumers if c["script_name"] != name]
        self.do_namespaces = [n for n in self.do_namespaces if n["script"] != name]
        return 200, _ok(None)

    def _script(self, name: str) -> FakeScript:
        script = self.scripts.get(name)
        if script is None:
            raise _Fail(404, 10007, "This Worker does not exist on your account.")
        return script

    def _script_subdomain(self, params: dict[str, str], *_: Any) -> Any:
        s = self._script(params["name"])
        return 200, _ok({"enabled": s.subdomain_enabled, "previews_enabled": s.previews_enabled})

    def _set_script_subdomain(
        self, params: dict[str, str], query: Any, body: bytes, *_: Any
    ) -> Any:
        s = self._script(params["name"])
        data = json.loads(body)
        s.subdomain_enabled = bool(data["enabled"])
        s.previews_enabled = bool(data.get("previews_enabled", s.previews_enabled))
        return 200, _ok({"enabled": s.subdomain_enabled, "previews_enabled": s.previews_enabled})

    def _del_script_subdomain(self, params: dict[str, str], *_: Any) -> Any:
        s = self._script(params["name"])
        s.subdomain_enabled = s.previews_enabled = False
        return 200, _ok(None)

    def _account_subdomain(self, *_: Any) -> Any:
        if not self.workers_subdomain:
            raise _Fail(404, 10007, "This account has no workers.dev subdomain")
        return 200, _ok({"subdomain": self.workers_subdomain})

    def _set_account_subdomain(self, params: Any, query: Any, body: bytes, *_: Any) -> Any:
        self.workers_subdomain = json.loads(body)["subdomain"]
        return 200, _ok({"subdomain": self.workers_subdomain})

    def _do_list(self, params: Any, query: dict[str, str], *_: Any) -> Any:
        return 200, _ok(
            [{k: n[k] for k in ("id", "name", "script", "class")} for n in self.do_namespaces]
        )

    # ----------------------------------------------------------------- KV
    def _kv_list(self, params: Any, query: dict[str, str], *_: Any) -> Any:
        return _page(list(self.kv.values()), query, default=20, limit=(5, 100))

    def _kv_create(self, params: Any, query: Any, body: bytes, *_: Any) -> Any:
        title = json.loads(body)["title"]
        if any(ns["title"] == title for ns in self.kv.values()):
            raise _Fail(400, 10014, "a namespace with this account ID and title already exists")
        ns = {"id": _hex(), "title": title, "supports_url_encoding": True}
        self.kv[ns["id"]] = ns
        return 200, _ok(ns)

    def _kv_find(self, ns: str) -> dict[str, Any]:
        if ns not in self.kv:
            raise _Fail(404, 10013, "get namespace: 'namespace not found'")
        return self.kv[ns]

    def _kv_get(self, params: dict[str, str], *_: Any) -> Any:
        return 200, _ok(self._kv_find(params["ns"]))

    def _kv_rename(self, params: dict[str, str], query: Any, body: bytes, *_: Any) -> Any:
        ns = self._kv_find(params["ns"])
        title = json.loads(body)["title"]
        if any(o["title"] == title and o is not ns for o in self.kv.values()):
            raise _Fail(400, 10014, "a namespace with this account ID and title already exists")
        ns["title"] = title
        return 200, _ok({})

    def _kv_delete(self, params: dict[str, str], *_: Any) -> Any:
        self._kv_find(params["ns"])
        del self.kv[params["ns"]]
        return 200, _ok({})

    # ----------------------------------------------------------------- D1
    def _d1_view(self, db: dict[str, Any]) -> dict[str, Any]:
        return {k: db[k] for k in ("uuid", "name", "created_at", "version")}

    def _d1_list(self, params: Any, query: dict[str, str], *_: Any) -> Any:
        dbs = [self._d1_view(d) for d in self.d1.values()]
        if query.get("name"):
            dbs = [d for d in dbs if d["name"] == query["name"]]
        return _page(dbs, query, default=1000, limit=(10, 10000))

    def _d1_create(self, params: Any, query: Any, body: bytes, *_: Any) -> Any:
        name = json.loads(body)["name"]
        if any(d["name"] == name for d in self.d1.values()):
            raise _Fail(400, 7502, f"A database with name '{name}' already exists.")
        db = {
            "uuid": str(uuid.uuid4()),
            "name": name,
            "created_at": _now(),
            "version": "production",
        }
        self.d1[db["uuid"]] = db
        self._d1_conns[db["uuid"]] = sqlite3.connect(
            ":memory:", isolation_level=None, check_same_thread=False
        )
        return 200, _ok(self._d1_view(db))

    def _d1_find(self, db: str) -> dict[str, Any]:
        if db not in self.d1:
            raise _Fail(404, 7404, "The database could not be found")
        return self.d1[db]

    def _d1_get(self, params: dict[str, str], *_: Any) -> Any:
        db = self._d1_find(params["db"])
        conn = self._d1_conns[db["uuid"]]
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()
        return 200, _ok({**self._d1_view(db), "num_tables": tables[0], "file_size": 0})

    def _d1_delete(self, params: dict[str, str], *_: Any) -> Any:
        self._d1_find(params["db"])
        del self.d1[params["db"]]
        self._d1_conns.pop(params["db"]).close()
        return 200, _ok(None)

    def _d1_query(self, params: dict[str, str], query: Any, body: bytes, *_: Any) -> Any:
        db = self._d1_find(params["db"])
        data = json.loads(body)
        return 200, _ok(d1_execute(self._d1_conns[db["uuid"]], data["sql"], data.get("params")))

    # ----------------------------------------------------------------- R2
    def _r2_list(self, params: Any, query: dict[str, str], *_: Any) -> Any:
        names = sorted(self.r2)
        if query.get("name_contains"):
            names = [n for n in names if query["name_contains"] in n]
        start = query.get("cursor") or query.get("start_after") or ""
        names = [n for n in names if n > start]
        per_page = int(query.get("per_page", 20))
        page = names[:per_page]
        more = len(names) > per_page
        info = {"cursor": page[-1] if more else "", "per_page": per_page}
        return 200, {**_ok({"buckets": [self.r2[n] for n in page]}), "result_info": info}

    def _r2_create(self, params: Any, query: Any, body: bytes, *_: Any) -> Any:
        name = json.loads(body)["name"]
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", name):
            raise _Fail(400, 10005, f"The bucket name {name!r} is not valid")
        if name in self.r2:
            raise _Fail(409, 10004, "The bucket you tried to create already exists")
        self.r2[name] = {"name": name, "creation_date": _now(), "storage_class": "Standard"}
        return 200, _ok(self.r2[name])

    def _r2_get(self, params: dict[str, str], *_: Any) -> Any:
        if params["bucket"] not in self.r2:
            raise _Fail(404, 10006, "The specified bucket does not exist.")
        return 200, _ok(self.r2[params["bucket"]])

    def _r2_delete(self, params: dict[str, str], *_: Any) -> Any:
        if params["bucket"] not in self.r2:
            raise _Fail(404, 10006, "The specified bucket does not exist.")
        del self.r2[params["bucket"]]
        return 200, _ok({})

    # ----------------------------------------------------------------- Workflows
    def _register_workflow(self, name: str, class_name: str, script: str) -> dict[str, Any]:
        now = _now()
        wf = self.workflows.get(name)
        if wf is None:
            wf = self.workflows[name] = {
                "id": str(uuid.uuid4()),
                "name": name,
                "created_on": now,
            }
        wf.update(
            class_name=class_name,
            script_name=script,
            modified_on=now,
            triggered_on=None,
            version_id=str(uuid.uuid4()),
            is_deleted=0,
            terminator_running=0,
        )
        return wf

    def _wf_list(self, params: Any, query: dict[str, str], *_: Any) -> Any:
        return _page(list(self.workflows.values()), query, default=10, limit=(1, 100))

    def _wf_get(self, params: dict[str, str], *_: Any) -> Any:
        wf = self.workflows.get(params["wf"])
        if wf is None:
            raise _Fail(404, 10200, "Workflow not found")
        instances = dict.fromkeys(
            ("queued", "running", "paused", "errored", "terminated", "complete", "waiting"), 0
        )
        return 200, _ok({**wf, "instances": instances})

    def _wf_put(self, params: dict[str, str], query: Any, body: bytes, *_: Any) -> Any:
        data = json.loads(body)
        if data["script_name"] not in self.scripts:
            raise _Fail(400, 10021, f"script {data['script_name']!r} is not deployed")
        return 200, _ok(
            self._register_workflow(params["wf"], data["class_name"], data["script_name"])
        )

    def _wf_delete(self, params: dict[str, str], *_: Any) -> Any:
        if self.workflows.pop(params["wf"], None) is None:
            raise _Fail(404, 10200, "Workflow not found")
        return 200, _ok({"status": "ok", "success": True})

    # ----------------------------------------------------------------- Queues
    def _q_named(self, name: str) -> dict[str, Any] | None:
        return next((q for q in self.queues.values() if q["queue_name"] == name), None)

    def _q_find(self, queue_id: str) -> dict[str, Any]:
        queue = self.queues.get(queue_id)
        if queue is None:
            raise _Fail(404, 10104, "Queue does not exist")
        return queue

    def _qc_view(self, queue: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
        return {
            "consumer_id": c["consumer_id"],
            "created_on": c["created_on"],
            "queue_name": queue["queue_name"],
            "service": c["script_name"],
            "script_name": c["script_name"],
            "type": "worker",
            "dead_letter_queue": c["dead_letter_queue"],
            "settings": c["settings"],
        }

    def _q_view(self, queue: dict[str, Any]) -> dict[str, Any]:
        name = queue["queue_name"]
        producers = [
            {"type": "worker", "script": s.name}
            for s in self.scripts.values()
            if any(
                b.get("type") == "queue" and b.get("queue_name") == name
                for b in s.bindings.values()
            )
        ]
        consumers = [self._qc_view(queue, c) for c in self.consumers[queue["queue_id"]]]
        return {
            **queue,
            "producers": producers,
            "producers_total_count": len(producers),
            "consumers": consumers,
            "consumers_total_count": len(consumers),
        }

    def _q_list(self, params: Any, query: dict[str, str], *_: Any) -> Any:
        return _page([self._q_view(q) for q in self.queues.values()], query, default=100)

    def _q_create(self, params: Any, query: Any, body: bytes, *_: Any) -> Any:
        data = json.loads(body or b"null")
        name = data.get("queue_name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,63}", name):
            raise _Fail(400, 10207, "Request JSON body does not match expected schema")
        if self._q_named(name) is not None:
            raise _Fail(400, 11009, "Queue name already taken")
        now = _now()
        queue = {"queue_id": _hex(), "queue_name": name, "created_on": now, "modified_on": now}
        self.queues[queue["queue_id"]] = queue
        self.consumers[queue["queue_id"]] = []
        return 200, _ok(dict(queue))

    def _q_get(self, params: dict[str, str], *_: Any) -> Any:
        return 200, _ok(self._q_view(self._q_find(params["q"])))

    def _q_delete(self, params: dict[str, str], *_: Any) -> Any:
        self._q_find(params["q"])
        del self.queues[params["q"]]
        del self.consumers[params["q"]]
        return 200, _ok([])  # the contract's delete envelope allows only a list here

    def _qc_list(self, params: dict[str, str], query: dict[str, str], *_: Any) -> Any:
        queue = self._q_find(params["q"])
        views = [self._qc_view(queue, c) for c in self.consumers[queue["queue_id"]]]
        return _page(views, query, default=100)

    def _qc_create(self, params: dict[str, str], query: Any, body: bytes, *_: Any) -> Any:
        queue = self._q_find(params["q"])
        data = json.loads(body or b"null")
        script = data.get("script_name") if isinstance(data, dict) else None
        if not isinstance(script, str) or data.get("type", "worker") != "worker":
            raise _Fail(400, 10207, "Request JSON body does not match expected schema")
        if script not in self.scripts:
            raise _Fail(404, 10007, "This Worker does not exist on your account.")
        consumers = self.consumers[queue["queue_id"]]
        if any(c["script_name"] == script for c in consumers):
            raise _Fail(400, 11004, "workers.api.error.consumer_exists")
        dlq = data.get("dead_letter_queue") or ""
        if dlq and self._q_named(dlq) is None:
            raise _Fail(404, 10104, "Queue does not exist")
        settings = {"batch_size": 10, "max_retries": 3, "max_wait_time_ms": 5000}
        settings.update(data.get("settings") or {})
        consumer = {
            "consumer_id": _hex(),
            "created_on": _now(),
            "script_name": script,
            "dead_letter_queue": dlq,
            "settings": settings,
        }
        consumers.append(consumer)
        return 200, _ok(self._qc_view(queue, consumer))

    def _qc_delete(self, params: dict[str, str], *_: Any) -> Any:
        consumers = self.consumers[self._q_find(params["q"])["queue_id"]]
        if not any(c["consumer_id"] == params["c"] for c in consumers):
            raise _Fail(404, 11000, "consumer not found")
        consumers[:] = [c for c in consumers if c["consumer_id"] != params["c"]]
        return 200, _ok([])  # the contract's delete envelope allows only a list here


@contextmanager
def mock_cloudflare(**options: Any) -> Iterator[FakeCloudflare]:
    """Run a :class:`FakeCloudflare` (``options`` as its constructor takes them) with
    this process's environment pointing the Cloudflare target at it; both are restored
    on exit. Like moto's ``mock_aws``, for code that reads credentials from the
    environment.

    Example::

        with mock_cloudflare(latency=0.01) as fake:
            asyncio.run(app.deploy("prod"))
            assert fake.scripts and not fake.violations
    """
    fake = FakeCloudflare(**options)
    with fake:
        saved = {k: os.environ.get(k) for k in (*fake.environ(), "CLOUDFLARE_PROFILE")}
        os.environ.update(fake.environ())
        os.environ.pop("CLOUDFLARE_PROFILE", None)
        try:
            yield fake
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def d1_execute(
    conn: sqlite3.Connection, sql: str, params: list[Any] | None
) -> list[dict[str, Any]]:
    """Run ``sql`` (one or more statements) as one batch, all or nothing, the way D1's
    ``/query`` does; one result per statement."""
    statements, current = [], ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \t\r\n;"):
                statements.append(current)
            current = ""
    if current.strip(" \t\r\n;"):
        statements.append(current.rstrip(";"))
    if params and len(statements) > 1:
        raise _Fail(400, 7500, "params are only allowed with a single statement")
    results = []
    conn.execute("BEGIN")
    try:
        for statement in statements:
            cursor = conn.execute(statement, params or [])
            columns = [c[0] for c in cursor.description or []]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            results.append(
                {
                    "results": rows,
                    "success": True,
                    "meta": {
                        "changed_db": cursor.rowcount > 0,
                        "changes": max(cursor.rowcount, 0),
                        "duration": 0.1,
                        "last_row_id": cursor.lastrowid or 0,
                        "rows_read": len(rows),
                        "rows_written": max(cursor.rowcount, 0),
                        "size_after": 0,
                    },
                }
            )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        raise _Fail(400, 7500, f"{exc}: SQLITE_ERROR") from None
    return results


async def _parse_upload(
    request: Any, body: bytes
) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise _Fail(400, 10001, "Unsupported or unexpected Content Type")
    form = await request.form()
    metadata: dict[str, Any] | None = None
    modules: dict[str, tuple[str, bytes]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            if key == "metadata":
                metadata = json.loads(value)
            continue
        content = await value.read()
        ctype = (value.content_type or "").split(";")[0]
        if key == "metadata":
            metadata = json.loads(content)
        else:
            modules[value.filename or key] = (ctype, content)
    await form.close()
    if not isinstance(metadata, dict):
        raise _Fail(400, 10006, "the upload has no metadata part")
    return metadata, modules


def _ok(result: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result}


def _envelope_error(code: int, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }


def _page(
    items: list[Any],
    query: dict[str, str],
    *,
    default: int,
    limit: tuple[int, int] = (1, 1000),
) -> tuple[int, dict[str, Any]]:
    per_page = int(query.get("per_page", default))
    per_page = max(limit[0], min(limit[1], per_page))
    page = max(1, int(query.get("page", 1)))
    chunk = items[(page - 1) * per_page : page * per_page]
    total_pages = max(1, -(-len(items) // per_page))
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(chunk),
        "total_count": len(items),
        "total_pages": total_pages,
    }
    return 200, {**_ok(chunk), "result_info": info}


def _explain(exc: BaseException) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or exc.__context__
    seen = 0
    while cause is not None and seen < 3:
        details = getattr(cause, "schema_errors", None)
        if details:
            parts.append("; ".join(str(getattr(e, "message", e)) for e in details[:3]))
        else:
            parts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return " <- ".join(p for p in parts if p)
