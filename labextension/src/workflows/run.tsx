// A workflow run as a graph: one column per stage (a job after the jobs it needs), a box per
// workflow job holding its matrix combinations, each coloured by status and live, with its
// duration; lines from each box to the boxes that need it (an SVG drawn over the boxes from
// their positions), the critical path (the chain of needs that took longest) highlighted, and
// a sweep's best combination starred. A click shows that job (in the run's tab).
import * as React from 'react';

import { errorMessage, Status } from '../api';
import { Badge, clock, ErrorNote, when } from '../common/common';
import { jobsApi } from '../jobs/api';
import { workflowsApi } from './api';
import { inputsText } from './runs';
import { count } from '../common/words';

type Run = Awaited<ReturnType<typeof workflowsApi.workflow>>;
type RunJob = Run['jobs'][number];

/** Each workflow job's stage: 0 without needs, else one more than its deepest need. */
export function stages(jobs: readonly RunJob[]): Map<string, number> {
  const needs = new Map<string, string[]>();
  jobs.forEach(j => needs.set(j.name, j.needs));
  const depth = new Map<string, number>();
  const visit = (name: string, seen: Set<string>): number => {
    if (depth.has(name)) {
      return depth.get(name)!;
    }
    if (seen.has(name)) {
      return 0;
    }
    seen.add(name);
    const d = Math.max(-1, ...(needs.get(name) || []).map(n => visit(n, seen))) + 1;
    depth.set(name, d);
    return d;
  };
  needs.forEach((_, name) => visit(name, new Set()));
  return depth;
}

/** [start, end] in ms of jobs that started (end: now while one runs); null if none started. */
function span(jobs: readonly RunJob[], now: number): [number, number] | null {
  const started = jobs.filter(j => j.started_at);
  if (!started.length) {
    return null;
  }
  const start = Math.min(...started.map(j => Date.parse(j.started_at!)));
  const end = Math.max(...started.map(j => (j.finished_at ? Date.parse(j.finished_at) : now)));
  return [start, Math.max(start, end)];
}

/** Seconds a job (or a matrix job's combinations together) took, or has been running. */
export function seconds(jobs: readonly RunJob[], now: number): number | null {
  const s = span(jobs, now);
  return s ? (s[1] - s[0]) / 1000 : null;
}

/** The chain of needs whose durations add up to the most, and that total in seconds. */
export function criticalPath(jobs: readonly RunJob[], now: number): { names: string[]; seconds: number } | null {
  const byName = new Map<string, RunJob[]>();
  jobs.forEach(j => byName.set(j.name, [...(byName.get(j.name) ?? []), j]));
  const depth = stages(jobs);
  const order = [...byName.keys()].sort((a, b) => (depth.get(a) ?? 0) - (depth.get(b) ?? 0));
  const total = new Map<string, number>();
  const before = new Map<string, string | null>();
  for (const name of order) {
    const own = seconds(byName.get(name)!, now) ?? 0;
    let prev: string | null = null;
    for (const need of byName.get(name)![0].needs) {
      if (total.has(need) && (prev === null || total.get(need)! > total.get(prev)!)) {
        prev = need;
      }
    }
    total.set(name, own + (prev ? total.get(prev)! : 0));
    before.set(name, prev);
  }
  let last: string | null = null;
  total.forEach((t, name) => {
    if (last === null || t > total.get(last)!) {
      last = name;
    }
  });
  if (last === null || total.get(last)! <= 0) {
    return null; // nothing has run yet
  }
  const names: string[] = [];
  for (let at: string | null = last; at; at = before.get(at) ?? null) {
    names.unshift(at);
  }
  return { names, seconds: total.get(last)! };
}

/** `train[lr=0.3]` as people say it: `train (lr=0.3)`. */
export function keyText(key: string): string {
  const at = key.indexOf('[');
  return at < 0 ? key : `${key.slice(0, at)} (${key.slice(at + 1, -1).replace(/,/g, ', ')})`;
}

/** What a rerun started, in words. */
export function startedText(started: readonly string[] | null | undefined): string {
  return started?.length ? `Started again: ${started.map(keyText).join(', ')}` : 'Nothing needed to run again.';
}

function useRun(id: string): { run: Run | null; error: string | null; reload: () => void } {
  const [run, setRun] = React.useState<Run | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [tick, setTick] = React.useState(0);
  React.useEffect(() => {
    let live = true;
    let timer = 0;
    const load = () =>
      workflowsApi.workflow(id).then(
        r => {
          if (live) {
            setRun(r);
            setError(null);
            if (r.status === 'queued' || r.status === 'running') {
              timer = window.setTimeout(load, 1000);
            }
          }
        },
        e => live && setError(errorMessage(e))
      );
    void load();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [id, tick]);
  return { run, error, reload: () => setTick(t => t + 1) };
}

/** The time now, ticking each second while `live`. */
function useNow(live: boolean): number {
  const [now, setNow] = React.useState(Date.now());
  React.useEffect(() => {
    if (!live) {
      return;
    }
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [live]);
  return live ? now : Date.now();
}

/** The job whose last value of the run's metric (`loss:min`) is best, with that value. */
function useBest(run: Run | null): { jobId: string; value: number } | null {
  const [best, setBest] = React.useState<{ jobId: string; value: number } | null>(null);
  const metric = run?.best ?? null;
  const seen = (run?.jobs ?? []).map(j => `${j.job_id}:${j.status}`).join(' ');
  React.useEffect(() => {
    if (!run || !metric) {
      setBest(null);
      return;
    }
    let live = true;
    const [name, way] = [metric.slice(0, metric.lastIndexOf(':')), metric.slice(metric.lastIndexOf(':') + 1)];
    const ran = run.jobs.filter(j => j.started_at);
    void Promise.all(ran.map(j => jobsApi.get(j.job_id).catch(() => null))).then(found => {
      let pick: { jobId: string; value: number } | null = null;
      found.forEach(job => {
        const value = job?.metrics?.series?.[name]?.last;
        if (job && typeof value === 'number' && Number.isFinite(value)) {
          if (!pick || (way === 'max' ? value > pick.value : value < pick.value)) {
            pick = { jobId: job.id, value };
          }
        }
      });
      if (live) {
        setBest(pick);
      }
    });
    return () => {
      live = false;
    };
  }, [run?.id, metric, seen]);
  return best;
}

interface Edge {
  from: string;
  to: string;
  d: string;
}

/** The lines from each box to the boxes that need it, from where the boxes are drawn. */
function useEdges(graph: React.RefObject<HTMLDivElement>, jobs: readonly RunJob[]): { edges: Edge[]; size: [number, number] } {
  const [drawn, setDrawn] = React.useState<{ edges: Edge[]; size: [number, number] }>({ edges: [], size: [0, 0] });
  const needs = [...new Map(jobs.map(j => [j.name, j.needs])).entries()];
  const shape = JSON.stringify(needs);
  const measure = React.useCallback(() => {
    const box = graph.current;
    if (!box) {
      return;
    }
    const origin = box.getBoundingClientRect();
    const rect = (name: string) => box.querySelector(`.jp-JobsGraph-node[data-name="${CSS.escape(name)}"]`)?.getBoundingClientRect();
    const edges: Edge[] = [];
    for (const [to, from] of needs) {
      for (const need of from) {
        const a = rect(need);
        const b = rect(to);
        if (a && b) {
          const [x1, y1] = [a.right - origin.left, a.top + a.height / 2 - origin.top];
          const [x2, y2] = [b.left - origin.left, b.top + b.height / 2 - origin.top];
          const bend = Math.max(12, (x2 - x1) / 2);
          const d = `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`;
          edges.push({ from: need, to, d });
        }
      }
    }
    const size: [number, number] = [box.scrollWidth, box.scrollHeight];
    setDrawn(old => (JSON.stringify(old) === JSON.stringify({ edges, size }) ? old : { edges, size }));
  }, [shape]);
  React.useLayoutEffect(measure); // after every render: a box grows as its jobs change
  React.useEffect(() => {
    const box = graph.current;
    if (!box || typeof ResizeObserver === 'undefined') {
      return;
    }
    const observer = new ResizeObserver(() => measure());
    observer.observe(box);
    return () => observer.disconnect();
  }, [measure]);
  return drawn;
}

export function RunView({ id, open, selected }: { id: string; open: (jobId: string) => void; selected?: string | null }): JSX.Element {
  const { run, error, reload } = useRun(id);
  const [actionError, setActionError] = React.useState<string | null>(null);
  const [note, setNote] = React.useState<string | null>(null);
  const graph = React.useRef<HTMLDivElement>(null);
  const running = !!run && run.jobs.some(j => j.started_at && !j.finished_at);
  const now = useNow(running);
  const best = useBest(run);
  const { edges, size } = useEdges(graph, run?.jobs ?? []);
  if (!run) {
    return <div className="jp-JobsRun">{error ? <ErrorNote error={error} /> : <p className="jp-JobsMuted">Loading…</p>}</div>;
  }
  const depth = stages(run.jobs);
  const columns: string[][] = [];
  [...new Set(run.jobs.map(j => j.name))].forEach(name => (columns[depth.get(name) ?? 0] ??= []).push(name));
  const critical = columns.length > 1 ? criticalPath(run.jobs, now) : null; // a chain of one says nothing
  const onPath = new Set(critical?.names ?? []);
  const onPathEdge = (e: Edge) => !!critical && critical.names.indexOf(e.to) === critical.names.indexOf(e.from) + 1 && onPath.has(e.from);
  const act = (action: 'cancel' | 'rerun') => {
    setNote(null);
    return workflowsApi.workflowAction(id, action).then(
      r => {
        setActionError(null);
        if (action === 'rerun') {
          setNote(startedText(r.started));
        }
        reload();
      },
      e => setActionError(errorMessage(e))
    );
  };
  const over = !['queued', 'running'].includes(run.status);
  const took = (jobs: RunJob[]) => {
    const secs = seconds(jobs, now);
    return secs === null ? null : clock(Math.round(secs));
  };
  const bestTitle = run.best ? `the best by ${run.best}` : '';
  return (
    <div className="jp-JobsRun" data-run-id={run.id} data-status={run.status}>
      <h2 className="jp-JobsTitle">
        {run.name} <Badge status={(run.status === 'running' ? 'running' : run.status) as Status} />
        <span className="jp-JobsMuted jp-JobsTitle-meta">
          {run.id} · {count(run.jobs.length, 'job')}{run.scheduler !== 'service' ? ` · ordered by ${run.scheduler}` : ''} ·{' '}
          {when(run.created_at)}
        </span>
      </h2>
      {run.definition ? (
        <p className="jp-JobsRun-definition" data-definition={run.definition} data-definition-version={run.definition_version ?? undefined}>
          named workflow <b>{run.definition}</b> v{run.definition_version}
          {Object.keys(run.inputs ?? {}).length ? <> · inputs <code>{inputsText(run.inputs)}</code></> : null}
        </p>
      ) : null}
      {run.message ? <p className="jp-JobsMuted">{run.message}</p> : null}
      <div className="jp-JobsButtons">
        {over ? null : (
          <button className="jp-mod-styled jp-mod-warn" onClick={() => void act('cancel')}>
            Cancel run
          </button>
        )}
        {over && run.status !== 'succeeded' ? (
          <button className="jp-mod-styled" onClick={() => void act('rerun')}>
            Rerun what did not succeed
          </button>
        ) : null}
        {note ? (
          <span className="jp-JobsRun-note" role="status">
            {note}
          </span>
        ) : null}
      </div>
      <ErrorNote error={actionError ?? error} />
      {critical ? (
        <p className="jp-JobsRun-critical" title="The chain of needs that took longest: what to speed up to end the run sooner">
          Critical path: {critical.names.join(' → ')} · {clock(Math.round(critical.seconds))}
          {running ? ' so far' : ''}
        </p>
      ) : null}
      <div className="jp-JobsGraph-area" ref={graph}>
        <svg className="jp-JobsGraph-edges" width={size[0]} height={size[1]} aria-hidden="true">
          {edges.map(e => (
            <path
              key={`${e.from}->${e.to}`}
              className={onPathEdge(e) ? 'jp-JobsGraph-edge jp-mod-critical' : 'jp-JobsGraph-edge'}
              data-from={e.from}
              data-to={e.to}
              d={e.d}
            />
          ))}
        </svg>
        <div className="jp-JobsGraph" role="list" aria-label="the run's jobs by stage">
        {columns.map((names, stage) => (
          <div className="jp-JobsGraph-stage" key={stage} role="listitem" aria-label={`stage ${stage + 1}`}>
            {names.map(name => {
              const members = run.jobs.filter(j => j.name === name);
              const spent = took(members);
              return (
                <div
                  className={`jp-JobsGraph-node${onPath.has(name) ? ' jp-mod-critical' : ''}`}
                  key={name}
                  data-name={name}
                  data-critical={onPath.has(name) ? 'true' : undefined}
                >
                  <div className="jp-JobsGraph-name">
                    {name}
                    {members[0].needs.length ? <span className="jp-JobsMuted"> ← {members[0].needs.join(', ')}</span> : null}
                    {spent && members.length > 1 ? (
                      <span className="jp-JobsGraph-duration jp-JobsMuted" title="from the first combination's start to the last one's end">
                        {' '}
                        {spent}
                      </span>
                    ) : null}
                  </div>
                  {members.map(j => {
                    const mine = took([j]);
                    const star = best?.jobId === j.job_id;
                    return (
                      <button
                        key={j.key}
                        className={`jp-JobsGraph-job jp-mod-${j.status}${selected === j.job_id ? ' jp-mod-selected' : ''}`}
                        data-job-id={j.job_id}
                        data-status={j.status}
                        data-best={star ? 'true' : undefined}
                        aria-pressed={selected === j.job_id}
                        title={`${j.key}: ${j.status}${mine ? `, ${mine}` : ''}${star ? `; ${bestTitle} (${best!.value})` : ''}`}
                        onClick={() => open(j.job_id)}
                      >
                        <Badge status={j.status as Status} />{' '}
                        {Object.keys(j.matrix).length
                          ? Object.entries(j.matrix)
                              .map(([k, v]) => `${k}=${v}`)
                              .join(' ')
                          : j.key}
                        {star ? (
                          <span className="jp-JobsGraph-best" role="img" aria-label={bestTitle} title={`${bestTitle}: ${best!.value}`}>
                            {' '}
                            ★ {run.best!.slice(0, run.best!.lastIndexOf(':'))} {Number(best!.value.toPrecision(4))}
                          </span>
                        ) : null}
                        {mine ? <span className="jp-JobsGraph-duration"> {mine}</span> : null}
                      </button>
                    );
                  })}
                </div>
              );
            })}
          </div>
        ))}
        </div>
      </div>
    </div>
  );
}
