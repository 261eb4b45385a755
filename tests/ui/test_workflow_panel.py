"""A workflow run in the panel, in a real browser: from one of its jobs to the run's graph
(stages, matrix jobs grouped, statuses live), and from a node back to its job."""

from __future__ import annotations

from conftest import open_job, open_panel, shot

FLOW = """\
name: pipeline
jobs:
  prepare: {command: echo ready}
  train:
    needs: prepare
    matrix: {lr: [0.1, 0.01]}
    command: sleep 1; echo lr=${{ matrix.lr }}
  report: {needs: train, command: exit 3}
"""


def test_a_run_opens_as_a_graph(page, lab):
    run = lab.request("POST", "/jupyter-jobs/workflows", {"spec": FLOW, "workspace": "proj"})
    first = run["jobs"][0]["job_id"]
    open_job(page, first)
    page.click(f".jp-JobsView[data-job-id='{first}'] button:has-text('{run['id']}')")
    graph = page.wait_for_selector(f".jp-JobsRun[data-run-id='{run['id']}']", state="visible")
    stages = graph.query_selector_all(".jp-JobsGraph-stage")
    assert [s.get_attribute("aria-label") for s in stages] == ["stage 1", "stage 2", "stage 3"]
    assert len(stages[1].query_selector_all(".jp-JobsGraph-job")) == 2  # the matrix, grouped
    assert "lr=0.1" in stages[1].inner_text() and "← prepare" in stages[1].inner_text()
    page.wait_for_selector(f".jp-JobsRun[data-run-id='{run['id']}'][data-status='failed']", timeout=30_000)
    assert page.get_attribute(".jp-JobsGraph-node[data-name='report'] .jp-JobsGraph-job", "data-status") == "failed"
    assert page.locator(".jp-JobsGraph-job[data-status='succeeded']").count() == 3
    page.wait_for_selector(".jp-JobsRun button:has-text('Rerun what did not succeed')")
    shot(page, "workflow-run")
    report = run["jobs"][-1]["job_id"]
    page.click(f".jp-JobsGraph-job[data-job-id='{report}']")
    page.wait_for_selector(f".jp-JobsView[data-job-id='{report}'][data-status='failed']", state="visible")


def test_the_sidebar_lists_workflow_runs_live(page, lab):
    run = lab.request("POST", "/jupyter-jobs/workflows", {"spec": FLOW, "workspace": "proj"})
    open_panel(page)
    page.click("#jupyter-jobs-panel [role=tab]:has-text('Workflow runs')")
    row = f".jp-JobsRunRow[data-run-id='{run['id']}']"
    page.wait_for_selector(row, state="visible")
    assert "4 jobs" in page.inner_text(f"{row} .jp-JobsRow-meta")
    page.wait_for_selector(f"{row}[data-status='failed']", timeout=30_000)  # it follows the run
    assert page.inner_text(f"{row} .jp-JobsRunRow-counts") == "3 succeeded · 1 failed"
    shot(page, "workflow-runs")
    page.click(row)
    page.wait_for_selector(f".jp-JobsRun[data-run-id='{run['id']}'][data-status='failed']", state="visible")
    page.click("#jupyter-jobs-panel [role=tab]:has-text('Jobs')")
    page.wait_for_selector(f".jp-JobsRow[data-job-id='{run['jobs'][0]['job_id']}']", state="visible")
