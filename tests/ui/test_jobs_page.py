"""The main-area Jobs page, the comparison, the job tab's log tools and artifact previews, and
accessibility (axe-core), in a real browser against a real JupyterLab with the local backend."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from conftest import open_job, open_panel, serious_violations, shot, tab

PNG = base64.b64decode(  # a 1x1 red pixel
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
NOTEBOOK = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# made by a job"]}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def submit(lab, **spec):
    return lab.request("POST", "/jupyter-jobs/jobs", {"workspace": "proj", **spec})


def open_page(page):
    open_panel(page)
    page.click("#jupyter-jobs-panel button:has-text('Open all')")
    return page.wait_for_selector(".jp-JobsPage", state="visible")


def names(page):
    return page.locator(".jp-JobsGrid-body .jp-JobsGrid-name").all_inner_texts()


def test_the_jobs_page_sorts_searches_filters_and_selects(page, lab):
    made = [submit(lab, command=f"echo {n}", name=n, tags=tags)
            for n, tags in [("beta", ["sweep"]), ("alpha", []), ("gamma", ["sweep", "big"])]]
    failing = submit(lab, command="exit 4", name="delta")
    for job in [*made, failing]:
        lab.wait(job["id"])
    open_page(page)
    page.wait_for_selector(".jp-JobsPage-count:has-text('4 of 4 jobs')")
    assert names(page) == ["delta", "gamma", "alpha", "beta"]  # newest first
    page.click(".jp-JobsGrid-head button:has-text('Name')")
    assert names(page) == ["alpha", "beta", "delta", "gamma"]
    assert page.get_attribute(".jp-JobsGrid-head [aria-sort='ascending']", "class") == "jp-JobsGrid-name"
    page.fill(".jp-JobsPage-search", "SWEEP")  # tags, any case
    page.wait_for_selector(".jp-JobsPage-count:has-text('2 of 4 jobs')")
    assert names(page) == ["beta", "gamma"]
    page.fill(".jp-JobsPage-search", made[1]["id"])  # an id
    page.wait_for_selector(".jp-JobsPage-count:has-text('1 of 4 jobs')")
    page.fill(".jp-JobsPage-search", "")
    page.select_option(".jp-JobsPage [aria-label='status filter']", "failed")
    assert names(page) == ["delta"]
    page.select_option(".jp-JobsPage [aria-label='status filter']", "cancelled")
    assert page.wait_for_selector(".jp-JobsPage .jp-JobsEmpty").inner_text() == "No jobs match these filters."
    page.select_option(".jp-JobsPage [aria-label='status filter']", "")
    # live: a new job appears by itself, and goes to succeeded
    late = submit(lab, command="sleep 1", name="late")
    page.wait_for_selector(f".jp-JobsGrid-row[data-job-id='{late['id']}'][data-status='succeeded']", timeout=30_000)
    shot(page, "jobs-page")
    # keyboard: the first row takes focus, arrows move, space selects, Enter opens
    page.focus(".jp-JobsGrid-body .jp-JobsGrid-row >> nth=0")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    assert page.locator(".jp-JobsGrid-row[aria-selected='true']").count() == 1
    page.keyboard.press("Enter")
    page.wait_for_selector(".jp-JobsView", state="visible")


def test_multi_select_deletes_and_compares(page, lab):
    a = submit(lab, command="echo a", name="run-a", env={"LR": "0.1"})
    b = submit(lab, command="echo b", name="run-b", env={"LR": "0.01"})
    c = submit(lab, command="echo c", name="run-c")
    for job in (a, b, c):
        lab.wait(job["id"])
    open_page(page)
    page.wait_for_selector(".jp-JobsPage-count:has-text('3 of 3 jobs')")
    for job in (a, b):
        page.check(f".jp-JobsGrid-row[data-job-id='{job['id']}'] input[type=checkbox]")
    page.click(".jp-JobsPage button:has-text('Compare')")
    compare = page.wait_for_selector(".jp-JobsCompare-table", state="visible")
    headers = compare.query_selector_all("thead th")
    assert len(headers) == 3  # the field column and two jobs
    assert page.get_attribute(".jp-JobsCompare-table tr[data-field='env LR']", "class") == "jp-mod-differs"
    assert page.get_attribute(".jp-JobsCompare-table tr[data-field='backend']", "class") == ""
    page.check(".jp-JobsCompare input[type=checkbox]")  # only differences
    rows = page.locator(".jp-JobsCompare-table tbody th").all_inner_texts()
    assert "backend" not in rows and "command" in rows and "env LR" in rows
    page.click(".lm-DockPanel .lm-TabBar-tab:has-text('Jobs')")
    page.click(".jp-JobsPage button:has-text('Delete')")
    page.click(".jp-Dialog button.jp-mod-warn:has-text('Delete')")
    page.wait_for_selector(".jp-JobsPage-count:has-text('1 of 1 job')")
    remaining = [j["id"] for j in lab.request("GET", "/jupyter-jobs/jobs")["jobs"]]
    assert remaining == [c["id"]]


def test_deleting_jobs_asks_first_and_cancel_keeps_them(page, lab):
    """Delete removed jobs with their logs and artifacts at one click: it asks now, naming what goes."""
    jobs = [submit(lab, command=f"echo {n}", name=n) for n in ("keep-a", "keep-b", "solo")]
    for job in jobs:
        lab.wait(job["id"])
    ids = lambda: {j["id"] for j in lab.request("GET", "/jupyter-jobs/jobs")["jobs"]}  # noqa: E731
    open_page(page)
    page.wait_for_selector(".jp-JobsPage-count:has-text('3 of 3 jobs')")
    for job in jobs[:2]:
        page.check(f".jp-JobsGrid-row[data-job-id='{job['id']}'] input[type=checkbox]")
    page.click(".jp-JobsPage button:has-text('Delete')")
    body = page.wait_for_selector(".jp-Dialog-content", timeout=5_000).inner_text()
    assert "2 jobs" in body and "logs and artifacts" in body and "keep-a" in body
    shot(page, "jobs-delete-confirm")
    page.click(".jp-Dialog button:has-text('Cancel')")
    page.wait_for_selector(".jp-Dialog", state="detached")
    assert ids() == {j["id"] for j in jobs}
    page.click(".jp-JobsPage button:has-text('Delete')")
    page.click(".jp-Dialog button.jp-mod-warn:has-text('Delete')")
    page.wait_for_selector(".jp-JobsPage-count:has-text('1 of 1 job')")
    assert ids() == {jobs[2]["id"]}
    # a job's own tab asks too
    open_job(page, jobs[2]["id"])
    page.click(".jp-JobsView:visible button:has-text('Delete')")
    body = page.wait_for_selector(".jp-Dialog-content", timeout=5_000).inner_text()
    assert "solo" in body and "log and artifacts" in body
    page.click(".jp-Dialog button:has-text('Cancel')")
    page.wait_for_selector(".jp-Dialog", state="detached")
    assert ids() == {jobs[2]["id"]}
    page.click(".jp-JobsView:visible button:has-text('Delete')")
    page.click(".jp-Dialog button.jp-mod-warn:has-text('Delete')")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{jobs[2]['id']}']", state="detached")
    assert ids() == set()


def test_log_tools_search_wrap_first_error_download(page, lab):
    body = ("for i in $(seq 1 300); do echo \"line $i $(printf 'x%.0s' $(seq 1 150))\"; done; "
            "echo 'Traceback: it broke' >&2; sleep 0.1; echo after")
    job = submit(lab, command=body, name="tools")
    lab.wait(job["id"])
    open_job(page, job["id"])
    page.wait_for_selector(".jp-JobsLogCount:has-text('302 lines')")
    page.fill(".jp-JobsView [aria-label='search the log']", "line 1")
    status = page.wait_for_selector(".jp-JobsLogSearch .jp-JobsMuted:has-text('lines')")
    assert "of 111 lines" in status.inner_text()  # line 1, 10-19, 100-199
    page.press(".jp-JobsView [aria-label='search the log']", "Enter")
    page.press(".jp-JobsView [aria-label='search the log']", "Enter")
    current = page.wait_for_selector(".jp-JobsLog-line.jp-mod-current")
    assert current.inner_text().startswith("line 10 ") and current.query_selector("mark").inner_text() == "line 1"
    assert "2 of 111" in page.inner_text(".jp-JobsLogSearch")
    page.click(".jp-JobsView button:has-text('Follow')")  # back to the end, and following
    page.wait_for_selector(".jp-JobsView button:has-text('Follow'):disabled")
    last = page.eval_on_selector_all(".jp-JobsLog-line", "ls => ls[ls.length - 1].textContent")
    assert last == "after"
    page.fill(".jp-JobsView [aria-label='search the log']", "")
    height = page.eval_on_selector(".jp-JobsLog-line >> nth=0", "e => e.getBoundingClientRect().height")
    page.check(".jp-JobsView .jp-JobsLogWrap input")
    wrapped = page.eval_on_selector(".jp-JobsLog-line >> nth=0", "e => e.getBoundingClientRect().height")
    assert wrapped > height  # 160-character lines take more than one row
    page.click(".jp-JobsView button:has-text('First error')")
    assert page.wait_for_selector(".jp-JobsLog-line.jp-mod-current").inner_text() == "Traceback: it broke"
    with page.expect_download() as download:
        page.click(".jp-JobsView button:has-text('Download')")
    text = Path(download.value.path()).read_text()
    assert text.count("\n") == 302 and text.endswith("Traceback: it broke\nafter\n")


def test_artifacts_are_previewed(page, lab):
    (lab.root / "proj" / "make.py").write_text(
        "import base64, json, os\n"
        "out = os.environ['JOB_ARTIFACTS_DIR']\n"
        f"open(out + '/dot.png', 'wb').write(base64.b64decode({base64.b64encode(PNG).decode()!r}))\n"
        "open(out + '/scores.csv', 'w').write('epoch,loss\\n1,0.5\\n2,\"0.25\"\\n')\n"
        "open(out + '/result.json', 'w').write(json.dumps({'acc': 0.9, 'f1': 0.8}))\n"
        f"open(out + '/report.ipynb', 'w').write(json.dumps({NOTEBOOK!r}))\n")
    job = submit(lab, command="python make.py", name="artifacts")
    lab.wait(job["id"])
    open_job(page, job["id"])
    tab(page, "artifacts")
    page.click(".jp-JobsArtifacts button:has-text('dot.png')")
    image = page.wait_for_selector(".jp-JobsPreview-image")
    page.wait_for_function("document.querySelector('.jp-JobsPreview-image').naturalWidth === 1")
    assert image.get_attribute("alt") == "dot.png"
    page.click(".jp-JobsArtifacts button:has-text('scores.csv')")
    page.wait_for_selector(".jp-JobsCsv")
    assert page.locator(".jp-JobsCsv th").all_inner_texts() == ["epoch", "loss"]
    assert page.locator(".jp-JobsCsv tbody tr").nth(1).inner_text().split() == ["2", "0.25"]
    page.click(".jp-JobsArtifacts button:has-text('result.json')")
    assert json.loads(page.wait_for_selector(".jp-JobsPreview-text").inner_text()) == {"acc": 0.9, "f1": 0.8}
    assert '\n  "acc"' in page.inner_text(".jp-JobsPreview-text")  # pretty-printed
    shot(page, "job-artifacts")
    page.click(".jp-JobsArtifacts button:has-text('report.ipynb')")
    page.click(".jp-JobsPreview button:has-text('Open in JupyterLab')")
    page.wait_for_selector(".jp-NotebookPanel h1:has-text('made by a job')", state="visible")
    assert (lab.root / "job-outputs" / job["id"] / "report.ipynb").exists()


def test_ten_thousand_artifacts_filter_preview_in_view_and_download_all(page, lab):
    """10,000 artifacts: the preview opened 149,000 px above the clicked row, the list had no
    filter and there was no way to download them all."""
    import io
    import zipfile

    (lab.root / "proj" / "many.py").write_text(
        "import os\nout = os.environ['JOB_ARTIFACTS_DIR']\n"
        "for i in range(10_000):\n"
        "    os.makedirs(f'{out}/part-{i // 1000}', exist_ok=True)\n"
        "    open(f'{out}/part-{i // 1000}/f{i:05d}.txt', 'w').write(f'file {i}')\n")
    job = submit(lab, command="python many.py", name="many")
    lab.wait(job["id"], timeout=120)
    open_job(page, job["id"])
    tab(page, "artifacts")
    rows = ".jp-JobsArtifacts li"
    page.wait_for_selector(rows)
    row = page.locator(rows).nth(400)  # far down the list
    row.scroll_into_view_if_needed()
    row.locator("button").click()
    preview = page.wait_for_selector(".jp-JobsPreview-text:has-text('file 400')")
    box = preview.bounding_box()
    assert box and 0 <= box["y"] < 900, box  # where the user looks, not above the view
    # a filter by path narrows the list, fast
    page.fill(".jp-JobsView:visible [aria-label='filter artifacts by path']", "f0999")
    page.wait_for_function("document.querySelectorAll('.jp-JobsArtifacts li').length === 10")
    page.fill(".jp-JobsView:visible [aria-label='filter artifacts by path']", "part-9/f09999")
    page.wait_for_function("document.querySelectorAll('.jp-JobsArtifacts li').length === 1")
    page.click(".jp-JobsArtifacts button:has-text('part-9/f09999.txt')")
    page.wait_for_selector(".jp-JobsPreview-text:text-is('file 9999')")  # the new file's, not the last
    shot(page, "job-artifacts-filter")
    with page.expect_download() as download:
        page.click(".jp-JobsView:visible a:has-text('Download all')")
    names = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())).namelist()
    assert len([n for n in names if n.endswith(".txt")]) == 10_000
    page.fill(".jp-JobsView:visible [aria-label='filter artifacts by path']", "part-3/")  # a folder
    with page.expect_download() as download:
        page.click(".jp-JobsView:visible a:has-text('Download these')")
    names = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())).namelist()
    files = [n for n in names if n.endswith(".txt")]
    assert len(files) == 1000 and all("part-3/" in n for n in files), files[:3]


def test_no_serious_accessibility_violations(page, lab):
    job = submit(lab, command="echo hi; echo oops >&2", name="a11y", tags=["x"])
    lab.wait(job["id"])
    open_panel(page)
    page.wait_for_selector(f".jp-JobsRow[data-job-id='{job['id']}']")
    assert serious_violations(page, "#jupyter-jobs-panel") == []
    page.click("#jupyter-jobs-panel button:has-text('New job')")
    page.wait_for_selector("#jupyter-jobs-panel .jp-JobsForm")
    assert serious_violations(page, "#jupyter-jobs-panel") == []
    open_page(page)
    page.wait_for_selector(".jp-JobsGrid-body .jp-JobsGrid-row")
    assert serious_violations(page, ".jp-JobsPage") == []
    open_job(page, job["id"])
    page.wait_for_selector(".jp-JobsView .jp-JobsLog-line")
    for name in ("log", "artifacts", "details"):
        tab(page, name)
        assert serious_violations(page, f".jp-JobsView[data-job-id='{job['id']}']") == [], name
    # the tabs move with the arrow keys
    page.focus(".jp-JobsView [role='tab'][data-tab='details']")
    page.keyboard.press("ArrowLeft")
    assert page.get_attribute(".jp-JobsView [role='tab'][aria-selected='true']", "data-tab") == "artifacts"


def test_the_launcher_card_opens_the_jobs_page(page, lab):
    if not page.is_visible(".jp-Launcher"):
        page.keyboard.press("Control+Shift+L")  # a new launcher
    page.click(".jp-LauncherCard[title*='Every job in a wide table']")
    page.wait_for_selector(".jp-JobsPage", state="visible")
