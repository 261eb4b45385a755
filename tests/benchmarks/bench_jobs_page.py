"""The jobs page with 10,000 jobs in history, in Chromium.

Opening: time from clicking the sidebar's "Open all" to the table's first rows (target < 1 s),
and to the whole history loaded ("10,000 of 10,000 jobs"), with the longest task meanwhile.
Baselines in the same run: the page itself fetching GET /jupyter-jobs/jobs?limit=500 once, and
all 10,000 in pages of 500, with fetch() and no rendering.

Search: time from the search box's input event to the count and the rows being updated (target
< 100 ms), measured in the page, for terms that match from one job to a few thousand. Baselines:
the same search asked of the server (GET ?q=), and a bare JS filter of the 10,000 jobs' texts.
"""

from __future__ import annotations

import asyncio
import statistics
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import fill_history, lab_page, lab_server, parser, require_part, table
from support import browser_problem

from jupyter_jobs.domain.job import Job
from jupyter_jobs.domain.status import JobStatus
from jupyter_jobs.domain.spec import JobSpec

KINDS = ["train", "eval", "sweep", "finetune", "preprocess", "export", "benchmark", "distill"]
MODELS = ["resnet50", "bert-base", "gpt2", "vit-b16", "unet", "llama-7b", "whisper-small"]
PROJECTS = ["vision", "nlp", "speech", "rl", "infra", "recsys", "genomics"]
STATUSES = [JobStatus.SUCCEEDED] * 6 + [JobStatus.FAILED] * 3 + [JobStatus.CANCELLED]
RARE = "zebra"  # in the name of one job in 97


def varied_job(i: int, count: int, now: datetime) -> Job:
    kind, model = KINDS[i % len(KINDS)], MODELS[(i // len(KINDS)) % len(MODELS)]
    name = f"{RARE}-ablation-{model}-{i}" if i % 97 == 0 else f"{kind}-{model}-{i}"
    tags = [f"team-{i % 5}"] + (["nightly"] if i % 10 == 0 else []) + (["baseline"] if i % 13 == 0 else [])
    spec = JobSpec(command=["python", f"{kind}.py", f"--model={model}", f"--lr={[1e-3, 3e-4, 1e-4][i % 3]}",
                            f"--seed={i}"],
                   name=name, tags=tags, resources={"gpus": [0, 1, 1, 2, 4, 8][i % 6]})
    return Job(id=f"{i:012x}", spec=spec, backend="local", project=PROJECTS[(i // 3) % len(PROJECTS)],
               status=STATUSES[(i * 7) % len(STATUSES)], created_at=now - timedelta(seconds=(count - i) * 37))


def haystack(job: Job) -> str:
    """What the page searches in (labextension/src/jobs/table.ts): id, name, command, tags."""
    return "\n".join([job.id, job.spec.name or "", " ".join(job.spec.command), *job.spec.tags]).lower()


# Installed before each click on "Open all": when the first rows, then the whole history, are
# in the DOM (a MutationObserver), and on screen (the task after the next frame); long tasks.
WATCH_OPEN = """total => {
  const s = window.__open = {click: null, first: null, firstShown: null, all: null, allShown: null, long: []};
  const onClick = e => {
    if (s.click === null && e.target.closest && e.target.closest('#jupyter-jobs-panel .jp-JobsHeader button')) {
      s.click = performance.now();
    }
  };
  document.addEventListener('click', onClick, true);
  const perf = new PerformanceObserver(list => list.getEntries().forEach(e => s.long.push([e.startTime, e.duration])));
  perf.observe({entryTypes: ['longtask']});
  const shown = key => requestAnimationFrame(() => setTimeout(() => { s[key] = performance.now(); }, 0));
  const mo = new MutationObserver(() => {
    const now = performance.now();
    if (s.first === null && document.querySelector('.jp-JobsGrid-body .jp-JobsGrid-row[data-job-id]')) {
      s.first = now;
      shown('firstShown');
    }
    if (s.all === null && document.querySelector('.jp-JobsPage-count')?.textContent === `${total} of ${total} jobs`) {
      s.all = now;
      shown('allShown');
      mo.disconnect();
      document.removeEventListener('click', onClick, true);
      setTimeout(() => perf.disconnect(), 1000);
    }
  });
  mo.observe(document.body, {childList: true, subtree: true, characterData: true});
}"""

# The baselines of opening: the page's own fetch of the first page, then of every page.
FETCH_FIRST = """async token => {
  const t = performance.now();
  const r = await fetch('/jupyter-jobs/jobs?limit=500', {headers: {Authorization: `token ${token}`}});
  const page = await r.json();
  if (page.jobs.length !== Math.min(500, %d)) throw new Error('short page');
  return performance.now() - t;
}"""
FETCH_ALL = """async token => {
  const t = performance.now();
  const jobs = [];
  let cursor = null;
  do {
    const r = await fetch(`/jupyter-jobs/jobs?limit=500${cursor ? `&cursor=${cursor}` : ''}`,
                          {headers: {Authorization: `token ${token}`}});
    const page = await r.json();
    jobs.push(...page.jobs);
    cursor = page.next_cursor;
  } while (cursor);
  const elapsed = performance.now() - t;
  window.__texts = jobs.map(j => [j.id, j.spec.name || '',
    typeof j.spec.command === 'string' ? j.spec.command : j.spec.command.join(' '), ...(j.spec.tags || [])]
    .join('\\n').toLowerCase());
  return [elapsed, jobs.length];
}"""

# One search as typed into the box (React's onChange sees a real input event): from the event to
# the count reading `expected` (the rows are updated in the same commit), and to the next frame.
SEARCH = """([term, expected]) => new Promise((resolve, reject) => {
  const input = document.querySelector('.jp-JobsPage-search');
  const count = document.querySelector('.jp-JobsPage-count');
  const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
  let t0 = 0;
  const timer = setTimeout(() => { mo.disconnect(); reject(new Error(`count reads ${count.textContent}`)); }, 30000);
  const mo = new MutationObserver(() => {
    if (count.textContent !== expected) return;
    const dom = performance.now() - t0;
    mo.disconnect();
    clearTimeout(timer);
    const rows = document.querySelectorAll('.jp-JobsGrid-body .jp-JobsGrid-row[data-job-id]');
    const ids = [...rows].map(r => r.dataset.jobId);
    requestAnimationFrame(() => setTimeout(() => resolve({dom, shown: performance.now() - t0, ids}), 0));
  });
  mo.observe(count, {childList: true, subtree: true, characterData: true});
  t0 = performance.now();
  setValue.call(input, term);
  input.dispatchEvent(new Event('input', {bubbles: true}));
})"""
SERVER_SEARCH = """async ([term, token]) => {
  const t = performance.now();
  const r = await fetch(`/jupyter-jobs/jobs?limit=500&q=${encodeURIComponent(term)}`,
                        {headers: {Authorization: `token ${token}`}});
  await r.json();
  return performance.now() - t;
}"""
JS_FILTER = """term => {
  const t = performance.now();
  const n = window.__texts.filter(h => h.includes(term)).length;
  return [performance.now() - t, n];
}"""


def stats(values: list[float]) -> list[float]:
    return [min(values), statistics.median(values), max(values)]


def open_page(page, total: str) -> dict:
    """Click "Open all" (the page was closed) and wait for the whole history in the table."""
    page.evaluate(WATCH_OPEN, total)
    page.click("#jupyter-jobs-panel .jp-JobsHeader button:has-text('Open all')")
    page.wait_for_function("window.__open.allShown !== null", polling=100)
    page.wait_for_timeout(300)  # the long tasks' entries arrive after the tasks
    s = page.evaluate("window.__open")
    longest = max((d for start, d in s["long"] if s["click"] - 1 <= start <= s["allShown"]), default=0)
    return {"first": s["first"] - s["click"], "firstShown": s["firstShown"] - s["click"],
            "all": s["all"] - s["click"], "allShown": s["allShown"] - s["click"], "longest": longest}


def close_page(page) -> None:
    page.click("li.lm-TabBar-tab[data-id='jupyter-jobs-page'] .lm-TabBar-tabCloseIcon")
    page.wait_for_selector(".jp-JobsPage", state="detached")
    page.wait_for_timeout(500)


def main() -> None:
    args = parser(__doc__).parse_args()
    require_part(browser_problem(), "bench_jobs_page")
    count, runs = (1_000, 2) if args.quick else (10_000, 5)
    total = f"{count:,}"
    now = datetime.now(timezone.utc)
    jobs = [varied_job(i, count, now) for i in range(count)]
    texts = {job.id: haystack(job) for job in jobs}
    terms = [RARE, "nightly", "sweep", "llama", jobs[count * 3 // 7].id, "no-such-job"]

    def fill(data: Path) -> None:
        asyncio.run(fill_history(data / "jobs.db", count, varied_job))

    with lab_server(fill) as srv, lab_page(srv) as page:
        first_fetch = [page.evaluate(FETCH_FIRST % count, srv.token) for _ in range(runs)]
        all_fetch = []
        for _ in range(runs):
            elapsed, fetched = page.evaluate(FETCH_ALL, srv.token)
            assert fetched == count, fetched
            all_fetch.append(elapsed)
        opened = []
        for run in range(runs):
            if run:
                close_page(page)
            opened.append(open_page(page, total))
        page.wait_for_timeout(500)
        searches, cleared = {}, ([], [])
        for term in terms:
            matches = sorted(i for i, text in texts.items() if term in text)
            expected = f"{len(matches):,} of {total} jobs"
            base_server = [page.evaluate(SERVER_SEARCH, [term, srv.token]) for _ in range(runs)]
            base_js = []
            for _ in range(runs):
                elapsed, found = page.evaluate(JS_FILTER, term)
                assert found == len(matches), (term, found, len(matches))
                base_js.append(elapsed)
            dom, shown = [], []
            for _ in range(runs):
                result = page.evaluate(SEARCH, [term, expected])
                assert set(result["ids"]) <= set(matches) and bool(result["ids"]) == bool(matches), term
                dom.append(result["dom"])
                shown.append(result["shown"])
                page.wait_for_timeout(100)
                back = page.evaluate(SEARCH, ["", f"{total} of {total} jobs"])
                cleared[0].append(back["dom"])
                cleared[1].append(back["shown"])
                page.wait_for_timeout(200)
            searches[term] = (len(matches), dom, shown, base_server, base_js)

    def row(name: str, values: list[float], target: float | None = None) -> list[object]:
        verdict = "" if target is None else ("yes" if statistics.median(values) < target else "NO")
        return [name, *stats(values), "" if target is None else f"< {target:g}", verdict]

    table(f"Jobs page: opening with {total} jobs in history ({runs} runs; ms)",
          ["measure", "min", "median", "max", "target", "median meets target"],
          [row("page fetches GET /jobs?limit=500 once, no rendering (baseline)", first_fetch),
           row(f"page fetches all {total} in pages of 500, no rendering (baseline)", all_fetch),
           row("click 'Open all' to first rows in the DOM", [o["first"] for o in opened]),
           row("click 'Open all' to first rows on screen (next frame)", [o["firstShown"] for o in opened], 1000),
           row(f"click 'Open all' to '{total} of {total} jobs' on screen", [o["allShown"] for o in opened]),
           row("longest task meanwhile", [o["longest"] for o in opened])])
    rows = []
    for term, (n, dom, shown, base_server, base_js) in searches.items():
        median = statistics.median(shown)
        rows.append([repr(term), f"{n:,}", *stats(dom), median, "yes" if median < 100 else "NO",
                     statistics.median(base_server), statistics.median(base_js)])
    rows.append(["'' (clearing it: all rows back)", total, *stats(cleared[0]), statistics.median(cleared[1]),
                 "yes" if statistics.median(cleared[1]) < 100 else "NO", "", ""])
    table(f"Jobs page: search over {total} jobs ({runs} runs a term; ms from the input event)",
          ["search", "matches", "min to DOM", "median to DOM", "max to DOM", "median to screen", "< 100 ms",
           "GET ?q= median (baseline)", "JS filter only median (baseline)"], rows)


if __name__ == "__main__":
    main()
