"""Workers static assets on the local target, served the way Cloudflare serves them.

A worker with ``assets = { directory = "public" }`` answers a request from its folder
when a file matches, and runs its ``fetch`` only when none does (or first, for the
routes ``run_worker_first`` names). ``env.ASSETS.fetch(request)`` (with
``assets.binding``) asks the folder explicitly.

Cloudflare's asset worker decides per path: with ``html_handling`` (default
``auto-trailing-slash``) ``/about`` serves ``about.html``, ``/blog/`` serves
``blog/index.html`` and non-canonical forms (``/about.html``, ``/blog``) get a ``307``
to the canonical one; ``not_found_handling`` (``none``, ``404-page``,
``single-page-application``) decides what an unmatched path gets. Responses carry the
same headers: ``Content-Type`` from the file extension (``text/*`` types with
``; charset=utf-8``), a strong ``ETag``, ``Cache-Control: public, max-age=0,
must-revalidate``, and a ``304`` for a matching ``If-None-Match``.

A ``_redirects`` file (``/old /new 301``, ``/blog/* /posts/:splat``, ``/u/:id
/users/:id``; status ``200`` serves the destination in place) applies before the files,
and a ``_headers`` file (a path pattern, then indented ``Name: value`` or ``! Name``
lines) sets the headers of the responses from the folder, as on Cloudflare.

Files are read from disk on every request, so edits show without a redeploy. Files
that ``.assetsignore`` (gitignore syntax) names are not served, as wrangler does not
upload them; nor are ``.assetsignore``, ``_headers`` and ``_redirects`` themselves.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import js

from ._env import BindingContext, register_binding_type

__all__ = ["AssetServer", "AssetsBinding", "content_type"]

CACHE_CONTROL = "public, max-age=0, must-revalidate"
_IGNORED_PARTS = frozenset({".assetsignore", "_headers", "_redirects", ".DS_Store"})
_IGNORED_PARTS_ANYWHERE = frozenset({"node_modules", ".wrangler", ".git"})

# The types Cloudflare's asset worker gives (the ``mime`` package, version 4), where
# Python's own table differs or lacks the extension.
_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "application/node",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/vnd.microsoft.icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".wav": "audio/wav",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".gz": "application/gzip",
}
_PYTHON_TYPES = mimetypes.MimeTypes(filenames=())  # the built-in table, not /etc/mime.types


def content_type(name: str) -> str:
    """The ``Content-Type`` Cloudflare serves a file of this name with.

    Example::

        content_type("index.html")   # 'text/html; charset=utf-8'
        content_type("app.js")       # 'text/javascript; charset=utf-8'
    """
    suffix = Path(name).suffix.lower()
    found = _TYPES.get(suffix) or _PYTHON_TYPES.guess_type(name, strict=False)[0]
    found = found or "application/octet-stream"
    if found.startswith("text/") and "charset" not in found:
        found += "; charset=utf-8"
    return found


@dataclass(frozen=True, slots=True)
class _Intent:
    path: str | None = None  # the asset to serve (a pathname like "/index.html")
    status: int = 200
    redirect: str | None = None


def _route_pattern(route: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in route) + r"\Z")


_TOKENS = re.compile(r"(\*|:[A-Za-z_]\w*)")
_REDIRECT_CODES = frozenset({200, 301, 302, 303, 307, 308})


def _rule_pattern(source: str) -> tuple[re.Pattern[str], bool] | None:
    """``*`` (the splat) and ``:name`` (one path segment) as a regular expression."""
    parts, dynamic, seen = [], False, set()
    for token in _TOKENS.split(source):
        if token == "*":
            name = "splat"
        elif token.startswith(":") and len(token) > 1:
            name = token[1:]
        else:
            parts.append(re.escape(token))
            continue
        if name in seen:
            return None
        seen.add(name)
        dynamic = True
        parts.append(f"(?P<{name}>.*)" if name == "splat" else f"(?P<{name}>[^/]+)")
    return re.compile("".join(parts) + r"\Z"), dynamic


def _fill(template: str, groups: Mapping[str, str]) -> str:
    return re.sub(r":([A-Za-z_]\w*)", lambda m: groups.get(m.group(1), m.group(0)), template)


def _path_of(pattern: str) -> str:
    """A rule's path: an absolute ``https://host/path`` pattern matches on its path."""
    if pattern.startswith(("https://", "http://")):
        rest = pattern.split("://", 1)[1]
        return "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return pattern


@dataclass(frozen=True, slots=True)
class _Redirect:
    pattern: re.Pattern[str]
    dynamic: bool
    destination: str
    status: int


@dataclass(frozen=True, slots=True)
class _HeaderRule:
    pattern: re.Pattern[str]
    set: tuple[tuple[str, str], ...]
    unset: tuple[str, ...]


def _parse_redirects(text: str) -> list[_Redirect]:
    rules: list[_Redirect] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#") or len(fields) not in (2, 3):
            continue
        status = int(fields[2]) if len(fields) == 3 and fields[2].isdigit() else 302
        compiled = _rule_pattern(_path_of(fields[0]))
        if compiled is None or status not in _REDIRECT_CODES:
            continue
        if status == 200 and not fields[1].startswith("/"):
            continue  # a proxying rule needs a path of this site
        rules.append(_Redirect(compiled[0], compiled[1], fields[1], status))
    return [r for r in rules if not r.dynamic] + [r for r in rules if r.dynamic]


def _parse_headers(text: str) -> list[_HeaderRule]:
    rules: list[_HeaderRule] = []
    pattern: re.Pattern[str] | None = None
    adds: list[tuple[str, str]] = []
    removes: list[str] = []

    def close() -> None:
        if pattern is not None:
            rules.append(_HeaderRule(pattern, tuple(adds), tuple(removes)))

    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line[0].isspace():
            close()
            compiled = _rule_pattern(_path_of(stripped))
            pattern = compiled[0] if compiled else None
            adds, removes = [], []
        elif stripped.startswith("!"):
            removes.append(stripped[1:].strip().lower())
        elif ":" in stripped:
            name, value = stripped.split(":", 1)
            adds.append((name.strip().lower(), value.strip()))
    close()
    return rules


class AssetServer:
    """One worker's asset folder with its ``html_handling`` and ``not_found_handling``,
    its ``_redirects`` and ``_headers`` files."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.directory = Path(config["directory"]).resolve()
        self.html_handling = str(config.get("html_handling") or "auto-trailing-slash")
        self.not_found_handling = str(config.get("not_found_handling") or "none")
        first = config.get("run_worker_first", False)
        self._worker_first_all = first is True
        routes = first if isinstance(first, list) else []
        self._include = [_route_pattern(r) for r in routes if not r.startswith("!")]
        self._exclude = [_route_pattern(r[1:]) for r in routes if r.startswith("!")]
        self._etags: dict[Path, tuple[int, int, str]] = {}
        self._ignore: tuple[int, Any] | None = None  # (mtime, spec) of .assetsignore
        self._files: dict[str, tuple[int, Any]] = {}  # name -> (mtime, parsed)

    def _rule_file(self, name: str, parse: Callable[[str], Any]) -> Any:
        """``_redirects`` / ``_headers`` parsed, read again when they change."""
        path = self.directory / name
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return []
        known = self._files.get(name)
        if known is None or known[0] != mtime:
            known = self._files[name] = (mtime, parse(path.read_text(errors="replace")))
        return known[1]

    def _redirect_rule(self, pathname: str) -> tuple[str, int] | None:
        for rule in self._rule_file("_redirects", _parse_redirects):
            match = rule.pattern.match(pathname)
            if match is not None:
                groups = {k: v for k, v in match.groupdict().items() if v is not None}
                return _fill(rule.destination, groups), rule.status
        return None

    def _custom_headers(self, pathname: str, headers: js.Headers) -> None:
        values: dict[str, list[str]] = {}
        removed: set[str] = set()
        for rule in self._rule_file("_headers", _parse_headers):
            match = rule.pattern.match(pathname)
            if match is None:
                continue
            groups = {k: v for k, v in match.groupdict().items() if v is not None}
            removed.update(rule.unset)
            for name, value in rule.set:
                values.setdefault(name, []).append(_fill(value, groups))
        for name in removed:  # "! Name" detaches a header any rule (or the default) set
            values.pop(name, None)
            headers.delete(name)
        for name, found in values.items():
            headers.set(name, ", ".join(found))

    def _ignored(self, relative: str) -> bool:
        """Whether ``.assetsignore`` (gitignore syntax, as wrangler reads it) excludes it."""
        path = self.directory / ".assetsignore"
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return False
        if self._ignore is None or self._ignore[0] != mtime:
            import pathspec

            lines = path.read_text(errors="replace").splitlines()
            self._ignore = (mtime, pathspec.GitIgnoreSpec.from_lines(lines))
        return bool(self._ignore[1].match_file(relative))

    def worker_first(self, pathname: str) -> bool:
        """Whether ``run_worker_first`` sends this path to the worker before the assets."""
        if self._worker_first_all:
            return True
        if any(p.match(pathname) for p in self._exclude):
            return False
        return any(p.match(pathname) for p in self._include)

    # ------------------------------------------------------------------ lookup

    def _file(self, pathname: str) -> Path | None:
        if not pathname.startswith("/") or "\x00" in pathname:
            return None
        parts = [p for p in pathname.split("/") if p]
        if any(p in ("..", ".") for p in parts) or any(p in _IGNORED_PARTS for p in parts[-1:]):
            return None
        if any(p in _IGNORED_PARTS_ANYWHERE for p in parts):
            return None
        path = self.directory.joinpath(*parts) if parts else self.directory
        if pathname.endswith("/") and parts:
            return None  # "/foo/" never names a file
        if parts and self._ignored("/".join(parts)):
            return None
        try:
            if not path.is_file():
                return None
            path.resolve().relative_to(self.directory)  # no symlink out of the folder
        except (OSError, ValueError):
            return None
        return path

    def _exists(self, pathname: str) -> str | None:
        """The asset's ETag when ``pathname`` is a file of the folder."""
        path = self._file(pathname)
        if path is None:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        known = self._etags.get(path)
        if known is not None and known[:2] == (stat.st_mtime_ns, stat.st_size):
            return known[2]
        digest = hashlib.sha256(path.read_bytes() + path.suffix.encode()).hexdigest()[:32]
        self._etags[path] = (stat.st_mtime_ns, stat.st_size, digest)
        return digest

    def intent(self, pathname: str, *, not_found: str | None = None) -> _Intent | None:
        """What Cloudflare would answer for ``pathname``: an asset, a redirect, or None."""
        handling = self.html_handling
        if handling == "none":
            return self._asset(pathname) or self._not_found(pathname, not_found)
        return self._rules()(pathname, False) or self._not_found(pathname, not_found)

    def _asset(self, pathname: str, status: int = 200) -> _Intent | None:
        return _Intent(pathname, status) if self._exists(pathname) else None

    def _rules(self) -> Callable[[str, bool], _Intent | None]:
        return {
            "force-trailing-slash": self._force,
            "drop-trailing-slash": self._drop,
        }.get(self.html_handling, self._auto)

    def _redirect(self, file: str, destination: str, skip: bool) -> _Intent | None:
        """Redirect to ``destination`` only if it would serve ``file`` itself."""
        if skip or self._exists(destination):
            return None
        target = self._rules()(destination, True) or self._not_found(destination, None)
        if target is None or target.path is None:
            return None
        etag = self._exists(file)
        if etag is not None and self._exists(target.path) == etag:
            return _Intent(redirect=destination)
        return None

    def _first(self, *options: Callable[[], _Intent | None]) -> _Intent | None:
        for option in options:
            found = option()
            if found is not None:
                return found
        return None

    def _auto(self, p: str, skip: bool) -> _Intent | None:
        r, a = self._redirect, self._asset
        if p.endswith("/index"):
            head = p[: -len("index")]
            found = self._first(
                lambda: a(p),
                lambda: r(f"{p}.html", head, skip),
                lambda: r(f"{p[: -len('/index')]}.html", p[: -len("/index")], skip),
            )
        elif p.endswith("/index.html"):
            found = self._first(
                lambda: r(p, p[: -len("index.html")], skip),
                lambda: r(f"{p[: -len('/index.html')]}.html", p[: -len("/index.html")], skip),
            )
        elif p.endswith("/"):
            found = self._first(
                lambda: a(f"{p}index.html"),
                lambda: r(f"{p[:-1]}.html", p[:-1], skip),
            )
        elif p.endswith(".html"):
            stem = p[: -len(".html")]
            found = self._first(
                lambda: r(p, stem, skip),
                lambda: r(f"{stem}/index.html", f"{stem}/", skip),
            )
        else:
            found = None
        return found or self._first(
            lambda: a(p),
            lambda: a(f"{p}.html"),
            lambda: r(f"{p}/index.html", f"{p}/", skip),
        )

    def _force(self, p: str, skip: bool) -> _Intent | None:
        r, a = self._redirect, self._asset
        if p.endswith("/index"):
            found = self._first(
                lambda: a(p),
                lambda: r(f"{p}.html", p[: -len("index")], skip),
                lambda: r(f"{p[: -len('/index')]}.html", p[: -len("index")], skip),
            )
        elif p.endswith("/index.html"):
            found = self._first(
                lambda: r(p, p[: -len("index.html")], skip),
                lambda: r(f"{p[: -len('/index.html')]}.html", p[: -len("index.html")], skip),
            )
        elif p.endswith("/"):
            found = self._first(lambda: a(f"{p}index.html"), lambda: a(f"{p[:-1]}.html"))
        elif p.endswith(".html"):
            stem = p[: -len(".html")]
            found = self._first(
                lambda: r(p, f"{stem}/", skip),
                lambda: a(p),
                lambda: r(f"{stem}/index.html", f"{stem}/", skip),
            )
        else:
            found = None
        return found or self._first(
            lambda: a(p),
            lambda: r(f"{p}.html", f"{p}/", skip),
            lambda: r(f"{p}/index.html", f"{p}/", skip),
        )

    def _drop(self, p: str, skip: bool) -> _Intent | None:
        r, a = self._redirect, self._asset
        if p.endswith("/index"):
            if p == "/index":
                found = self._first(lambda: a(p), lambda: r("/index.html", "/", skip))
            else:
                head = p[: -len("/index")]
                found = self._first(
                    lambda: a(p),
                    lambda: r(f"{head}.html", head, skip),
                    lambda: r(f"{p}.html", head, skip),
                )
        elif p.endswith("/index.html"):
            if p == "/index.html":
                found = r("/index.html", "/", skip)
            else:
                head = p[: -len("/index.html")]
                found = self._first(
                    lambda: r(p, head, skip), lambda: a(p), lambda: r(f"{head}.html", head, skip)
                )
        elif p == "/":
            found = a("/index.html")
        elif p.endswith(".html"):
            stem = p[: -len(".html")]
            found = self._first(
                lambda: r(p, stem, skip), lambda: a(p), lambda: r(f"{stem}/index.html", stem, skip)
            )
        elif p.endswith("/"):
            head = p[:-1]
            found = self._first(
                lambda: r(f"{p}index.html", head, skip), lambda: r(f"{head}.html", head, skip)
            )
        else:
            found = None
        return found or self._first(
            lambda: a(p), lambda: a(f"{p}.html"), lambda: a(f"{p}/index.html")
        )

    def _not_found(self, pathname: str, override: str | None) -> _Intent | None:
        handling = override or self.not_found_handling
        if handling == "single-page-application":
            return self._asset("/index.html")
        if handling == "404-page":
            cwd = pathname
            while cwd:
                cwd = cwd[: cwd.rfind("/")]
                found = self._asset(f"{cwd}/404.html", 404)
                if found is not None:
                    return found
        return None

    # ------------------------------------------------------------------ responses

    def response(self, intent: _Intent, request: js.Request, search: str) -> js.Response:
        """The response for ``intent`` (a redirect, a ``304``, or the file)."""
        if intent.redirect is not None:
            return js.Response._make(
                None, 307, "", js.Headers._trusted([("location", intent.redirect + search)])
            )
        assert intent.path is not None
        path = self._file(intent.path)
        etag = self._exists(intent.path)
        if path is None or etag is None:  # removed in between
            return js.Response._make(None, 404, "", js.Headers._trusted([]))
        pairs = [("content-type", content_type(path.name)), ("etag", f'"{etag}"')]
        headers = request.headers
        if not headers.has("authorization") and not headers.has("range"):
            pairs.append(("cache-control", CACHE_CONTROL))
        if intent.status == 200 and _matches(headers.get("if-none-match"), etag):
            return js.Response._make(None, 304, "", js.Headers._trusted(pairs))
        # A HEAD response gets the same headers; the server leaves the body out.
        return js.Response._make(path.read_bytes(), intent.status, "", js.Headers._trusted(pairs))

    def serve(self, request: js.Request, *, has_worker: bool) -> js.Response | None:
        """Answer ``request`` from the folder, or None to hand it to the worker."""
        url = js.URL(request.url)
        pathname = _decode(url.pathname)
        if request.method not in ("GET", "HEAD"):
            if has_worker:
                return None
            return js.Response._make(None, 405, "", js.Headers._trusted([]))
        answer = self._answer(request, pathname, url.search, has_worker=has_worker)
        if answer is not None:
            self._custom_headers(pathname, answer.headers)
        return answer

    def _answer(
        self, request: js.Request, pathname: str, search: str, *, has_worker: bool
    ) -> js.Response | None:
        rule = self._redirect_rule(pathname)
        if rule is not None:
            destination, status = rule
            if status != 200:
                location = destination if "?" in destination else destination + search
                return js.Response._make(
                    None, status, "", js.Headers._trusted([("location", location)])
                )
            pathname = destination.split("?", 1)[0]  # 200: served from that path instead
        override = None
        navigation = request.headers.get("sec-fetch-mode") == "navigate"
        if has_worker and self.not_found_handling == "single-page-application" and not navigation:
            override = "none"  # fetch()/XHR calls reach the worker's API, as on Cloudflare
        intent = self.intent(pathname, not_found=override)
        if intent is None:
            if has_worker:
                return None
            return js.Response._make(None, 404, "", js.Headers._trusted([]))
        return self.response(intent, request, search)


def _decode(pathname: str) -> str:
    try:
        return unquote(pathname, errors="strict")
    except UnicodeDecodeError:
        return pathname


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    wanted = {t.strip().removeprefix("W/") for t in header.split(",")}
    return f'"{etag}"' in wanted or "*" in wanted


class AssetsBinding:
    """``env.ASSETS``: ``await env.ASSETS.fetch(request | url)`` answers from the folder.

    Example::

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/hello"):
                    return Response("from the worker")
                return await self.env.ASSETS.fetch(request)
    """

    __slots__ = ("_name", "_server")

    def __init__(self, name: str, server: AssetServer) -> None:
        self._name = name
        self._server = server

    def __repr__(self) -> str:
        return f"AssetsBinding({self._name!r} → {self._server.directory})"

    async def fetch(self, input: Any, init: Any = None, **kwargs: Any) -> Any:
        """The asset for ``input`` (a Request or a URL), or a ``404`` when none matches."""
        import workers

        source = getattr(input, "js_object", input)
        if isinstance(source, str) and not js.URL.canParse(source):
            source = js.URL(source, "http://assets.local").href
        request = source if isinstance(source, js.Request) and not (init or kwargs) else None
        if request is None:
            request = js.Request(source, init, **kwargs)
        response = self._server.serve(request, has_worker=False)
        assert response is not None
        return workers.FetchResponse._wrap(response)


def _binding(ctx: BindingContext) -> object:
    return AssetsBinding(ctx.name, AssetServer(ctx.config))


register_binding_type("assets", _binding)
