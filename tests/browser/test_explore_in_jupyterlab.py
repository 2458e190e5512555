"""The tour in a real browser: JupyterLab on 127.0.0.1, Debian's Chromium driven by
Playwright, explore.ipynb run up to the approval panel, Approve clicked (first as the
release's author, which the rules refuse, then as a reviewer), the rest run, and the
approval read back from the ledger. Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
COMMENT = "approved in the browser"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no Chromium at /usr/bin/chromium: run scripts/system_deps.sh (apt chromium)",
    ),
]


@dataclass
class Lab:
    url: str
    token: str
    workdir: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"JupyterLab did not answer within 120 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("lab")
    root, workdir = base / "root", base / "work"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / "explore.ipynb", root / "explore.ipynb")
    settings = base / "settings"
    for name, value in {
        # every cell stays in the page (JupyterLab 4 otherwise detaches cells off screen)
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = _free_port(), "alchemy-nb-browser-test"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI", "ALCHEMY_NB_DISPLAY", "ALCHEMY_NB_PROGRESS", "JPY_SESSION_NAME")
    }
    env.update(
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_DATA_DIR=str(base / "data"),  # no user-level kernelspec can win over ours
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        ALCHEMY_NB_EXPLORE_DIR=str(workdir),
        ALCHEMY_NB_DEMO_APP=str(ROOT / "examples" / "demo"),
    )
    log = base / "jupyterlab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                "--LabApp.expose_app_in_browser=True",
                f"--LabApp.user_settings_dir={settings}",
                f"--LabApp.workspaces_dir={base / 'workspaces'}",
                "--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",  # the network is closed: no PyPI lookups
                *(["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{url}/api/status?token={token}", proc, log)
        yield Lab(url, token, workdir, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _destroy_stages(workdir)


def _destroy_stages(workdir: Path) -> None:
    """Stop the tour's workers if the test stopped before its clean-up cell."""
    program = workdir / "demo" / "alchemy_run.py"
    if not program.exists():
        return
    for stage in ("prod", "staging", "dev"):
        subprocess.run(
            [sys.executable, "-m", "alchemy_nb", "destroy", "--stage", stage],
            cwd=program.parent,
            capture_output=True,
            timeout=120,
        )


NOTEBOOK = "window.jupyterapp.shell.currentWidget"

KERNEL_IDLE = f"""() => {{
    const nb = window.jupyterapp && {NOTEBOOK};
    const kernel = nb && nb.sessionContext && nb.sessionContext.session
        && nb.sessionContext.session.kernel;
    return !!(kernel && kernel.status === "idle" && nb.content && nb.content.model);
}}"""

# true once every code cell in [start, stop) ran (an execution count and not queued)
RAN = f"""([start, stop]) => {{
    const cells = {NOTEBOOK}.content.model.cells;
    for (let i = start; i < Math.min(stop, cells.length); i++) {{
        const cell = cells.get(i);
        if (cell.type === "code" && !cell.executionCount) return false;
    }}
    return true;
}}"""

ERRORS = f"""() => {{
    const cells = {NOTEBOOK}.content.model.cells, found = [];
    for (let i = 0; i < cells.length; i++) {{
        const cell = cells.get(i);
        if (cell.type !== "code") continue;
        for (const out of cell.outputs.toJSON()) {{
            if (out.output_type === "error") found.push(i + ": " + out.ename + ": " + out.evalue);
        }}
    }}
    return found;
}}"""

RUN_FROM = f"""([index, command]) => {{
    const nb = {NOTEBOOK};
    nb.content.activeCellIndex = index;
    return window.jupyterapp.commands.execute(command);
}}"""

PANEL_INDEX = f"""() => {{
    const cells = {NOTEBOOK}.content.model.cells;
    for (let i = 0; i < cells.length; i++) {{
        if (cells.get(i).sharedModel.getSource().includes("approval_panel(")) return i;
    }}
    return -1;
}}"""


def test_approve_in_the_panel_lands_in_the_ledger(lab: Lab) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab.url}/lab/tree/explore.ipynb?token={lab.token}")
            page.wait_for_function(KERNEL_IDLE, timeout=120_000)
            page.screenshot(path=ARTIFACTS / "01-opened.png")

            panel_cell = page.evaluate(PANEL_INDEX)
            assert panel_cell > 0
            # run every cell up to and including the panel's
            page.evaluate(RUN_FROM, [panel_cell + 1, "notebook:run-all-above"])
            page.wait_for_function(RAN, arg=[0, panel_cell + 1], timeout=240_000)
            assert page.evaluate(ERRORS) == []

            # a live notebook: "auto" renders the plan as a widget (papermill and nbval never)
            expect(page.get_by_text("show unchanged").first).to_be_visible(timeout=60_000)

            panel = page.locator(".anb-approval-panel")
            expect(panel).to_be_visible(timeout=60_000)
            panel.scroll_into_view_if_needed()
            expect(panel).to_contain_text("awaiting approval")
            expect(panel).to_contain_text("0 of 1 approval(s)")
            page.screenshot(path=ARTIFACTS / "02-panel.png")

            # the release's author may not approve it: the panel says why
            actor = panel.locator("input[type=text]")
            actor.fill("alice")
            panel.get_by_role("button", name="Approve").click()
            expect(panel).to_contain_text("approve refused", timeout=60_000)
            expect(panel).to_contain_text("may not approve it (prevent_self_review)")
            page.screenshot(path=ARTIFACTS / "03-refused.png")

            actor.fill("bob")
            panel.locator("textarea").fill(COMMENT)
            panel.get_by_role("button", name="Approve").click()
            expect(panel).to_contain_text("approved by bob", timeout=60_000)
            page.screenshot(path=ARTIFACTS / "04-approved.png")

            # the rest of the tour: bob's approval is there, so the promotion goes ahead
            page.evaluate(RUN_FROM, [panel_cell + 1, "notebook:run-all-below"])
            count = page.evaluate(f"() => {NOTEBOOK}.content.model.cells.length")
            page.wait_for_function(RAN, arg=[0, count], timeout=240_000)
            assert page.evaluate(ERRORS) == []
            page.screenshot(path=ARTIFACTS / "05-done.png")
            for kind in ("plan", "gate", "stages", "ledger", "run", "promotion"):
                shown = page.locator(f".jp-OutputArea-output .anb-{kind}").last
                if shown.count():
                    shown.scroll_into_view_if_needed()
                    shown.screenshot(path=ARTIFACTS / f"output-{kind}.png")
        finally:
            browser.close()

    events = _ledger(lab.workdir)
    approvals = [e for e in events if e["kind"] == "approval"]
    assert [(e["actor"], e["stage"], e["data"]["comment"]) for e in approvals] == [
        ("bob", "prod", COMMENT)
    ]
    promotions = [e for e in events if e["kind"] == "promotion"]
    assert [(e["stage"], e["data"]["ok"], e["release"]) for e in promotions] == [
        ("prod", True, approvals[0]["release"])
    ]


def test_the_html_export_shows_the_static_displays(tmp_path: Path) -> None:
    """nbconvert's HTML of the stored tour, opened offline: with no widget state saved,
    the panel and every object show their static HTML; no output of ours needs a script."""
    import nbformat
    from nbconvert import HTMLExporter
    from playwright.sync_api import Route, expect, sync_playwright

    nb = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    page_file = tmp_path / "explore.html"
    page_file.write_text(html)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def offline(route: Route) -> None:  # the template's CDN scripts: not ours, and
                if route.request.url.startswith("file://"):  # the network is closed anyway
                    route.continue_()
                else:
                    route.abort()

            page.route("**/*", offline)
            page.goto(page_file.as_uri())
            panel = page.locator(".anb-approval")
            expect(panel).to_contain_text("awaiting approval")
            expect(panel).to_contain_text("0 of 1 approval(s) from reviewers who are not")
            expect(page.locator(".anb-ledger").last).to_contain_text("approval")
            expect(page.locator(".anb-stages").last).to_contain_text("dev, staging, prod run")
            assert page.locator(".anb-progress").count() >= 6  # final frames, kept
            panel.scroll_into_view_if_needed()
            page.screenshot(path=ARTIFACTS / "html-export.png")
        finally:
            browser.close()


def _ledger(workdir: Path) -> list[dict[str, object]]:
    import asyncio

    from alchemy_nb.promotion import Ledger
    from alchemy_nb.state import FileStore

    ledger = Ledger(FileStore(workdir / "demo" / ".alchemy"), "demo")
    assert asyncio.run(ledger.verify()).ok
    return list(asyncio.run(ledger.events()))
