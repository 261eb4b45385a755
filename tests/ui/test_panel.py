"""The JupyterLab panel in a real browser (Debian's Chromium through Playwright) against a real
JupyterLab with the extension and the local backend."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support import CHROMIUM, CHROMIUM_ARGS, browser_problem, require

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TRAIN = "import os, time\nfor i in range(5):\n    print('step', i, flush=True)\n    time.sleep(0.2)\n" \
        "open(os.environ['JOB_ARTIFACTS_DIR'] + '/model.txt', 'w').write('weights')\n"


@pytest.fixture
def lab(server_process, tmp_path):
    require("browser", browser_problem())
    settings = tmp_path / "lab-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    srv = server_process(
        env={"JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")},
        extra=[f"--DockerBackend.base_url=unix://{tmp_path}/no-docker.sock"],
    )
    (srv.root / "proj").mkdir()
    (srv.root / "proj" / "train.py").write_text(TRAIN)
    return srv.start()


@pytest.fixture
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 820}, accept_downloads=True)
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


def shot(page, name):
    folder = SCREENSHOTS if os.environ.get("JUPYTER_JOBS_SCREENSHOTS") == "1" else Path("/tmp")
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def fill_form(page, **fields):
    page.click("text=New job")
    for name, value in fields.items():
        page.fill(f"#jupyter-jobs-panel [name='{name}']", value)


def test_submit_from_the_form_and_watch_it_run(page, lab):
    open_panel(page)
    fill_form(page, name="from-the-form", command="sleep 1.5; python train.py", workspace="proj", retries="1")
    page.click("button[type=submit]")
    detail = page.wait_for_selector(".jp-JobsDetail[data-job-id]")
    job_id = detail.get_attribute("data-job-id")
    assert lab.request("GET", f"/jupyter-jobs/jobs/{job_id}")["spec"]["retries"] == 1
    page.wait_for_selector(".jp-JobsFacts th:text('attempt')")
    page.click("text=← Jobs")
    row = f".jp-JobsRow[data-job-id='{job_id}']"
    page.wait_for_selector(f"{row}[data-status='running']")  # the list updates by itself
    page.wait_for_selector(f"{row}[data-status='succeeded']", timeout=30_000)
    page.click(row)
    page.wait_for_selector(".jp-JobsDetail[data-status='succeeded']")
    page.wait_for_function("document.querySelectorAll('.jp-JobsLog-line').length >= 5")
    lines = page.locator(".jp-JobsLog-line").all_inner_texts()
    assert lines == [f"step {i}" for i in range(5)]
    page.wait_for_selector(".jp-JobsSection:has-text('5 lines')")  # the count follows the log
    assert "0" in page.inner_text(".jp-JobsFacts")  # exit code
    with page.expect_download() as download:
        page.click(".jp-JobsArtifacts a:has-text('model.txt')")
    assert Path(download.value.path()).read_text() == "weights"
    shot(page, "job-detail")


def test_stderr_is_marked_and_cancel_and_rerun(page, lab):
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": "echo to-err >&2; echo out; sleep 60",
                                                      "workspace": "proj", "name": "long-one"})
    open_panel(page)
    page.click(f".jp-JobsRow[data-job-id='{job['id']}']")
    page.wait_for_selector(".jp-JobsLog-line.jp-mod-stderr:has-text('to-err')")
    page.click(".jp-JobsDetail button:has-text('Cancel')")
    page.wait_for_selector(".jp-JobsDetail[data-status='cancelled']")
    assert "cancelled" in page.inner_text(".jp-JobsTitle")
    page.click(".jp-JobsDetail button:has-text('Rerun')")
    page.wait_for_function(f"document.querySelector('.jp-JobsDetail[data-job-id]') && "
                           f"document.querySelector('.jp-JobsDetail[data-job-id]').dataset.jobId !== '{job['id']}'")
    rerun_id = page.get_attribute(".jp-JobsDetail[data-job-id]", "data-job-id")
    rerun = lab.request("GET", f"/jupyter-jobs/jobs/{rerun_id}")
    assert rerun["spec"]["command"] == job["spec"]["command"]
    lab.request("POST", f"/jupyter-jobs/jobs/{rerun_id}/cancel")
    page.wait_for_selector(".jp-JobsDetail[data-status='cancelled']")
    page.click(".jp-JobsDetail button:has-text('Delete')")
    page.wait_for_selector(".jp-JobsList")
    assert page.locator(f".jp-JobsRow[data-job-id='{rerun_id}']").count() == 0


def test_validation_errors_are_shown_next_to_the_fields(page, lab):
    open_panel(page)
    fill_form(page, command="python train.py", workspace="proj", memory="lots", timeout="soon")
    docker = page.locator(".jp-JobsField[data-field='backend'] option[value='docker']")
    assert docker.is_disabled() and "unavailable" in docker.inner_text()
    page.click("button[type=submit]")
    memory_error = page.wait_for_selector(".jp-JobsField[data-field='resources.memory'] .jp-JobsField-error")
    assert "lots" in memory_error.inner_text()
    assert "soon" in page.inner_text(".jp-JobsField[data-field='timeout'] .jp-JobsField-error")
    assert "2 fields to fix" in page.inner_text(".jp-JobsError")
    shot(page, "job-form-errors")


def test_panel_is_restored_after_reload(page, lab):
    open_panel(page)
    page.wait_for_timeout(1000)  # let the layout be saved
    page.reload()
    page.wait_for_selector("#jupyter-jobs-panel .jp-JobsHeader", state="visible", timeout=90_000)


def test_run_as_job_from_the_file_browser(page, lab):
    page.click("li[data-id='filebrowser']") if not page.is_visible(".jp-DirListing") else None
    page.dblclick(".jp-DirListing-item[title*='proj'] >> nth=0")
    page.wait_for_selector(".jp-DirListing-item:has-text('train.py')")
    page.click(".jp-DirListing-item:has-text('train.py')", button="right")
    page.click(".lm-Menu-item:has-text('Run as Job')")
    page.wait_for_selector("#jupyter-jobs-panel .jp-JobsForm", state="visible")
    assert page.input_value(".jp-JobsField[data-field='command'] textarea") == "python train.py"
    assert page.input_value(".jp-JobsField[data-field='workspace'] input") == "proj"
    page.click("button[type=submit]")
    page.wait_for_selector(".jp-JobsDetail[data-status='succeeded']", timeout=30_000)
    page.click("text=← Jobs")
    page.wait_for_selector(".jp-JobsRow[data-status='succeeded']")
    shot(page, "job-list")


def test_server_errors_are_readable(page, lab):
    open_panel(page)
    page.click("text=New job")
    page.fill(".jp-JobsField[data-field='command'] textarea", "true")
    page.fill(".jp-JobsField[data-field='workspace'] input", "no/such/folder")
    page.click("button[type=submit]")
    error = page.wait_for_selector(".jp-JobsField[data-field='workspace'] .jp-JobsField-error")
    assert "'no/such/folder' is not a folder" in error.inner_text()
    assert "1 field to fix" in page.inner_text(".jp-JobsError")


@pytest.fixture
def dark(tmp_path):
    themes = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    themes.parent.mkdir(parents=True, exist_ok=True)
    themes.write_text(json.dumps({"theme": "JupyterLab Dark"}))


def luminance(css_color: str) -> float:
    r, g, b = [int(v) for v in css_color[css_color.index("(") + 1 : css_color.index(")")].split(",")[:3]]
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_the_theme_is_respected(dark, page, lab):
    lab.request("POST", "/jupyter-jobs/jobs", {"command": "python train.py", "workspace": "proj", "name": "dark"})
    open_panel(page)
    page.wait_for_selector(".jp-JobsRow[data-status='succeeded']", timeout=30_000)
    background = page.eval_on_selector(".jp-JobsPanel", "e => getComputedStyle(e).backgroundColor")
    text = page.eval_on_selector(".jp-JobsRow-name", "e => getComputedStyle(e).color")
    assert luminance(background) < 0.3 < luminance(text)
    shot(page, "job-list-dark")


def test_a_queued_job_says_why_it_waits(page, lab):
    import time

    open_panel(page)
    jobs = []
    while len(jobs) < 64:  # fill the local backend's limit (max(4, 2 x CPUs)): one more waits
        jobs.append(lab.request("POST", "/jupyter-jobs/jobs", {"command": "sleep 30", "workspace": "proj"}))
        time.sleep(0.1)
        if "in the queue" in (lab.request("GET", f"/jupyter-jobs/jobs/{jobs[-1]['id']}")["waiting"] or ""):
            break
    waiting = jobs[-1]
    row = f".jp-JobsRow[data-job-id='{waiting['id']}']"
    page.wait_for_selector(f"{row}[data-status='queued']")
    assert "in the queue" in page.inner_text(f"{row} .jp-JobsRow-waiting")
    page.click(row)
    assert page.inner_text(".jp-JobsWaiting").startswith("Waiting: ")
    for job in jobs:
        lab.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel", {})
