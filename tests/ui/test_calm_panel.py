"""A calm panel, in a real browser: notifications only for the ends nobody watched (not the job
whose tab is in front, not one cancelled here, not the job a `%%job` cell is following), counts
and failure reasons in words ("1 line", "exited with code 3"), and the `progress` and
`total_steps` series drawn as progress bars, never as charts."""

from __future__ import annotations

import json
import time
import urllib.request

import nbformat

from conftest import open_job, open_panel, tab

PANEL = "#jupyter-jobs-panel"


def browser_origin(page) -> str:
    """This page's origin (browser:<id>), made by the notifier's first poll."""
    page.wait_for_function("localStorage.getItem('jupyter-jobs:browser-id') !== null")
    return "browser:" + page.evaluate("localStorage.getItem('jupyter-jobs:browser-id')")


def submit(lab, body: dict, origin: str) -> dict:
    """A job started as this browser's form starts one (its origin header)."""
    req = urllib.request.Request(f"{lab.url}/jupyter-jobs/jobs", data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", f"token {lab.token}")
    req.add_header("X-Jupyter-Jobs-Origin", origin)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def toasts(page, text: str) -> int:
    return page.locator(f".Toastify__toast:has-text('{text}')").count()


def open_page(page):
    open_panel(page)
    page.click(f"{PANEL} button:has-text('Open all')")
    return page.wait_for_selector(".jp-JobsPage", state="visible")


def test_no_notification_for_a_job_in_view_or_cancelled_here(page, lab):
    origin = browser_origin(page)
    job = lambda name, command: submit(lab, {"command": command, "workspace": "proj", "name": name}, origin)  # noqa: E731
    # its tab in front while it ends: the user sees the end there
    watched = job("calm-watched", "sleep 2; echo done")
    open_job(page, watched["id"])
    lab.wait(watched["id"])
    page.wait_for_selector(f".jp-JobsView[data-job-id='{watched['id']}'][data-status='succeeded']", state="visible")

    # a tab behind another one, and no tab at all: nobody sees the end, so it is told
    behind = job("calm-behind", "sleep 3")
    open_job(page, behind["id"])
    cancelled = job("calm-cancelled", "sleep 60")
    unwatched = job("calm-unwatched", "sleep 3")
    open_page(page)  # in front of the job tabs
    page.fill(".jp-JobsPage input[type='search']", "calm-cancelled")
    page.click(f".jp-JobsGrid-row[data-job-id='{cancelled['id']}'] input[type='checkbox']")
    page.click(".jp-JobsPage-selection button:has-text('Cancel')")
    assert lab.wait(cancelled["id"])["status"] == "cancelled"
    page.wait_for_selector(".Toastify__toast:has-text('calm-unwatched')", timeout=30_000)
    page.wait_for_selector(".Toastify__toast:has-text('calm-behind')", timeout=30_000)
    lab.wait(behind["id"])
    time.sleep(4)  # more than a poll after the last end
    assert toasts(page, "calm-watched") == 0
    assert toasts(page, "calm-cancelled") == 0
    assert lab.request("GET", f"/jupyter-jobs/jobs/{unwatched['id']}")["status"] == "succeeded"


def test_no_notification_for_the_job_a_cell_follows(page, lab):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_jobs"),
        nbformat.v4.new_code_cell("%%job --detach -n nb-detached\nimport time\ntime.sleep(4)\nprint('late')"),
        nbformat.v4.new_code_cell("%%job -n nb-followed\nimport time\ntime.sleep(2)\nprint('followed done')"),
    ]
    nbformat.write(nb, lab.root / "proj" / "cells.ipynb")
    if not page.is_visible(".jp-DirListing"):
        page.click("li[data-id='filebrowser']")
    page.dblclick(".jp-DirListing-item[title*='proj'] >> nth=0")
    page.dblclick(".jp-DirListing-item:has-text('cells.ipynb')")
    deadline = time.monotonic() + 60
    while not any(s["path"].endswith("cells.ipynb") for s in lab.request("GET", "/api/sessions")):
        if page.is_visible(".jp-Dialog button:has-text('Select')"):  # its kernel, asked at times
            page.click(".jp-Dialog button:has-text('Select')")
        assert time.monotonic() < deadline, "no kernel"
        time.sleep(0.2)
    idle = ".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status='idle']"
    page.wait_for_selector(idle, timeout=60_000)
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    page.wait_for_selector(".jp-NotebookPanel:visible .jp-OutputArea-output:has-text('followed done')", timeout=60_000)

    def job_named(name: str) -> dict:
        deadline = time.monotonic() + 30
        while not (found := lab.request("GET", f"/jupyter-jobs/jobs?q={name}")["jobs"]):
            assert time.monotonic() < deadline, f"no job {name}"
            time.sleep(0.2)
        return found[0]

    followed, detached = job_named("nb-followed"), job_named("nb-detached")
    assert followed["origin"].startswith("kernel:") and detached["origin"] == followed["origin"]
    # the detached job ends while the cell does not follow it: told; the followed one is not
    page.wait_for_selector(".Toastify__toast:has-text('nb-detached')", timeout=30_000)
    assert lab.wait(followed["id"])["status"] == "succeeded"
    time.sleep(4)  # more than a poll
    assert toasts(page, "nb-followed") == 0


def test_counts_and_reasons_in_words(page, lab):
    # one line, one file of one byte, one job in the history
    one = lab.request("POST", "/jupyter-jobs/jobs", {
        "command": "echo only; printf x > $JOB_ARTIFACTS_DIR/one.txt; exit 3", "workspace": "proj", "name": "words"})
    assert lab.wait(one["id"])["reason"] == "exit_code"
    open_job(page, one["id"])
    view = f".jp-JobsView[data-job-id='{one['id']}']"
    message = page.wait_for_selector(f"{view} .jp-JobsMessage").inner_text()
    assert message == "Exited with code 3"  # not "exit_code: the command exited with code 3"
    count = page.wait_for_selector(f"{view} .jp-JobsLogCount:has-text('1 line')").inner_text()
    assert "1 lines" not in count
    tab(page, "artifacts")
    listed = page.wait_for_selector(f"{view} #jp-JobsTabPanel-artifacts:has-text('1 of 1 file')").inner_text()
    assert "1 of 1 files" not in listed and "1 byte" in listed and "1 bytes" not in listed
    assert "0 GPUs" in page.locator(f"{view} .jp-JobsFacts").inner_text()
    open_page(page)
    shown = page.wait_for_selector(".jp-JobsPage-count:has-text('1 of 1 job')").inner_text()
    assert "jobs" not in shown


METRICS = """import json, os, time
with open(os.environ['JOB_METRICS_FILE'], 'a') as f:
    for i in range(4):
        f.write(json.dumps({'step': i, 'loss': 1 / (i + 1), %s}) + '\\n')
        f.flush()
time.sleep(60)
"""


def test_progress_and_total_steps_are_bars_not_charts(page, lab):
    by_progress = lab.request("POST", "/jupyter-jobs/jobs", {
        "command": ["python3", "-c", METRICS % "'progress': i / 4"], "workspace": "proj", "name": "by-progress"})
    by_steps = lab.request("POST", "/jupyter-jobs/jobs", {
        "command": ["python3", "-c", METRICS % "'total_steps': 10"], "workspace": "proj", "name": "by-steps"})
    try:
        for job, percent in ((by_progress, "75"), (by_steps, "30")):
            deadline = time.monotonic() + 30
            while lab.request("GET", f"/jupyter-jobs/jobs/{job['id']}")["progress"] is None:
                assert time.monotonic() < deadline, "no progress"
                time.sleep(0.2)
            view = f".jp-JobsView[data-job-id='{job['id']}']"
            open_job(page, job["id"])
            page.wait_for_selector(f"{view} header [role='progressbar'][aria-valuenow='{percent}']")
            row = f"{PANEL} .jp-JobsRow[data-job-id='{job['id']}']"
            page.wait_for_selector(f"{row} [role='progressbar'][aria-valuenow='{percent}']")
            tab(page, "metrics")
            page.wait_for_selector(f"{view} .jp-JobsChartBox[data-series='loss']")
            for name in ("progress", "total_steps"):
                assert page.locator(f"{view} .jp-JobsChartBox[data-series='{name}']").count() == 0
        open_page(page)
        for job, percent in ((by_progress, "75"), (by_steps, "30")):
            cell = f".jp-JobsGrid-row[data-job-id='{job['id']}'] [role='progressbar'][aria-valuenow='{percent}']"
            page.wait_for_selector(cell)
    finally:
        for job in (by_progress, by_steps):
            lab.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel", {})
