"""Metrics in the panel, in a real browser: a job's charts render and grow while it runs, and
the comparison overlays a metric of three jobs, one line each."""

from __future__ import annotations

from conftest import open_job, shot, tab

LIVE = ("import time\nfrom jupyter_jobs import metrics\n"
        "for i in range(40):\n    metrics.log(step=i, loss=1 / (i + 1), acc=i / 40)\n    time.sleep(0.2)\n")


def points(page, name):
    return int(page.get_attribute(f".jp-JobsView:visible .jp-JobsChartBox[data-series='{name}'] .jp-JobsChart",
                                  "data-points") or 0)


def test_charts_render_and_update_live(page, lab):
    job = lab.request("POST", "/jupyter-jobs/jobs", {"command": ["python", "-c", LIVE], "workspace": "proj",
                                                      "name": "live-metrics"})
    open_job(page, job["id"])
    tab(page, "metrics")
    page.wait_for_selector(".jp-JobsView:visible .jp-JobsChartBox[data-series='loss'] canvas")
    early = points(page, "loss")
    assert lab.request("GET", f"/jupyter-jobs/jobs/{job['id']}")["status"] == "running"
    page.wait_for_function("""() => {
        const c = document.querySelector(".jp-JobsChartBox[data-series='loss'] .jp-JobsChart");
        return c && Number(c.dataset.points) === 40; }""", timeout=30_000)
    assert early < 40  # it grew while the job ran
    assert page.locator(".jp-JobsView:visible .jp-JobsChartBox[data-series='acc'] canvas").count() == 1
    page.wait_for_selector(".jp-JobsView:visible .jp-JobsChartBox[data-series='cpu.percent'] canvas")
    # hover shows values in the legend
    box = page.locator(".jp-JobsChartBox[data-series='loss'] .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2)
    legend = page.inner_text(".jp-JobsChartBox[data-series='loss'] .u-legend")
    assert any(ch.isdigit() for ch in legend.split("loss", 1)[1])
    page.check(".jp-JobsView:visible .jp-JobsChartControls input[type=checkbox]")  # log scale: redrawn
    page.wait_for_selector(".jp-JobsView:visible .jp-JobsChartBox[data-series='loss'] canvas")
    shot(page, "job-metrics")


def test_comparison_overlays_three_jobs(page, lab):
    ids = []
    for lr in (0.1, 0.01, 0.001):
        code = f"from jupyter_jobs import metrics\nfor i in range(20):\n    metrics.log(step=i, loss={lr} * (20 - i))\n"
        ids.append(lab.request("POST", "/jupyter-jobs/jobs", {"command": ["python", "-c", code], "workspace": "proj",
                                                              "name": f"lr-{lr}"})["id"])
    for job_id in ids:
        lab.wait(job_id)
    from test_jobs_page import open_page

    open_page(page)
    page.wait_for_selector(".jp-JobsPage-count:has-text('3 of 3 jobs')")
    for job_id in ids:
        page.check(f".jp-JobsGrid-row[data-job-id='{job_id}'] input[type=checkbox]")
    page.click(".jp-JobsPage button:has-text('Compare')")
    chart = page.wait_for_selector(".jp-JobsCompare-metrics .jp-JobsChart[data-lines='3'] canvas")
    assert chart
    assert page.get_attribute(".jp-JobsCompare-metrics .jp-JobsChart", "data-points") == "60"
    labels = page.locator(".jp-JobsCompare-metrics .u-legend .u-series .u-label").all_inner_texts()
    assert sum(1 for t in labels if t.startswith("lr-")) == 3
    assert page.get_attribute(".jp-JobsCompare-table tr[data-field='final loss']", "class") == "jp-mod-differs"
    shot(page, "jobs-compare")


def test_comparison_draws_the_metric_picked(page, lab):
    """Picking another metric draws that metric's series (it drew the previous pick's lines under
    the new title, with the new metric's units)."""
    ids = []
    for n in (1, 2):  # loss in the hundreds, accuracy below one: the legend tells which is drawn
        code = ("from jupyter_jobs import metrics\nfor i in range(20):\n"
                f"    metrics.log(step=i, loss=100 * {n} + i, accuracy=i / 100)\n")
        ids.append(lab.request("POST", "/jupyter-jobs/jobs", {"command": ["python", "-c", code], "workspace": "proj",
                                                              "name": f"run-{n}"})["id"])
    for job_id in ids:
        lab.wait(job_id)
    from test_jobs_page import open_page

    open_page(page)
    for job_id in ids:
        page.check(f".jp-JobsGrid-row[data-job-id='{job_id}'] input[type=checkbox]")
    page.click(".jp-JobsPage button:has-text('Compare')")

    def drawn(metric):
        page.wait_for_selector(f".jp-JobsCompare-metrics .u-title:text-is('{metric}')")
        page.wait_for_selector(".jp-JobsCompare-metrics .jp-JobsChart[data-lines='2'] canvas")
        page.hover(".jp-JobsCompare-metrics .u-over")  # the legend shows the values under the cursor
        page.wait_for_function("""() => {  // uPlot writes them on its next frame
            const shown = [...document.querySelectorAll('.jp-JobsCompare-metrics .u-legend .u-series .u-value')];
            return shown.length === 3 && shown.slice(1).every(v => Number.isFinite(parseFloat(v.textContent)));
        }""")
        values = page.locator(".jp-JobsCompare-metrics .u-legend .u-series .u-value").all_inner_texts()
        return [float(v) for v in values[1:]]  # after the x value

    assert all(v < 1 for v in drawn("accuracy"))  # the first custom metric, by name
    page.select_option(".jp-JobsCompare [aria-label='metric to compare']", "loss")
    loss = drawn("loss")
    assert len(loss) == 2 and all(v >= 100 for v in loss), loss
    page.select_option(".jp-JobsCompare [aria-label='metric to compare']", "accuracy")
    assert all(v < 1 for v in drawn("accuracy"))
