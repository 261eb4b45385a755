"""Fixtures of the browser tests: a real JupyterLab with the extension and the local backend,
driven by Debian's Chromium through Playwright, and axe-core for accessibility checks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from support import CHROMIUM, CHROMIUM_ARGS, browser_problem, require

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
TRAIN = "import os, time\nfor i in range(5):\n    print('step', i, flush=True)\n    time.sleep(0.2)\n" \
        "open(os.environ['JOB_ARTIFACTS_DIR'] + '/model.txt', 'w').write('weights')\n"


@pytest.fixture
def lab_extra() -> list[str]:
    """More server options for a test module's JupyterLab."""
    return []


@pytest.fixture
def lab(server_process, tmp_path, lab_extra):
    require("browser", browser_problem())
    settings = tmp_path / "lab-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    srv = server_process(
        env={"JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")},
        extra=[f"--DockerBackend.base_url=unix://{tmp_path}/no-docker.sock", *lab_extra],
    )
    (srv.root / "proj").mkdir()
    (srv.root / "proj" / "train.py").write_text(TRAIN)
    return srv.start()


@pytest.fixture
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{lab.url}/lab?token={lab.token}")
        page.wait_for_selector("#jupyter-jobs-panel", state="attached", timeout=90_000)
        yield page
        browser.close()


def open_panel(page):
    if not page.is_visible("#jupyter-jobs-panel"):
        page.click("li[data-id='jupyter-jobs-panel']")
    page.wait_for_selector("#jupyter-jobs-panel .jp-JobsHeader", state="visible")
    if page.is_visible("#jupyter-jobs-panel .jp-JobsForm"):  # back to the list
        page.click("#jupyter-jobs-panel .jp-JobsForm button:has-text('Cancel')")


def open_job(page, job_id):
    """Click the job's row in the sidebar: its tab opens in the main area."""
    open_panel(page)
    page.click(f".jp-JobsRow[data-job-id='{job_id}']")
    return page.wait_for_selector(f".jp-JobsView[data-job-id='{job_id}']", state="visible")


def layout_saved(lab, *widgets: str, also=lambda data: True, timeout: float = 30) -> dict:
    """Wait until JupyterLab has saved a layout holding `widgets` (restorer keys such as
    `jupyter-jobs-job:<id>`) and `also(data)` holds: it saves a moment after each change, so a
    reload before that would restore the layout before it. Returns the workspace's data."""
    deadline = time.monotonic() + timeout
    while True:
        data = lab.request("GET", "/lab/api/workspaces/default").get("data", {})
        layout = json.dumps(data.get("layout-restorer:data", {}))
        if all(w in layout for w in widgets) and also(data):
            return data
        assert time.monotonic() < deadline, f"the layout was not saved with {widgets}: {layout}"
        time.sleep(0.1)


def tab(page, name):
    page.click(f".jp-JobsView:visible [role='tab'][data-tab='{name}']")
    return page.wait_for_selector(f".jp-JobsView:visible #jp-JobsTabPanel-{name}", state="visible")


def shot(page, name):
    folder = SCREENSHOTS if os.environ.get("JUPYTER_JOBS_SCREENSHOTS") == "1" else Path("/tmp")
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def serious_violations(page, selector):
    """axe-core's serious and critical findings for the part of the page under `selector`."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async sel => {
        const r = await axe.run(document.querySelector(sel), {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; ')})`);
    }""", selector)
    return found
