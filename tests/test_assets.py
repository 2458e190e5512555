"""Workers static assets: the routing rules Cloudflare's asset worker applies, and the
``static-site`` example project (a site with an API behind ``run_worker_first``) served by
``alchemy-nb dev`` and checked over HTTP, headers byte for byte."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import DevSession, write_program

from alchemy_nb.cloudflare.local.runtime import install_shim

install_shim()

from alchemy_nb.cloudflare.local.runtime._assets import AssetServer, content_type  # noqa: E402

PROJECTS = Path(__file__).resolve().parent / "projects"

# --------------------------------------------------------------------------- the rules


@pytest.fixture
def site(tmp_path: Path) -> Path:
    for name, text in {
        "index.html": "home",
        "about.html": "about",
        "blog/index.html": "blog",
        "docs/intro.html": "intro",
        "docs/404.html": "docs missing",
        "404.html": "missing",
        "file.bin": "bytes",
    }.items():
        path = tmp_path / "public" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "public"


def outcome(server: AssetServer, path: str) -> tuple[str, str | None, int] | None:
    found = server.intent(path)
    if found is None:
        return None
    if found.redirect is not None:
        return ("redirect", found.redirect, 307)
    return ("serve", found.path, found.status)


AUTO = {
    "/": ("serve", "/index.html", 200),
    "/index.html": ("redirect", "/", 307),
    "/index": ("redirect", "/", 307),
    "/about": ("serve", "/about.html", 200),
    "/about.html": ("redirect", "/about", 307),
    "/about/": ("redirect", "/about", 307),
    "/blog": ("redirect", "/blog/", 307),
    "/blog/": ("serve", "/blog/index.html", 200),
    "/blog/index.html": ("redirect", "/blog/", 307),
    "/blog/index": ("redirect", "/blog/", 307),
    "/file.bin": ("serve", "/file.bin", 200),
    "/nope": None,
}
FORCE = {
    "/": ("serve", "/index.html", 200),
    "/about": ("redirect", "/about/", 307),
    "/about/": ("serve", "/about.html", 200),
    "/about.html": ("redirect", "/about/", 307),
    "/blog": ("redirect", "/blog/", 307),
    "/blog/": ("serve", "/blog/index.html", 200),
    "/file.bin": ("serve", "/file.bin", 200),
}
DROP = {
    "/": ("serve", "/index.html", 200),
    "/index.html": ("redirect", "/", 307),
    "/about": ("serve", "/about.html", 200),
    "/about/": ("redirect", "/about", 307),
    "/blog": ("serve", "/blog/index.html", 200),
    "/blog/": ("redirect", "/blog", 307),
    "/blog/index.html": ("redirect", "/blog", 307),
}
NONE = {
    "/": None,
    "/index.html": ("serve", "/index.html", 200),
    "/about": None,
    "/about.html": ("serve", "/about.html", 200),
    "/blog/": None,
}


@pytest.mark.parametrize(
    ("handling", "table"),
    [
        ("auto-trailing-slash", AUTO),
        ("force-trailing-slash", FORCE),
        ("drop-trailing-slash", DROP),
        ("none", NONE),
    ],
)
def test_html_handling_serves_and_redirects_as_cloudflare_does(
    site: Path, handling: str, table: dict[str, tuple[str, str | None, int] | None]
) -> None:
    server = AssetServer({"directory": str(site), "html_handling": handling})
    assert {path: outcome(server, path) for path in table} == table


def test_not_found_handling(site: Path) -> None:
    page = AssetServer({"directory": str(site), "not_found_handling": "404-page"})
    assert outcome(page, "/nope") == ("serve", "/404.html", 404)
    assert outcome(page, "/docs/nope/deeper") == ("serve", "/docs/404.html", 404)  # nearest
    spa = AssetServer({"directory": str(site), "not_found_handling": "single-page-application"})
    assert outcome(spa, "/app/route") == ("serve", "/index.html", 200)
    assert outcome(spa, "/about") == ("serve", "/about.html", 200)  # real files still win
    none = AssetServer({"directory": str(site), "not_found_handling": "none"})
    assert outcome(none, "/nope") is None


def test_a_single_page_app_with_an_api_worker(site: Path) -> None:
    import js

    spa = AssetServer({"directory": str(site), "not_found_handling": "single-page-application"})

    def serve(path: str, **headers: str) -> object:
        request = js.Request(f"http://127.0.0.1:8787{path}", headers=headers)
        response = spa.serve(request, has_worker=True)
        return None if response is None else response.status

    assert serve("/app/route", **{"sec-fetch-mode": "navigate"}) == 200  # a page: index.html
    assert serve("/api/items") is None  # fetch() from the page: the worker answers
    assert serve("/about") == 200
    posted = js.Request("http://127.0.0.1:8787/about", method="POST", body="x")
    assert spa.serve(posted, has_worker=True) is None
    assert spa.serve(posted, has_worker=False).status == 405  # type: ignore[union-attr]


def test_paths_never_leave_the_folder_or_show_config_files(site: Path) -> None:
    (site / "_headers").write_text("/*\n  x: y\n")
    (site.parent / "secret.txt").write_text("no")
    server = AssetServer({"directory": str(site), "html_handling": "none"})
    assert outcome(server, "/../secret.txt") is None
    assert outcome(server, "/docs/../../secret.txt") is None
    assert outcome(server, "/_headers") is None
    (site / ".git").mkdir()
    (site / ".git" / "config").write_text("[core]")
    assert outcome(server, "/.git/config") is None


def test_assetsignore_hides_files_as_wrangler_does(site: Path) -> None:
    (site / "notes.md").write_text("draft")
    (site / "docs" / "intro.html.map").write_text("{}")
    (site / ".assetsignore").write_text("*.md\n**/*.map\n")
    server = AssetServer({"directory": str(site), "html_handling": "none"})
    assert outcome(server, "/notes.md") is None
    assert outcome(server, "/docs/intro.html.map") is None
    assert outcome(server, "/.assetsignore") is None
    assert outcome(server, "/docs/intro.html") == ("serve", "/docs/intro.html", 200)


def test_run_worker_first_routes() -> None:
    server = AssetServer(
        {"directory": ".", "run_worker_first": ["/api/*", "!/api/docs/*", "/oauth/callback"]}
    )
    decided = {
        p: server.worker_first(p)
        for p in ["/api/x", "/api/x/y", "/api/docs/index.html", "/oauth/callback", "/", "/api"]
    }
    assert decided == {
        "/api/x": True,
        "/api/x/y": True,
        "/api/docs/index.html": False,
        "/oauth/callback": True,
        "/": False,
        "/api": False,
    }
    assert AssetServer({"directory": ".", "run_worker_first": True}).worker_first("/x")
    assert not AssetServer({"directory": "."}).worker_first("/x")


def test_content_types_are_cloudflares() -> None:
    assert {
        name: content_type(name)
        for name in [
            "a.html",
            "a.css",
            "a.js",
            "a.mjs",
            "a.json",
            "a.txt",
            "a.svg",
            "a.png",
            "a.jpg",
            "a.webp",
            "a.woff2",
            "a.wasm",
            "a.webmanifest",
            "a.ico",
            "a.xml",
            "a.pdf",
            "README",
        ]
    } == {
        "a.html": "text/html; charset=utf-8",
        "a.css": "text/css; charset=utf-8",
        "a.js": "text/javascript; charset=utf-8",
        "a.mjs": "text/javascript; charset=utf-8",
        "a.json": "application/json",
        "a.txt": "text/plain; charset=utf-8",
        "a.svg": "image/svg+xml",
        "a.png": "image/png",
        "a.jpg": "image/jpeg",
        "a.webp": "image/webp",
        "a.woff2": "font/woff2",
        "a.wasm": "application/wasm",
        "a.webmanifest": "application/manifest+json",
        "a.ico": "image/vnd.microsoft.icon",
        "a.xml": "application/xml",
        "a.pdf": "application/pdf",
        "README": "application/octet-stream",
    }


# --------------------------------------------------------------------------- the example project


@pytest.fixture(scope="module")
def static_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DevSession]]:
    folder = tmp_path_factory.mktemp("static") / "static-site"
    shutil.copytree(PROJECTS / "static-site", folder)
    with DevSession(folder) as dev:
        yield dev.wait_for_url(), dev


def get(url: str, **kwargs: object) -> httpx.Response:
    return httpx.get(url, timeout=10, **kwargs)  # type: ignore[arg-type]


def headers(response: httpx.Response, *names: str) -> dict[str, str | None]:
    return {name: response.headers.get(name) for name in names}


@pytest.mark.xdist_group("static-site")
def test_the_site_is_served_from_its_folder(static_site: tuple[str, DevSession]) -> None:
    url, _ = static_site
    home = get(url + "/")
    assert home.status_code == 200
    assert "<h1>Home</h1>" in home.text
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert home.headers["cache-control"] == "public, max-age=0, must-revalidate"
    etag = home.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
    again = get(url + "/", headers={"if-none-match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)

    about = get(url + "/about")
    assert "About us" in about.text
    head = httpx.head(url + "/about", timeout=10)
    assert (head.status_code, head.content) == (200, b"")
    assert headers(head, "content-type", "content-length", "etag") == headers(
        about, "content-type", "content-length", "etag"
    )
    for path, location in [("/about.html", "/about"), ("/blog", "/blog/"), ("/index.html", "/")]:
        moved = get(url + path + "?x=1")
        assert (moved.status_code, moved.headers["location"]) == (307, location + "?x=1")
    assert "<h1>Blog</h1>" in get(url + "/blog/").text

    types = {
        path: get(url + path).headers["content-type"]
        for path in [
            "/assets/app.js",
            "/assets/style.css",
            "/assets/data.json",
            "/assets/logo.svg",
            "/assets/pixel.png",
            "/assets/site.webmanifest",
            "/robots.txt",
        ]
    }
    assert types == {
        "/assets/app.js": "text/javascript; charset=utf-8",
        "/assets/style.css": "text/css; charset=utf-8",
        "/assets/data.json": "application/json",
        "/assets/logo.svg": "image/svg+xml",
        "/assets/pixel.png": "image/png",
        "/assets/site.webmanifest": "application/manifest+json",
        "/robots.txt": "text/plain; charset=utf-8",
    }
    # _headers: on every file; the assets folder is cached for a year instead.
    assert home.headers["x-content-type-options"] == "nosniff"
    app_js = get(url + "/assets/app.js")
    assert app_js.headers["cache-control"] == "public, max-age=31536000, immutable"
    moved = get(url + "/old-about")  # _redirects
    assert (moved.status_code, moved.headers["location"]) == (301, "/about")
    assert get(url + "/posts/1").headers["location"] == "/blog/"
    assert "x-content-type-options" not in get(url + "/api/hello").headers  # the worker's own
    png = get(url + "/assets/pixel.png").content
    assert png == (PROJECTS / "static-site/public/assets/pixel.png").read_bytes()


@pytest.mark.xdist_group("static-site")
def test_the_api_runs_first_and_the_rest_gets_the_404_page(
    static_site: tuple[str, DevSession],
) -> None:
    url, _ = static_site
    hello = get(url + "/api/hello")
    assert hello.status_code == 200
    assert hello.headers["content-type"] == "application/json"
    assert hello.json() == {"message": "hello from the API", "method": "GET"}
    assert "etag" not in hello.headers

    page = get(url + "/api/page")  # the worker reads a file through env.ASSETS
    assert headers(page, "content-type", "x-from") == {
        "content-type": "text/plain;charset=UTF-8",
        "x-from": "worker",
    }
    assert "About us" in page.text

    docs = get(url + "/api/docs/")  # excluded from run_worker_first: a file
    assert (docs.status_code, docs.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert "GET /api/hello" in docs.text
    unknown = get(url + "/api/nothing")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "no route /api/nothing"})

    missing = get(url + "/no/such/page")  # not_found_handling = "404-page"
    assert missing.status_code == 404
    assert "Nothing here" in missing.text
    assert missing.headers["content-type"] == "text/html; charset=utf-8"

    posted = httpx.post(url + "/about", content=b"x", timeout=10)  # not GET/HEAD: the worker
    assert posted.text == "the worker saw /about"


@pytest.mark.xdist_group("static-site")
def test_files_are_read_live(static_site: tuple[str, DevSession]) -> None:
    url, dev = static_site
    new = dev.folder / "public" / "new.html"
    new.write_text("<p>fresh</p>")
    try:
        assert get(url + "/new").text == "<p>fresh</p>"
    finally:
        new.unlink()
    assert get(url + "/new").status_code == 404


def test_a_missing_assets_directory_is_a_clear_error_and_the_rest_still_deploys(
    tmp_path: Path,
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "entry.py").write_text(
        "from workers import Response, WorkerEntrypoint\n\n"
        "class Default(WorkerEntrypoint):\n"
        "    async def fetch(self, request):\n"
        '        return Response("api")\n'
    )
    write_program(
        tmp_path,
        """
        import alchemy_nb
        from alchemy_nb.cloudflare import Worker, WorkerAssets

        app = alchemy_nb.App("assetless")

        @app.program
        def infra(stage):
            site = Worker("site", entry="src/entry.py", assets=WorkerAssets(directory="dist"))
            api = Worker("api", entry="src/entry.py")
            return {"url": api.url}
        """,
    )
    with DevSession(tmp_path) as dev:
        dev.wait_for(lambda: any("[api] api: serving" in line for line in dev.lines), "the api")
        text = "".join(dev.lines)
        assert (
            f"failed cloudflare::Worker site: the assets directory 'dist' of worker 'site' does"
            f" not exist ({tmp_path}/dist). Where: assetless/dev/site (cloudflare::Worker),"
            " assets.directory, phase up. Fix: create the folder"
        ) in text
        line = next(line for line in dev.lines if "[api] api: serving" in line)
        assert get(line.split("serving ")[1].split()[0]).text == "api"  # the rest is served
        dev.wait_for(lambda: any("watching" in line for line in dev.lines), "the watcher")
        (tmp_path / "dist").mkdir()  # built now: the next deploy serves the site
        (tmp_path / "dist" / "index.html").write_text("<p>built</p>")
        dev.wait_for(
            lambda: any("[site] site: serving" in line for line in dev.lines), "the fixed deploy"
        )


# --------------------------------------------------------------------------- wrangler mapping


def test_wrangler_assets_services_and_loaders_map_to_the_worker(tmp_path: Path) -> None:
    from alchemy_nb.wrangler import declarations, load_wrangler, render_program

    shutil.copytree(PROJECTS / "static-site", tmp_path / "site")
    config_path = tmp_path / "site" / "wrangler.toml"
    config_path.write_text(
        config_path.read_text()
        + '\n[[services]]\nbinding = "AUTH"\nservice = "auth-worker"\nentrypoint = "Admin"\n'
        + '\n[[worker_loaders]]\nbinding = "LOADER"\n'
    )
    config = load_wrangler(config_path)
    assert config.warnings == []
    worker = declarations(config, "dev")[-1]
    assert worker.kwargs["assets"] == {
        "directory": "./public",
        "binding": "ASSETS",
        "run_worker_first": ["/api/*", "!/api/docs/*"],
        "not_found_handling": "404-page",
    }
    assert worker.kwargs["services"] == {"AUTH": {"service": "auth-worker", "entrypoint": "Admin"}}
    assert worker.kwargs["worker_loaders"] == ["LOADER"]
    program = render_program(config)
    compile(program, "alchemy_run.py", "exec")
    assert '"not_found_handling": "404-page"' in program

    config_path.write_text(config_path.read_text().replace('"404-page"', '"404"'))
    with pytest.raises(Exception, match=r"assets.not_found_handling in wrangler.toml is '404'"):
        declarations(load_wrangler(config_path), "dev")


def test_redirects_and_headers_files(site: Path) -> None:
    import js

    (site / "_redirects").write_text(
        "# moved pages\n"
        "/old /about 301\n"
        "/blog/* /posts/:splat\n"
        "/users/:id /profile?id=:id 307\n"
        "/home / 200\n"
        "/nope\n"
    )
    (site / "_headers").write_text(
        "/*\n"
        "  X-Frame-Options: DENY\n"
        "  X-Robots: all\n"
        "/about\n"
        "  ! X-Frame-Options\n"
        "  X-Robots: none\n"
        "  Cache-Control: public, max-age=3600\n"
    )
    server = AssetServer({"directory": str(site)})

    def get(path: str) -> tuple[int, dict[str, str]]:
        response = server.serve(js.Request(f"http://127.0.0.1:8787{path}"), has_worker=False)
        assert response is not None
        return response.status, dict(response.headers.items())

    assert get("/old?x=1")[0] == 301
    assert get("/old?x=1")[1]["location"] == "/about?x=1"
    assert get("/blog/2024/hello")[1]["location"] == "/posts/2024/hello"
    assert get("/blog/2024/hello")[0] == 302
    assert get("/users/42")[1]["location"] == "/profile?id=42"
    status, headers = get("/home")  # 200: the home page, served at /home
    assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-robots"] == "all"
    status, headers = get("/about")
    assert "x-frame-options" not in headers
    assert headers["x-robots"] == "all, none"  # every matching rule, in order
    assert headers["cache-control"] == "public, max-age=3600"  # overrides the default
    assert get("/_redirects")[0] == 404 and get("/_headers")[0] == 404
