"""A workflow run in the panel, in a real browser: from one of its jobs to the run's graph
(stages, matrix jobs grouped, statuses live), and from a node back to its job."""

from __future__ import annotations

from conftest import layout_saved, open_job, open_panel, serious_violations, shot

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


DIAMOND = """\
name: diamond
jobs:
  prepare: {command: echo ready}
  fast: {needs: prepare, command: echo fast}
  slow: {needs: prepare, matrix: {n: [1, 2]}, command: sleep 2.5}
  report: {needs: [fast, slow], command: echo done}
"""


def open_run(page, run_id):
    open_panel(page)
    page.click("#jupyter-jobs-panel [role=tab]:has-text('Workflow runs')")
    page.click(f".jp-JobsRunRow[data-run-id='{run_id}']")
    return page.wait_for_selector(f".jp-JobsRun[data-run-id='{run_id}']", state="visible")


def test_the_graph_draws_its_edges_durations_and_critical_path(page, lab):
    run = lab.request("POST", "/jupyter-jobs/workflows", {"spec": DIAMOND, "workspace": "proj"})
    open_run(page, run["id"])
    # while `slow` runs its duration counts up, live
    live = ".jp-JobsGraph-node[data-name='slow'] .jp-JobsGraph-job[data-status='running'] .jp-JobsGraph-duration"
    page.wait_for_selector(live, timeout=30_000)
    page.wait_for_function(f"document.querySelector(\"{live}\")?.textContent.trim() >= '0:01'", timeout=10_000)
    page.wait_for_selector(f".jp-JobsRun[data-run-id='{run['id']}'][data-status='succeeded']", timeout=30_000)
    edges = page.eval_on_selector_all(".jp-JobsGraph-edge", """paths => paths.map(p => {
        const r = p.getBoundingClientRect();
        const box = n => document.querySelector(`.jp-JobsGraph-node[data-name="${n}"]`).getBoundingClientRect();
        const a = box(p.dataset.from), b = box(p.dataset.to);
        return [p.dataset.from, p.dataset.to, p.classList.contains('jp-mod-critical'),
                Math.abs(r.left - a.right) < 2 && Math.abs(r.right - b.left) < 2];
    })""")
    assert sorted(edges) == [["fast", "report", False, True], ["prepare", "fast", False, True],
                             ["prepare", "slow", True, True], ["slow", "report", True, True]]
    slow = page.locator(".jp-JobsGraph-node[data-name='slow'] .jp-JobsGraph-job .jp-JobsGraph-duration")
    assert slow.all_inner_texts() and all(t.strip() in ("0:02", "0:03") for t in slow.all_inner_texts())
    critical = page.inner_text(".jp-JobsRun-critical")
    assert critical.startswith("Critical path: prepare → slow → report · 0:0"), critical
    marked = page.eval_on_selector_all(".jp-JobsGraph-node[data-critical='true']", "ns => ns.map(n => n.dataset.name)")
    assert marked == ["prepare", "slow", "report"]
    assert serious_violations(page, ".jp-JobsRun") == []
    shot(page, "workflow-run-critical-path")


SWEEP = """\
name: sweep
best: loss:min
jobs:
  cell:
    matrix: {lr: [0.1, 0.5, 0.3]}
    command: python3 -c "from jupyter_jobs import metrics; metrics.log(step=1, loss=1 - ${{ matrix.lr }})"
"""


def test_the_best_sweep_row_is_starred_in_the_run_tab(page, lab):
    run = lab.request("POST", "/jupyter-jobs/workflows", {"spec": SWEEP, "workspace": "proj"})
    best = next(j["job_id"] for j in run["jobs"] if j["matrix"] == {"lr": "0.5"})
    open_run(page, run["id"])
    page.wait_for_selector(f".jp-JobsRun[data-run-id='{run['id']}'][data-status='succeeded']", timeout=30_000)
    star = page.wait_for_selector(".jp-JobsGraph-job[data-best='true'] .jp-JobsGraph-best")
    assert page.locator(".jp-JobsGraph-job[data-best='true']").count() == 1
    assert page.get_attribute(".jp-JobsGraph-job[data-best='true']", "data-job-id") == best
    assert star.inner_text().strip() == "★ loss 0.5"
    assert star.get_attribute("title").startswith("the best by loss:min")
    shot(page, "workflow-sweep-best")


RETRY = """\
name: retry
jobs:
  train:
    matrix: {lr: [0.1, 0.3]}
    command: test ${{ matrix.lr }} != 0.3
  report: {needs: train, command: echo done}
"""


def test_rerun_says_what_it_started(page, lab):
    run = lab.request("POST", "/jupyter-jobs/workflows", {"spec": RETRY, "workspace": "proj"})
    open_run(page, run["id"])
    page.wait_for_selector(f".jp-JobsRun[data-run-id='{run['id']}'][data-status='failed']", timeout=30_000)
    page.click(".jp-JobsRun button:has-text('Rerun what did not succeed')")
    note = page.wait_for_selector(".jp-JobsRun-note[role='status']")
    assert note.inner_text() == "Started again: train (lr=0.3), report"


def test_a_job_of_a_run_opens_in_the_runs_tab_once(page, lab):
    run = lab.request("POST", "/jupyter-jobs/workflows", {"spec": FLOW, "workspace": "proj"})
    first, second = run["jobs"][0]["job_id"], run["jobs"][1]["job_id"]
    lab.wait(first)
    open_job(page, first)  # from the sidebar's job list
    in_run = f"#jupyter-jobs-run-{run['id']} .jp-JobsRun-detail .jp-JobsView[data-job-id='{{}}']"
    page.wait_for_selector(in_run.format(first), state="visible")
    assert page.locator(f"#jupyter-jobs-job-{first}").count() == 0  # no tab of its own
    pressed = f".jp-JobsGraph-job[data-job-id='{first}'][aria-pressed='true']"
    page.wait_for_selector(f"#jupyter-jobs-run-{run['id']} {pressed}")
    open_job(page, second)  # another job of the run: the same tab, now showing it
    page.wait_for_selector(in_run.format(second), state="visible")
    page.click(f".jp-JobsGraph-job[data-job-id='{first}']")  # from the graph
    page.wait_for_selector(in_run.format(first), state="visible")
    shot(page, "workflow-run-job")
    assert page.locator(f"#jupyter-jobs-run-{run['id']}").count() == 1
    assert page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab:has-text('Run ')").count() == 1
    plain = lab.request("POST", "/jupyter-jobs/jobs", {"command": ["echo", "alone"], "workspace": "proj"})
    lab.wait(plain["id"])
    open_job(page, plain["id"])  # a job of no run: its own tab, found again when opened again
    open_job(page, first)
    open_job(page, plain["id"])
    assert page.locator(f"#jupyter-jobs-job-{plain['id']}").count() == 1
    open_job(page, first)
    layout_saved(lab, f"jupyter-jobs-run:{run['id']}", f"jupyter-jobs-job:{plain['id']}",
                 also=lambda data: data.get(f"jupyter-jobs-run:{run['id']}", {}).get("data", {}).get("job") == first)
    page.reload()
    page.wait_for_selector(in_run.format(first), state="visible", timeout=60_000)  # restored with its job
    assert page.locator(f"#jupyter-jobs-job-{plain['id']}").count() == 1
