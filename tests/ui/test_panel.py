"""The sidebar (compact live list, quick form) and a job's main-area tab, in a real browser
(Debian's Chromium through Playwright) against a real JupyterLab with the local backend."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import layout_saved, open_job, open_panel, shot, tab


def fill_form(page, **fields):
    page.click("text=New job")
    for name, value in fields.items():
        page.fill(f"#jupyter-jobs-panel [name='{name}']", value)


def test_submit_from_the_form_and_watch_it_run(page, lab):
    open_panel(page)
    fill_form(page, name="from-the-form", command="sleep 1.5; python train.py", workspace="proj", retries="1")
    page.click("button[type=submit]")
    view = page.wait_for_selector(".jp-JobsView[data-job-id]", state="visible")  # its own tab
    job_id = view.get_attribute("data-job-id")
    assert lab.request("GET", f"/jupyter-jobs/jobs/{job_id}")["spec"]["retries"] == 1
    assert page.inner_text(".lm-DockPanel .lm-TabBar-tab.lm-mod-current") == "from-the-form"
    row = f".jp-JobsRow[data-job-id='{job_id}']"
    page.wait_for_selector(f"{row}[data-status='running']")  # the sidebar list updates by itself
    assert "running " in page.inner_text(".jp-JobsView .jp-JobsTitle-meta")  # never "finished" while it runs
    page.wait_for_selector(f"{row}[data-status='succeeded']", timeout=30_000)
    page.wait_for_selector(".jp-JobsView[data-status='succeeded']")
    page.wait_for_function("document.querySelectorAll('.jp-JobsLog-line').length >= 5")
    assert page.locator(".jp-JobsLog-line").all_inner_texts() == [f"step {i}" for i in range(5)]
    page.wait_for_selector(".jp-JobsLogCount:has-text('5 lines')")  # the count follows the log
    details = tab(page, "details")
    assert "attempt" in details.inner_text() and "1 of 2" in details.inner_text()
    events = page.locator(".jp-JobsEvents li").all_inner_texts()
    assert "running" in " ".join(events) and "succeeded" in events[-1]
    tab(page, "artifacts")
    page.click(".jp-JobsArtifacts button:has-text('model.txt')")
    assert page.wait_for_selector(".jp-JobsPreview-text").inner_text() == "weights"
    with page.expect_download() as download:
        page.click(".jp-JobsPreview a:has-text('Download')")
    assert Path(download.value.path()).read_text() == "weights"


def test_a_failing_job_keeps_the_end_of_its_log_in_view(page, lab):
    """Rows added above the log when the job ends (its message, its finish time) must not push
    the last line, the one that explains the failure, out of view."""
    body = "for i in $(seq 1 40); do echo line $i; sleep 0.05; done; echo 'FATAL: out of memory' >&2; exit 3"
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": body, "workspace": "proj", "name": "failing"})
    open_job(page, job["id"])
    page.wait_for_selector(".jp-JobsView[data-status='failed']", timeout=30_000)
    page.wait_for_selector(".jp-JobsMessage")
    page.wait_for_timeout(300)  # a frame or two after the header grew
    visible = page.evaluate("""() => {
        const log = document.querySelector('.jp-JobsView .jp-JobsLog');
        const box = log.getBoundingClientRect();
        return [...log.querySelectorAll('.jp-JobsLog-line')].filter(l => {
            const r = l.getBoundingClientRect(); return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
        }).map(l => l.textContent);
    }""")
    assert visible[-1] == "FATAL: out of memory", visible[-3:]


def test_stderr_is_marked_and_cancel_and_rerun(page, lab):
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": "echo to-err >&2; echo out; sleep 60",
                                                      "workspace": "proj", "name": "long-one"})
    open_job(page, job["id"])
    page.wait_for_selector(".jp-JobsLog-line.jp-mod-stderr:has-text('to-err')")
    page.click(".jp-JobsView button:has-text('Cancel')")
    page.wait_for_selector(".jp-JobsView[data-status='cancelled']")
    details = tab(page, "details").inner_text()
    assert "exit code" not in details  # a cancelled job's 143 is noise next to "cancelled"
    page.click(".jp-JobsView button:has-text('Rerun')")
    page.wait_for_function(f"[...document.querySelectorAll('.jp-JobsView[data-job-id]')]"
                           f".some(v => v.dataset.jobId !== '{job['id']}' && v.offsetParent)")
    rerun_id = page.eval_on_selector_all(".jp-JobsView[data-job-id]",
                                         f"vs => vs.map(v => v.dataset.jobId).find(i => i !== '{job['id']}')")
    rerun = lab.request("GET", f"/jupyter-jobs/jobs/{rerun_id}")
    assert rerun["spec"]["command"] == job["spec"]["command"]
    lab.request("POST", f"/jupyter-jobs/jobs/{rerun_id}/cancel")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{rerun_id}'][data-status='cancelled']")
    page.click(f".jp-JobsView[data-job-id='{rerun_id}'] button:has-text('Delete')")
    page.click(".jp-Dialog button.jp-mod-warn:has-text('Delete')")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{rerun_id}']", state="detached")  # its tab closed
    page.wait_for_selector(f".jp-JobsRow[data-job-id='{rerun_id}']", state="detached")


def test_edit_and_resubmit_and_copy_as_magic(page, lab):
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": "echo $GREETING", "workspace": "proj",
                                                      "name": "greet", "env": {"GREETING": "hello"}})
    open_job(page, job["id"])
    page.wait_for_selector(".jp-JobsView[data-status='succeeded']", timeout=30_000)
    page.click(".jp-JobsView button:has-text('Copy as magic')")
    page.wait_for_selector(".jp-JobsView [role='status']:has-text('Copied as magic')")
    magic = page.evaluate("navigator.clipboard.readText()")
    assert magic.startswith("%job run") and "--env GREETING=hello" in magic and magic.endswith("-- echo $GREETING")
    page.click(".jp-JobsView button:has-text('Copy as curl')")
    page.wait_for_selector(".jp-JobsView [role='status']:has-text('Copied as curl')")
    curl = page.evaluate("navigator.clipboard.readText()")
    assert "/jupyter-jobs/jobs" in curl and '"GREETING":"hello"' in curl
    page.click(".jp-JobsView button:has-text('Edit and resubmit')")
    form = page.wait_for_selector("#jupyter-jobs-panel .jp-JobsForm", state="visible")
    assert page.input_value("#jupyter-jobs-panel [name='command']") == "echo $GREETING"
    assert page.input_value("#jupyter-jobs-panel [aria-label='value']") == "hello"
    page.fill("#jupyter-jobs-panel [aria-label='value']", "bonjour")
    form.query_selector("button[type=submit]").click()
    page.wait_for_function(f"[...document.querySelectorAll('.jp-JobsView[data-job-id]')]"
                           f".some(v => v.dataset.jobId !== '{job['id']}' && v.offsetParent)")
    page.wait_for_selector(".jp-JobsView[data-status='succeeded']:visible .jp-JobsLog-line:has-text('bonjour')",
                           timeout=30_000)


def test_validation_errors_come_all_at_once_and_ignored_fields_are_greyed(page, lab):
    open_panel(page)
    fill_form(page, command="python train.py", workspace="no/such/folder", gpus="2", timeout="soon")
    docker = page.locator(".jp-JobsField[data-field='backend'] option[value='docker']")
    assert docker.is_disabled() and "unavailable" in docker.inner_text()
    image = page.locator(".jp-JobsField[data-field='image']")
    assert image.locator("input").is_disabled() and "not applied" in image.inner_text()  # local runs no image
    page.click("button[type=submit]")
    for field, text in [("timeout", "soon"), ("workspace", "no/such/folder"), ("resources.gpus", "2 GPU")]:
        error = page.wait_for_selector(f".jp-JobsField[data-field='{field}'] .jp-JobsField-error")
        assert text in error.inner_text(), field
    assert "3 fields to fix" in page.inner_text(".jp-JobsError")
    shot(page, "job-form-errors")


def test_every_field_error_at_once_beside_its_field_and_cleared_by_an_edit(page, lab):
    """The browser's own number checks no longer go first (one field at a time, `abc` in CPUs sent
    as nothing): what was typed goes to the server, whose 400 names every bad field at once."""
    open_panel(page)
    fill_form(page, command="python train.py", workspace="proj", cpus="abc", memory="lots", retries="-1")
    page.click("button[type=submit]")
    expected = [("resources.cpus", "'abc' is not a number"), ("resources.memory", "lots"), ("retries", "")]
    for field, text in expected:
        error = page.wait_for_selector(f".jp-JobsField[data-field='{field}'] .jp-JobsField-error", timeout=5_000)
        assert text in error.inner_text(), field
    assert "3 fields to fix" in page.inner_text(".jp-JobsError")
    assert lab.request("GET", "/jupyter-jobs/jobs")["jobs"] == []
    page.fill("#jupyter-jobs-panel [name='cpus']", "2")  # an edit clears that field's error only
    page.wait_for_selector(".jp-JobsField[data-field='resources.cpus'] .jp-JobsField-error", state="detached")
    assert page.is_visible(".jp-JobsField[data-field='resources.memory'] .jp-JobsField-error")
    page.fill("#jupyter-jobs-panel [name='retries']", "x")  # a text box: what is typed is sent as typed
    page.click("button[type=submit]")
    error = page.wait_for_selector(".jp-JobsField[data-field='retries'] .jp-JobsField-error")
    assert "x" in error.inner_text()
    assert not page.is_visible(".jp-JobsField[data-field='resources.cpus'] .jp-JobsField-error")


def test_tabs_and_the_page_are_restored_after_reload(page, lab):
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": "echo restored", "workspace": "proj",
                                                      "name": "restore-me"})
    open_job(page, job["id"])
    page.click("#jupyter-jobs-panel button:has-text('Open all')")
    page.wait_for_selector(".jp-JobsPage", state="visible")
    layout_saved(lab, "jupyter-jobs-page:jobs", f"jupyter-jobs-job:{job['id']}")
    page.reload()
    page.wait_for_selector(".jp-JobsPage", state="attached", timeout=90_000)
    page.wait_for_selector(f".jp-JobsView[data-job-id='{job['id']}']", state="attached")
    labels = page.locator(".lm-DockPanel .lm-TabBar-tab").all_inner_texts()
    assert "Jobs" in labels and "restore-me" in labels


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
    page.wait_for_selector(".jp-JobsView[data-status='succeeded']", timeout=30_000)
    page.wait_for_selector(".jp-JobsRow[data-status='succeeded']")
    shot(page, "job-tab")


def test_server_errors_are_readable(page, lab):
    open_panel(page)
    page.click("text=New job")
    page.fill(".jp-JobsField[data-field='command'] textarea", "true")
    page.fill(".jp-JobsField[data-field='workspace'] input", "no/such/folder")
    page.click("button[type=submit]")
    error = page.wait_for_selector(".jp-JobsField[data-field='workspace'] .jp-JobsField-error")
    assert "'no/such/folder' is not a folder" in error.inner_text()
    assert "1 field to fix" in page.inner_text(".jp-JobsError")


def test_sidebar_rows_are_reachable_by_keyboard_and_empty_filters_say_so(page, lab):
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": "true", "workspace": "proj", "name": "keys"})
    open_panel(page)
    row = page.wait_for_selector(f".jp-JobsRow[data-job-id='{job['id']}']")
    row.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{job['id']}']", state="visible")
    page.select_option("#jupyter-jobs-panel [aria-label='status filter']", "cancelled")
    assert page.wait_for_selector("#jupyter-jobs-panel .jp-JobsEmpty").inner_text() == "No jobs match these filters."


@pytest.fixture
def dark(tmp_path):
    themes = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    themes.parent.mkdir(parents=True, exist_ok=True)
    themes.write_text(json.dumps({"theme": "JupyterLab Dark"}))


def luminance(css_color: str) -> float:
    r, g, b = [int(v) for v in css_color[css_color.index("(") + 1 : css_color.index(")")].split(",")[:3]]
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_the_theme_is_respected(dark, page, lab):
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": "python train.py", "workspace": "proj", "name": "dark"})
    open_panel(page)
    page.wait_for_selector(".jp-JobsRow[data-status='succeeded']", timeout=30_000)
    background = page.eval_on_selector(".jp-JobsPanel", "e => getComputedStyle(e).backgroundColor")
    text = page.eval_on_selector(".jp-JobsRow-name", "e => getComputedStyle(e).color")
    assert luminance(background) < 0.3 < luminance(text)
    open_job(page, job["id"])
    page.wait_for_selector(".jp-JobsView .jp-JobsLog-line")
    view = page.eval_on_selector(".jp-JobsMain", "e => getComputedStyle(e).backgroundColor")
    assert luminance(view) < 0.3
    shot(page, "job-tab-dark")


def test_a_queued_job_says_why_it_waits(page, lab):
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
    assert page.wait_for_selector(".jp-JobsView .jp-JobsWaiting").inner_text().startswith("Waiting: ")
    for job in jobs:
        lab.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel", {})
