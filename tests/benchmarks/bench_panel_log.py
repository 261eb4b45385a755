"""A job's tab with a finished 1,000,000-line log: time from clicking the job's row in the
sidebar (which opens the job's tab in the main area) to its last line being visible at the end
of the log view, and whether the page stayed responsive (long tasks over 200 ms, longest gap
between animation frames). Baseline: the same log fetched over REST by the page itself, with
no rendering. The log is what a terminal shows (`--log terminal`, the default): a third of its
lines coloured (SGR codes), a third progress states overwritten by `\\r` and `ESC[K`, a third
plain, each line's visible text `line N`; `--log plain` writes plain lines only. `--runs` opens
the tab that many times (a fresh page each) and gives min / median / max."""

from __future__ import annotations

import statistics
import time
import urllib.error

from common import lab_page, lab_server, parser, require_part, table
from support import browser_problem

WRITERS = {
    "plain": "import sys\nw = sys.stdout.write\nfor i in range({n}):\n    w(f'line {{i}}\\n')\n",
    "terminal": ("import sys\nw = sys.stdout.write\nfor i in range({n}):\n"
                 "    if i % 3 == 0:\n        w(f'line {{i}}\\n')\n"
                 "    elif i % 3 == 1:\n        w(f'\\x1b[32mline\\x1b[0m \\x1b[1;38;5;208m{{i}}\\x1b[0m\\n')\n"
                 "    else:\n        w(f'{{i % 100}}%|###   |\\r\\x1b[Kline {{i}}\\n')\n"),
}
BUSY = "() => setTimeout(() => { const t = performance.now(); while (performance.now() - t < 250) {} }, 0)"
WATCH = """() => {
  window.__long = []; window.__gap = 0; let last = performance.now();
  new PerformanceObserver(list => list.getEntries().forEach(e => window.__long.push(e.duration)))
    .observe({entryTypes: ['longtask']});
  const tick = now => { window.__gap = Math.max(window.__gap, now - last); last = now; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


def measure(srv, job: dict, n: int) -> dict:
    """One opening of the job's tab, on a fresh page and a fresh layout (JupyterLab would
    restore the tab an earlier opening left open)."""
    try:
        srv.request("DELETE", "/lab/api/workspaces/default")
    except urllib.error.HTTPError:
        pass  # none saved yet
    with lab_page(srv) as page:
        page.wait_for_selector(f".jp-JobsRow[data-job-id='{job['id']}']")
        view = f".jp-JobsView[data-job-id='{job['id']}']"
        if page.query_selector(view):  # restored all the same: closed, so the click opens it
            page.click(".lm-DockPanel .lm-TabBar-tab:has-text('million') .lm-TabBar-tabCloseIcon")
            page.wait_for_selector(view, state="detached")
        # baseline: the page fetches the same NDJSON, parses it, renders nothing
        fetch_ms = page.evaluate("""async ([id, token]) => {
            const t = performance.now();
            const headers = {Authorization: `token ${token}`};
            const r = await fetch(`/jupyter-jobs/jobs/${id}/logs`, {headers});
            const text = await r.text(); text.split('\\n').filter(Boolean).map(l => JSON.parse(l));
            return performance.now() - t; }""", [job["id"], srv.token])
        page.evaluate(WATCH)
        # calibration: a 250 ms busy loop must show up as a long task
        page.evaluate(BUSY)
        page.wait_for_timeout(600)
        calibrated = max(page.evaluate("window.__long"), default=0)
        page.evaluate("() => { window.__long = []; window.__gap = 0; }")
        log = f"{view} .jp-JobsLog"
        start = time.perf_counter()
        page.click(f".jp-JobsRow[data-job-id='{job['id']}']")  # opens the job's tab
        page.wait_for_function(f"document.querySelector(\"{view} .jp-JobsLogCount .jp-JobsMuted\")?.textContent"
                               f" === '{n:,} lines'", polling=100)
        page.eval_on_selector(log, "e => { e.scrollTop = e.scrollHeight; }")
        page.wait_for_function(f"[...document.querySelectorAll(\"{log} .jp-JobsLog-line\")].some("
                               f"l => l.textContent === 'line {n - 1}' && l.getBoundingClientRect().bottom"
                               f" <= document.querySelector(\"{log}\").getBoundingClientRect().bottom + 1)",
                               polling="raf")
        elapsed = time.perf_counter() - start
        long_tasks = page.evaluate("window.__long")
        # halfway down the scrollbar is halfway through the log, even past browsers' height caps
        page.eval_on_selector(log, "e => { e.scrollTop = (e.scrollHeight - e.clientHeight) / 2; }")
        page.wait_for_timeout(300)
        middle = page.eval_on_selector(log, """e => {
            const top = e.getBoundingClientRect().top;
            const line = [...e.querySelectorAll('.jp-JobsLog-line')].find(
                l => l.getBoundingClientRect().bottom > top + 1);
            return Number(line.textContent.split(' ')[1]); }""")
        raw = page.evaluate("() => document.querySelector('.jp-JobsView .jp-JobsLog').textContent.includes('\\x1b')")
        gap = page.evaluate("window.__gap")
    return {"fetch": fetch_ms / 1000, "elapsed": elapsed, "calibrated": calibrated, "long": long_tasks,
            "middle": middle, "gap": gap, "raw": raw}


def spread(values: list[float], unit: str = "s", digits: int = 2) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values))) + f" {unit}"


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--log", choices=sorted(WRITERS), default="terminal", help="what the log holds")
    p.add_argument("--runs", type=int, default=3, help="openings of the tab (min / median / max)")
    args = p.parse_args()
    require_part(browser_problem(), "bench_panel_log")
    n = 20_000 if args.quick else 1_000_000
    with lab_server() as srv:
        job = srv.request("POST", "/jupyter-jobs/jobs", {"command": ["python", "-c", WRITERS[args.log].format(n=n)],
                                                         "name": "million"})
        srv.wait(job["id"], timeout=120)
        runs = [measure(srv, job, n) for _ in range(args.runs)]
    long_tasks = [t for r in runs for t in r["long"]]
    over = [t for t in long_tasks if t > 200]
    table(f"Job tab: a finished {n:,}-line log ({args.log}), {args.runs} openings: min / median / max",
          ["measure", "value"],
          [["page fetch + parse of the log over REST, no rendering (baseline)", spread([r["fetch"] for r in runs])],
           ["click (sidebar row) to last line visible at the end of the job tab's log",
            spread([r["elapsed"] for r in runs])],
           ["observer check: a 250 ms busy loop was seen as", spread([r["calibrated"] for r in runs], "ms", 0)],
           ["long tasks (> 50 ms) while loading, per opening", spread([len(r["long"]) for r in runs], "", 0)],
           ["long tasks over 200 ms, all openings", len(over)],
           ["longest task", f"{max(long_tasks, default=0):.0f} ms"],
           ["longest gap between animation frames", spread([r["gap"] for r in runs], "ms", 0)],
           ["first line shown with the scrollbar halfway",
            ", ".join(f"line {r['middle']:,}" for r in runs) + f" of {n:,}"],
           ["an escape character shown raw", "yes" if any(r["raw"] for r in runs) else "no"]])


if __name__ == "__main__":
    main()
