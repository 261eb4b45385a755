"""Metrics: ingestion over REST, the cost of sampling telemetry, and the job tab's charts.

Ingestion: a local job writes 1,000,000 lines `{"step": i, "loss": ..., "acc": ...}` to
$JOB_METRICS_FILE as fast as it can; GET /jobs/{id}/metrics?follow=true, from the job's
submission to the final status line, must bring every line's point (all 1,000,000 steps, in
order) at >= 0.5x the points/s of the baseline: the same file read directly and each line parsed
with json.loads in Python. The finished job's paged read (since=next while more) is shown too.
A point is one line (one step, carrying loss and acc).

Sampling: 50 running local jobs (sleep 60) sampled every second (JobsApp.metrics_interval=1):
the server process's CPU (its own threads, not the jobs) over 20 s, as % of one core, against
a server with telemetry off (metrics_interval=0) and the same 50 jobs. Target: < 5 % of one
core added.

Panel: a finished job with a 1,000,000-point `loss` series, in JupyterLab in Chromium: from the
click on the job tab's Metrics tab to the `loss` chart holding every point and drawn (next
animation frame), target < 1 s; the longest task while loading, and while zooming in 5 times
(dragging on the chart) and back out (double-click), target none over 200 ms. Baselines: the
page's own fetch of every page of GET /metrics with JSON.parse (no drawing), and of the follow
stream the panel reads, parsed line by line as the panel does (no drawing).
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from pathlib import Path

from common import lab_page, lab_server, parser, require_part, server, table
from support import browser_problem, kill_running_jobs

# argv: lines, "acc" or not; big buffered writes of many lines at once
WRITER = """import os, sys
n, with_acc = int(sys.argv[1]), sys.argv[2] == 'acc'
def line(i):
    loss = 2.0 / (1 + i / 1000) + 0.05 * ((i * 7919) % 1000) / 1000
    if with_acc:
        return f'{{"step": {i}, "loss": {loss!r}, "acc": {i / n!r}}}\\n'
    return f'{{"step": {i}, "loss": {loss!r}}}\\n'
with open(os.environ['JOB_METRICS_FILE'], 'a', buffering=1 << 22) as fh:
    for start in range(0, n, 20000):
        fh.write(''.join([line(i) for i in range(start, min(n, start + 20000))]))
"""


def stats(values: list[float]) -> list[float]:
    return [min(values), statistics.median(values), max(values)]


def rate_stats(values: list[float]) -> list[str]:
    return [f"{v:,.0f}" for v in stats(values)]


def writer(n: int, with_acc: bool, name: str) -> dict:
    return {"command": ["python", "-c", WRITER, str(n), "acc" if with_acc else "loss"], "name": name}


def headers(srv) -> dict[str, str]:
    return {"Authorization": f"token {srv.token}", "Content-Type": "application/json"}


# -- ingestion ----------------------------------------------------------------------------
class Tally:
    """Points of pages of one job's series: every point counted, loss and acc steps in order."""

    def __init__(self) -> None:
        self.points = 0  # every point of every series (the service's CPU/memory samples too)
        self.next = {"loss": 0, "acc": 0}
        self.ordered = True

    def add(self, page: dict) -> None:
        for name, series in page["series"].items():
            self.points += len(series["steps"])
            if name in self.next:
                start = self.next[name]
                self.ordered &= series["steps"] == list(range(start, start + len(series["steps"])))
                self.next[name] = start + len(series["steps"])

    def complete(self, n: int) -> bool:
        return self.ordered and self.next == {"loss": n, "acc": n}


def follow_from_submission(srv, n: int) -> tuple[float, Tally, dict, str]:
    """POST the writer, follow its metrics to the final status line: (seconds, tally, end, id)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    start = time.perf_counter()
    conn.request("POST", "/jupyter-jobs/jobs", json.dumps(writer(n, True, "metrics-writer")), headers(srv))
    resp = conn.getresponse()
    job = json.loads(resp.read())
    assert resp.status == 201, job
    conn.request("GET", f"/jupyter-jobs/jobs/{job['id']}/metrics?follow=true", headers=headers(srv))
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    tally, end = Tally(), None
    for raw in resp:
        item = json.loads(raw)
        if "series" in item:
            assert end is None, "a page after the final status"
            tally.add(item)
        else:
            end = item
    elapsed = time.perf_counter() - start
    conn.close()
    assert end and end.get("status") == "succeeded", end
    return elapsed, tally, end, job["id"]


def paged(srv, job_id: str) -> tuple[float, Tally, int]:
    """The finished job's series page after page (since=next while more): (seconds, tally, pages)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    tally, since, pages = Tally(), "", 0
    start = time.perf_counter()
    while True:
        conn.request("GET", f"/jupyter-jobs/jobs/{job_id}/metrics" + (f"?since={since}" if since else ""),
                     headers=headers(srv))
        resp = conn.getresponse()
        page = json.loads(resp.read())
        assert resp.status == 200, page
        tally.add(page)
        pages += 1
        if not page["more"]:
            break
        since = page["next"]
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, tally, pages


def direct_read(path: Path) -> tuple[float, int, int]:
    """The baseline: the job's file read and every line parsed with json.loads (seconds, lines, values)."""
    start = time.perf_counter()
    lines = values = 0
    loads = json.loads
    with open(path, "rb") as fh:
        for line in fh:
            item = loads(line)
            lines += 1
            values += len(item) - 1
    return time.perf_counter() - start, lines, values


def ingestion(n: int, runs: int) -> None:
    live, done, base, pages = [], [], [], 0
    complete = True
    with server() as srv:
        srv.request("GET", "/jupyter-jobs/jobs")  # warm
        for _ in range(runs):
            seconds, tally, _end, job_id = follow_from_submission(srv, n)
            complete &= tally.complete(n)
            live.append((seconds, tally.points))
            seconds, tally, pages = paged(srv, job_id)
            complete &= tally.complete(n)
            done.append((seconds, tally.points))
            seconds, lines, values = direct_read(srv.data / "jobs" / job_id / "metrics" / "metrics.jsonl")
            assert lines == n and values == 2 * n, (lines, values)
            base.append(seconds)
    base_rate = statistics.median([n / s for s in base])
    live_rates = [n / s for s, _ in live]
    done_rates = [n / s for s, _ in done]
    ratio = statistics.median(live_rates) / base_rate

    def row(name: str, seconds: list[float], rates: list[float], points: str, target: str, verdict: str):
        return [name, points, *stats(seconds), *rate_stats(rates), f"{statistics.median(rates) / base_rate:.2f}x",
                target, verdict]

    table(f"Ingestion: {n:,} metric lines (loss, acc) written by a local job ({runs} runs)",
          ["reader", "values received (every series)", "min s", "median s", "max s", "min points/s", "median points/s",
           "max points/s", "vs baseline", "target", "meets target"],
          [row("the file read directly, json.loads per line (baseline)", base, [n / s for s in base],
               f"{n:,} lines, {2 * n:,} values", "", ""),
           row("REST follow=true, from submission to the final status", [s for s, _ in live], live_rates,
               f"{live[-1][1]:,}", ">= 0.5x", "yes" if ratio >= 0.5 else "NO"),
           row(f"REST paged read of the finished job ({pages} requests)", [s for s, _ in done], done_rates,
               f"{done[-1][1]:,}", "", "")])
    table("Ingestion: completeness", ["check", "result"],
          [[f"all {n:,} steps of loss and of acc arrived, in order, in every run", "yes" if complete else "NO"]])


# -- sampling overhead --------------------------------------------------------------------
def running_count(srv) -> int:
    return len(srv.request("GET", "/jupyter-jobs/jobs?status=running&limit=500")["jobs"])


def server_cpu(interval: float, jobs: int, window: float) -> tuple[float, int, int]:
    """% of one core the server process used over `window` s with `jobs` sleeping jobs running
    and telemetry every `interval` s (0: off); also the telemetry lines written meanwhile, and
    how many jobs still ran at the end."""
    import psutil

    extra = [f"--JobsApp.metrics_interval={interval}", f"--LocalBackend.max_running={jobs + 10}"]
    with server(extra) as srv:
        try:
            ids = [srv.request("POST", "/jupyter-jobs/jobs", {"command": ["sleep", "60"], "name": f"sleeper-{i}"})["id"]
                   for i in range(jobs)]
            deadline = time.monotonic() + 60
            while running_count(srv) < jobs:
                assert time.monotonic() < deadline, f"only {running_count(srv)} of {jobs} jobs running"
                time.sleep(0.2)
            time.sleep(2)  # past the starts, a sampling round or two in
            telemetry = [srv.data / "jobs" / i / "telemetry.jsonl" for i in ids]
            lines_before = sum(p.read_bytes().count(b"\n") for p in telemetry if p.exists())
            proc = psutil.Process(srv.proc.pid)
            before, start = proc.cpu_times(), time.perf_counter()  # the process's threads; not its children
            time.sleep(window)
            after, elapsed = proc.cpu_times(), time.perf_counter() - start
            lines = sum(p.read_bytes().count(b"\n") for p in telemetry if p.exists()) - lines_before
            still = running_count(srv)
            used = (after.user + after.system) - (before.user + before.system)
            for job_id in ids:
                srv.request("POST", f"/jupyter-jobs/jobs/{job_id}/cancel")
            deadline = time.monotonic() + 60
            while running_count(srv):
                assert time.monotonic() < deadline, "jobs still running after cancel"
                time.sleep(0.2)
        finally:
            kill_running_jobs(srv.data / "jobs.db")
    return used / elapsed * 100, lines, still


def sampling(jobs: int, window: float, runs: int) -> None:
    off, on = [], []
    for _ in range(runs):  # alternated, so that the machine's other load falls on both alike
        off.append(server_cpu(0, jobs, window))
        on.append(server_cpu(1, jobs, window))
    off_pct, on_pct = [c for c, _, _ in off], [c for c, _, _ in on]
    added = statistics.median(on_pct) - statistics.median(off_pct)

    def measured(name: str, results: list[tuple[float, int, int]]) -> list[object]:
        return [name, *(f"{v:.2f}" for v in stats([c for c, _, _ in results])),
                statistics.median([lines for _, lines, _ in results]),
                min(still for _, _, still in results), "", ""]

    rows = [
        measured("telemetry off, metrics_interval=0 (baseline)", off),
        measured("telemetry every 1 s, metrics_interval=1", on),
        ["added by sampling (difference of medians)", "", f"{added:.2f}", "", "", "", "< 5",
         "yes" if added < 5 else "NO"],
    ]
    table(f"Sampling: server CPU with {jobs} running jobs over {window:g} s ({runs} runs; % of one core)",
          ["server", "min %", "median %", "max %", "telemetry lines written (median)", "jobs running at the end (min)",
           "target", "meets target"], rows)


# -- the panel ----------------------------------------------------------------------------
# Installed before each click on the Metrics tab: when the loss chart first shows (a canvas), when
# it holds every point, and when that is on screen (the task after the next frame); long tasks.
WATCH_OPEN = """([view, n]) => {
  const s = window.__m = {click: null, first: null, full: null, drawn: null};
  const onClick = e => {
    if (s.click === null && e.target.closest && e.target.closest(`${view} [role=tab][data-tab=metrics]`)) {
      s.click = performance.now();
    }
  };
  document.addEventListener('click', onClick, true);
  const check = () => {
    const chart = document.querySelector(`${view} .jp-JobsChartBox[data-series=loss] .jp-JobsChart`);
    if (!chart || !chart.querySelector('canvas')) return;
    const now = performance.now();
    if (s.first === null) s.first = now;
    if (Number(chart.dataset.points) === n) {
      s.full = now;
      mo.disconnect();
      document.removeEventListener('click', onClick, true);
      requestAnimationFrame(() => setTimeout(() => { s.drawn = performance.now(); }, 0));
    }
  };
  const mo = new MutationObserver(check);
  mo.observe(document.body, {childList: true, subtree: true, attributes: true, attributeFilter: ['data-points']});
}"""
LONG = """() => {
  window.__long = [];
  new PerformanceObserver(list => list.getEntries().forEach(e => window.__long.push([e.startTime, e.duration])))
    .observe({entryTypes: ['longtask']});
}"""
BUSY = "() => setTimeout(() => { const t = performance.now(); while (performance.now() - t < 250) {} }, 0)"
NEXT_FRAME = "() => new Promise(r => requestAnimationFrame(() => setTimeout(() => r(performance.now()), 0)))"
# the baselines: the page fetches every page of the series (no drawing); or reads the follow
# stream as the panel does (api.ts readLines: text decoded chunk by chunk, split on newlines)
FETCH_PAGES = """async ([id, token]) => {
  const t = performance.now();
  let since = '', points = 0, pages = 0;
  for (;;) {
    const r = await fetch(`/jupyter-jobs/jobs/${id}/metrics${since ? `?since=${encodeURIComponent(since)}` : ''}`,
                          {headers: {Authorization: `token ${token}`}});
    const page = JSON.parse(await r.text());
    points += page.series.loss ? page.series.loss.steps.length : 0;
    pages++;
    if (!page.more) break;
    since = page.next;
  }
  return [performance.now() - t, points, pages];
}"""
FETCH_FOLLOW = """async ([id, token]) => {
  const t = performance.now();
  const r = await fetch(`/jupyter-jobs/jobs/${id}/metrics?follow=true`, {headers: {Authorization: `token ${token}`}});
  const reader = r.body.getReader(), decoder = new TextDecoder();
  let pending = '', points = 0, end = null;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    pending += decoder.decode(value, {stream: true});
    let start = 0, newline = pending.indexOf('\\n');
    while (newline !== -1) {
      const item = JSON.parse(pending.slice(start, newline));
      if (item.series) points += item.series.loss ? item.series.loss.steps.length : 0; else end = item;
      start = newline + 1;
      newline = pending.indexOf('\\n', start);
    }
    pending = pending.slice(start);
  }
  return [performance.now() - t, points, end && end.status];
}"""
LEGEND_X = """sel => document.querySelector(`${sel} .u-legend .u-series:first-child .u-value`).textContent"""


def legend_step(page, chart: str, box: dict, fraction: float) -> float:
    """The step the legend shows with the cursor at `fraction` of the plot's width."""
    page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
    page.evaluate(NEXT_FRAME)
    return float(page.evaluate(LEGEND_X, chart).replace(",", ""))


def shown_span(page, chart: str, box: dict) -> float:
    return legend_step(page, chart, box, 0.995) - legend_step(page, chart, box, 0.005)


def open_metrics(page, job_id: str, n: int) -> dict:
    """Open the job's tab (a row click in the sidebar), click Metrics, wait for the full chart,
    then zoom in 5 times and reset; close the tab. Times in ms, from the page's clock."""
    view = f".jp-JobsView[data-job-id='{job_id}']"
    chart = f"{view} .jp-JobsChartBox[data-series='loss']"
    page.click(f"#jupyter-jobs-panel .jp-JobsRow[data-job-id='{job_id}']")
    page.wait_for_selector(f"{view} [role=tab][data-tab=metrics]", state="visible")
    page.wait_for_timeout(1500)  # the tab settles (its log, its record with the metrics' summary)
    page.evaluate(WATCH_OPEN, [view, n])
    page.evaluate("() => { window.__long = []; }")
    page.click(f"{view} [role=tab][data-tab=metrics]")
    page.wait_for_function("window.__m.drawn !== null", polling=100, timeout=300_000)
    page.wait_for_timeout(300)  # the long tasks' entries arrive after the tasks
    s = page.evaluate("window.__m")
    loading = [d for start, d in page.evaluate("window.__long") if s["click"] - 1 <= start <= s["drawn"]]
    page.wait_for_timeout(500)
    box = page.locator(f"{chart} .u-over").bounding_box()
    full_span = shown_span(page, chart, box)
    page.evaluate("() => { window.__long = []; }")
    y = box["y"] + box["height"] / 2
    for _ in range(5):  # each drag keeps the middle 40 % of what is shown
        page.mouse.move(box["x"] + box["width"] * 0.3, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=4)
        page.mouse.up()
        page.evaluate(NEXT_FRAME)
    page.wait_for_timeout(300)
    zoomed_long = [d for _, d in page.evaluate("window.__long")]
    zoomed_span = shown_span(page, chart, box)
    page.evaluate("() => { window.__long = []; }")
    page.mouse.dblclick(box["x"] + box["width"] / 2, y)
    page.evaluate(NEXT_FRAME)
    page.wait_for_timeout(300)
    reset_long = [d for _, d in page.evaluate("window.__long")]
    reset_span = shown_span(page, chart, box)
    page.click(f"li.lm-TabBar-tab[data-id='jupyter-jobs-job-{job_id}'] .lm-TabBar-tabCloseIcon")
    page.wait_for_selector(view, state="detached")
    page.wait_for_timeout(500)
    return {"first": s["first"] - s["click"], "full": s["full"] - s["click"], "drawn": s["drawn"] - s["click"],
            "loading_long": max(loading, default=0), "zoom_long": max(zoomed_long + reset_long, default=0),
            "spans": (full_span, zoomed_span, reset_span)}


def panel(n: int, runs: int) -> None:
    with lab_server() as srv:
        job = srv.request("POST", "/jupyter-jobs/jobs", writer(n, False, "million-points"))
        done = srv.wait(job["id"], timeout=300)
        assert done["status"] == "succeeded", done
        python_ms = []
        for _ in range(runs):  # the server's part: the same pages read by Python, no browser
            seconds, tally, _pages = paged(srv, job["id"])
            assert tally.ordered and tally.next["loss"] == n, tally.next
            python_ms.append(seconds * 1000)
        with lab_page(srv) as page:
            page.wait_for_selector(f"#jupyter-jobs-panel .jp-JobsRow[data-job-id='{job['id']}']")
            pages_ms, follow_ms, page_count = [], [], 0
            for _ in range(runs):
                elapsed, points, page_count = page.evaluate(FETCH_PAGES, [job["id"], srv.token])
                assert points == n, points
                pages_ms.append(elapsed)
                elapsed, points, status = page.evaluate(FETCH_FOLLOW, [job["id"], srv.token])
                assert points == n and status == "succeeded", (points, status)
                follow_ms.append(elapsed)
            page.evaluate(LONG)
            page.evaluate(BUSY)  # calibration: a 250 ms busy loop must show up as a long task
            page.wait_for_timeout(600)
            calibrated = max((d for _, d in page.evaluate("window.__long")), default=0)
            opened = [open_metrics(page, job["id"], n) for _ in range(runs)]
    for o in opened:
        full, zoomed, reset = o["spans"]
        assert full > 0.9 * n and reset > 0.9 * n and 0 < zoomed < 0.05 * n, o["spans"]

    def row(name: str, values: list[float], target: float | None = None) -> list[object]:
        verdict = "" if target is None else ("yes" if max(values) < target else "NO")
        return [name, *stats(values), "" if target is None else f"< {target:g}", verdict]

    table(f"Job tab, Metrics: a finished job's {n:,}-point loss series ({runs} runs; ms)",
          ["measure", "min", "median", "max", "target", "every run meets target"],
          [row(f"Python fetches the same {page_count} pages with http.client + json.loads (the server's part)",
               python_ms),
           row(f"page fetches all {page_count} pages of GET /metrics, JSON.parse, no drawing (baseline)", pages_ms),
           row("page reads GET /metrics?follow=true as the panel does, no drawing (baseline)", follow_ms),
           # the "time to first chart": the chart on screen, drawing points as they stream in
           row("click Metrics to the first chart on screen (loss, first points)", [o["first"] for o in opened], 1000),
           row(f"click Metrics to the loss chart holding all {n:,} points", [o["full"] for o in opened]),
           row("click Metrics to all points drawn (next frame; the baselines above bound it)",
               [o["drawn"] for o in opened]),
           row("longest task while loading", [o["loading_long"] for o in opened], 200),
           row("longest task zooming in 5 times (drag) and out (double-click)", [o["zoom_long"] for o in opened],
               200)])
    spans = opened[-1]["spans"]
    table("Job tab, Metrics: checks", ["check", "value"],
          [["observer check: a 250 ms busy loop was seen as", f"{calibrated:.0f} ms"],
           ["steps across the chart: whole / after 5 zooms / after the double-click",
            " / ".join(f"{s:,.0f}" for s in spans)]])


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--part", choices=["ingestion", "sampling", "panel"], action="append",
                   help="run only this part (repeatable); default: all")
    args = p.parse_args()
    parts = args.part or ["ingestion", "sampling", "panel"]
    if "panel" in parts:
        require_part(browser_problem(), "bench_metrics")
    if "ingestion" in parts:
        ingestion(*((20_000, 2) if args.quick else (1_000_000, 3)))
    if "sampling" in parts:
        sampling(*((10, 4.0, 1) if args.quick else (50, 20.0, 3)))
    if "panel" in parts:
        panel(*((20_000, 1) if args.quick else (1_000_000, 3)))


if __name__ == "__main__":
    main()
