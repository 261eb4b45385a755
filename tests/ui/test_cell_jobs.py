"""A job that came from a `%%job` cell, in the job tab of a real browser: it shows the cell as
it was written (not an escaped `python3 -c '...'`), and "Copy as magic" copies that cell, which
pasted into a notebook runs the same job."""

from __future__ import annotations

from conftest import open_job

CELL = "%%job --detach -n quoted\nprint('it\\'s \"quoted\"', flush=True)\nx = {'a': 1}\n"


def test_a_cell_job_shows_and_copies_as_its_cell(page, lab):
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": ["python3", "-c", CELL.split("\n", 1)[1]],
                                                      "cell": CELL, "workspace": "proj"})
    open_job(page, job["id"])
    view = f".jp-JobsView[data-job-id='{job['id']}']"
    row = page.wait_for_selector(f"{view} .jp-JobsFacts tr:has(th:text-is('cell'))", state="attached")
    shown = row.query_selector(".jp-JobsCommand").text_content()
    assert shown.strip() == CELL.strip() and "'\"'\"'" not in shown
    page.click(f"{view} button:has-text('Copy as magic')")
    page.wait_for_selector(f"{view} [role='status']:has-text('Copied as magic')")
    assert page.evaluate("navigator.clipboard.readText()") == CELL
